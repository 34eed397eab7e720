"""Celery tasks of the decisions app."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import shared_task, states
from django.conf import settings

from decisions.background import repeating
from decisions.decision_log import decision_blocks_seal, decision_log_verify_record
from decisions.models import LogVerification

logger = logging.getLogger(__name__)


@shared_task(name="decisions.tasks.decision_blocks_seal_task", acks_late=True)
def decision_blocks_seal_task() -> int:
    """Seal what the decision log has accumulated; idempotent (sealed rows are skipped)."""
    return len(decision_blocks_seal())


@shared_task(name="decisions.tasks.decision_log_verify_task", acks_late=True)
def decision_log_verify_task(source: str = "daily", requested_by: str = "") -> dict[str, Any]:
    """Verify the whole decision log, as ``verify_decisions`` does, and keep the result
    (``LogVerification``: the decision pages show the latest). Beat runs it daily; the
    pages' "Verify now" queues it. A log that does not verify is logged at ERROR for
    alerting. Reads the log only: running it twice is harmless."""
    from decisions.decision_log import decision_log_rolling

    rehash = None
    if source == "daily":
        rehash = decision_log_rolling(settings.DECISION_LOG_VERIFY_DAYS)
    record = decision_log_verify_record(source=source, requested_by=requested_by, rehash=rehash)
    if not record.ok:
        logger.error(
            "decision log verification failed (first bad block %s, decision %s): %s",
            record.first_bad_block,
            record.first_bad_row or "-",
            "; ".join(record.problems),
        )
        decision_log_tamper_email(record)
    return {
        "ok": record.ok,
        "blocks": record.blocks,
        "rows": record.rows,
        "skipped_rows": record.skipped_rows,
        "unsealed": record.unsealed,
        "purged_blocks": record.purged_blocks,
        "first_bad_block": record.first_bad_block,
        "first_bad_row": record.first_bad_row,
        "problems": record.problems,
        "seconds": record.seconds,
    }


@shared_task(name="decisions.tasks.decision_replay_check_task", acks_late=True)
def decision_replay_check_task(check_id: int) -> dict[str, Any] | None:
    """Replay the sample a ``ReplayCheck`` asked for and keep what it found. A check
    already finished is left alone; one a lost worker left running starts again."""
    from decisions.replays import replay_check_execute

    check = replay_check_execute(check_id)
    if check is None:
        return None
    return {"status": check.status, "replayed": check.replayed, "ok": check.ok}


@shared_task(name="decisions.tasks.replay_checks_recover_task", acks_late=True)
def replay_checks_recover_task() -> dict[str, list[int]]:
    """Send again the replays whose worker stopped or that no worker took (beat)."""
    from decisions.replays import replay_checks_recover

    return replay_checks_recover()


def decision_log_tamper_email(record: LogVerification) -> int:
    """E-mail every active administrator and auditor with an address that the decision
    log did not verify; returns how many were written to."""
    found = "\n".join(f"- {problem}" for problem in record.problems)
    return email_admins_and_auditors(
        "[Arbiter] The decision log does not verify",
        f"The check of the decision log started {record.started_at:%Y-%m-%d %H:%M} UTC "
        f"({record.get_source_display()}) found that the log does not verify.\n\n"
        f"First bad block: {record.first_bad_block or '-'}\n"
        f"First bad decision: {record.first_bad_row or '-'}\n\n{found}\n\n"
        "Someone with access to the database may have altered, removed or inserted "
        "decisions. Keep the database as it is; `python manage.py verify_decisions` "
        "repeats the check, and the decision pages show every check.\n",
    )


def email_admins_and_auditors(subject: str, body: str) -> int:
    """E-mail every active administrator and auditor with an address; returns how many
    were written to. A mail server that fails costs a warning: the ERROR logged for what
    was found stands, and the next check writes again."""
    from django.contrib.auth import get_user_model

    from arbiter.mail import mail_quietly
    from governance.roles import Role

    people = (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=[Role.ADMIN, Role.AUDITOR])
        .exclude(email="")
        .distinct()
    )
    # A mail server that fails costs a warning: the ERROR logged for the finding stands.
    return mail_quietly(subject, body, sorted({user.email for user in people}))


@shared_task(name="decisions.tasks.decision_replay_daily_task", acks_late=True)
def decision_replay_daily_task() -> dict[str, Any] | None:
    """Beat's daily replay of a random sample of the whole log (``replay_check_daily``)."""
    from decisions.replays import replay_check_daily

    check = replay_check_daily()
    if check is None:
        return None
    return {"id": check.pk, "status": check.status, "replayed": check.replayed, "ok": check.ok}


def decision_blocks_seal_request() -> bool:
    """Queue ``decision_blocks_seal_task``; False, with a warning, when the broker does not
    take it. A missed request costs nothing but time: beat seals on its schedule too."""
    from kombu.exceptions import OperationalError

    try:
        decision_blocks_seal_task.delay()
    except OperationalError as exc:
        logger.warning("could not queue sealing of the decision log (%s); beat will seal it", exc)
        return False
    return True


@shared_task(
    name="decisions.tasks.optimisation_run_task",
    acks_late=True,
    # A worker killed mid-run (OOM, deploy) puts the message back; the run restarts.
    reject_on_worker_lost=True,
)
def optimisation_run_task(run_id: int) -> str:
    """Execute optimisation run ``run_id``; idempotent (a finished run is left as it is)."""
    from decisions.optimisation import optimisation_run_execute

    return optimisation_run_execute(run_id, resumable=True).status


@shared_task(name="decisions.tasks.optimisation_runs_recover_task", acks_late=True)
def optimisation_runs_recover_task() -> dict[str, list[int]]:
    """Send again the runs whose worker stopped; fail those started too often (beat)."""
    from decisions.optimisation import optimisation_runs_recover

    return optimisation_runs_recover()


@shared_task(
    bind=True,
    name="decisions.tasks.run_chunk_task",
    acks_late=True,
    reject_on_worker_lost=True,
    # The coordinator reads the chunks' states and results (the only task whose are read).
    ignore_result=False,
    # The coordinator tells "no worker took it" from "a worker is on it" by the state.
    track_started=True,
)
def run_chunk_task(self, operation: str, call: dict, beat: float | None = None) -> dict:
    """One operation of a distributed optimisation run on one chunk (``run_chunks``).

    Idempotent: a redelivered (or resent) operation rewrites the same files. With
    ``beat``, the task's STARTED state is refreshed every ``beat`` seconds with a count,
    from a thread, while the operation computes: the coordinator resends a chunk whose
    count stops moving (``distributed_runs``: its worker died).
    """
    from decisions.run_chunks import chunk_operation

    with _heartbeat(self, beat):
        result = chunk_operation(operation, call)
    return {"worker": self.request.hostname, "result": result}


@contextmanager
def _heartbeat(task: Any, beat: float | None) -> Iterator[None]:
    task_id, hostname = task.request.id, task.request.hostname
    if not beat or task.request.is_eager or not task_id:
        yield
        return
    count = 0

    def beating() -> None:
        nonlocal count
        count += 1
        try:
            task.backend.store_result(
                task_id, {"hostname": hostname, "beat": count}, states.STARTED
            )
        except Exception:  # a missed beat is only a missed beat; the next one retries
            logger.warning("chunk task %s could not store its heartbeat", task_id)

    # Joined on leaving: no beat may land after the task's own result.
    with repeating(beat, beating, name=f"heartbeat-{task_id}"):
        yield
