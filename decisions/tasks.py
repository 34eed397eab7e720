"""Celery tasks of the decisions app."""

from __future__ import annotations

from celery import shared_task

from decisions.decision_log import decision_blocks_seal


@shared_task(name="decisions.tasks.decision_blocks_seal_task", acks_late=True)
def decision_blocks_seal_task() -> int:
    """Seal what the decision log has accumulated; idempotent (sealed rows are skipped)."""
    return len(decision_blocks_seal())


@shared_task(
    name="decisions.tasks.optimisation_run_task",
    acks_late=True,
    # A worker killed mid-run (OOM, deploy) puts the message back; the run restarts.
    reject_on_worker_lost=True,
)
def optimisation_run_task(run_id: int) -> str:
    """Execute optimisation run ``run_id``; idempotent (a finished run is left as it is)."""
    from decisions.optimisation import optimisation_run_execute

    return optimisation_run_execute(run_id).status


@shared_task(
    bind=True,
    name="decisions.tasks.run_chunk_task",
    acks_late=True,
    reject_on_worker_lost=True,
    # The coordinator tells "no worker took it" from "a worker is on it" by the state.
    track_started=True,
)
def run_chunk_task(self, operation: str, call: dict) -> dict:
    """One operation of a distributed optimisation run on one chunk (``run_chunks``).

    Idempotent: a redelivered operation rewrites the same files."""
    from decisions.run_chunks import chunk_operation

    return {"worker": self.request.hostname, "result": chunk_operation(operation, call)}
