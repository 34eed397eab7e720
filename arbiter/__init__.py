"""The Django project: settings, root URLs, the Celery app and the API error handler."""

import os

# One OpenMP thread per process: web and worker processes already run one per core, and
# scikit-learn's tree models otherwise fan out per prediction and stall under load
# (a single real-time predict took over a second on a busy 2-core host). Set before
# NumPy or scikit-learn load; an operator can still override it in the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from arbiter.celery import app as celery_app

__all__ = ("celery_app",)
