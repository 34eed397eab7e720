"""Celery tasks of the decisions app."""

from __future__ import annotations

from celery import shared_task

from decisions.decision_log import decision_blocks_seal


@shared_task(name="decisions.tasks.decision_blocks_seal_task", acks_late=True)
def decision_blocks_seal_task() -> int:
    """Seal what the decision log has accumulated; idempotent (sealed rows are skipped)."""
    return len(decision_blocks_seal())
