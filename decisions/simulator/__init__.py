"""A synthetic lending portfolio: customers, their behaviour, trained models and use cases.

Three ready-made use cases (collections, onboarding, cross-sell) that the demo, the tests
and the benchmarks register through the real governance services and decide on with the
real engine. The simulated world knows the true response of every customer to every
action, so optimised decisions can be checked against the truth and monitoring can post
outcomes drawn from it. No Django here: arrays and data frames in, arrays and content out.

- ``population``: customers per use case (seeded, correlated features).
- ``behaviour``: ground-truth probabilities given the action, and outcome sampling.
- ``training``: simulated history and the scikit-learn pipelines with registry content.
- ``use_cases``: models, strategy and constraint-set content per use case.
"""
