"""The demo's monitoring content: KPI targets under four eyes, decisions and their outcomes.

Registered as a demo step (``decisions.demo_setup.register_demo_step``), so ``manage.py
demo`` runs it after the governed content exists. ``lending-app`` asks each deployment for
decisions on simulated customers, then reports what the simulator says happened to them,
through the same services as the REST API. The decisions are seconds old, so the events'
simulated delays (days to a year) are scaled into the time since each decision: their
order is kept and none lies in the future. Idempotent: it adds nothing once outcomes exist.
"""

from __future__ import annotations

import math

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from decisions import runtime
from decisions.services import decision_make
from decisions.simulator.outcome_events import outcome_events
from decisions.simulator.use_cases import USE_CASES, population
from governance import services as governance
from governance.models import Item
from monitoring.kpi_targets import KIND as TARGETS_KIND
from monitoring.models import OutcomeBatch
from monitoring.services import outcome_batch_record

DEMO_DECISIONS = 60
DEMO_SEED = 2026
DEMO_TARGETS = {
    "collections": {
        "recovery_rate": {"target": 0.3},
        "cure_rate": {"target": 0.1},
        "complaint_rate": {"target": 0.01},
        "latency_p99_ms": {"target": 500},
    },
    "onboarding": {
        "take_up_rate": {"target": 0.4},
        "default_rate": {"target": 0.05},
        "value_realisation": {"target": 0.9},
        "latency_p99_ms": {"target": 500},
    },
    "cross-sell": {
        "take_up_rate": {"target": 0.1},
        "opt_out_rate": {"target": 0.01},
        "contacts_per_customer": {"target": 1.0},
        "latency_p99_ms": {"target": 500},
    },
}


def _targets_go_live(name: str, *, maker: AbstractBaseUser, checker: AbstractBaseUser) -> None:
    version = governance.version_create(
        actor=maker,
        kind=TARGETS_KIND,
        name=name,
        content={
            "description": f"What the {name} deployment is judged by.",
            "targets": DEMO_TARGETS[name],
        },
        change_note="Demo targets.",
    )
    version = governance.version_submit(actor=maker, version=version)
    version = governance.version_approve(actor=checker, version=version, comment="Demo approval.")
    governance.version_activate(actor=checker, version=version)


def _decide_and_report(name: str, client: AbstractBaseUser) -> tuple[int, int]:
    version = runtime.active_deployment(name)
    wanted = list(runtime.deployment_features(version))
    people = population(name, DEMO_DECISIONS, seed=DEMO_SEED)
    decisions = []
    for i, record in enumerate(people[wanted].to_dict("records")):
        features = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
        decisions.append(
            decision_make(
                actor=client, deployment=name, customer_id=f"demo-{name}-{i}", features=features
            ).decision
        )
    events = outcome_events(name, people, [d.action_id for d in decisions], seed=DEMO_SEED)
    now = timezone.now()
    items = []
    for event in events.itertuples(index=False):
        decision = decisions[event.row]
        elapsed = now - decision.created_at
        items.append(
            {
                "decision_id": str(decision.decision_id),
                "event": event.event,
                "amount": None if math.isnan(event.amount) else event.amount,
                "occurred_at": decision.created_at + elapsed * min(event.delay_days / 365, 1.0),
            }
        )
    report = outcome_batch_record(actor=client, items=items)
    return len(decisions), report.created


def demo_outcomes_load(people: dict[str, AbstractBaseUser]) -> list[str]:
    """Approve KPI targets for each deployment, then decide and report outcomes once."""
    maker, checker, client = people["maker"], people["checker"], people["lending-app"]
    for name in USE_CASES:
        if not Item.objects.filter(kind=TARGETS_KIND, name=name).exists():
            _targets_go_live(name, maker=maker, checker=checker)
    if OutcomeBatch.objects.exists():
        return ["Monitoring: decisions and outcomes already present."]
    made = reported = 0
    for name in USE_CASES:
        decisions, outcomes = _decide_and_report(name, client)
        made, reported = made + decisions, reported + outcomes
    return [
        f"Monitoring: {made} decisions by lending-app with {reported} simulated outcomes; "
        "KPIs at /api/v1/monitoring/kpis/?deployment=onboarding (targets approved)."
    ]
