"""Replaying many logged decisions at once: an examiner's random sample, or every one.

An examiner asks for, say, 1,000 decisions of a quarter picked at random and recomputed
from what the log kept. ``decision_replay_sample`` draws them uniformly from a set of
decisions (seeded, so the same seed over the same set draws the same decisions again)
and ``ReplaySample.outcomes`` replays each through ``decision_replay``. A decision that
cannot be replayed (a model file it needs is gone or altered) is counted and named, not
raised, so the rest of the sample still gets its answer.

A ``ReplayCheck`` keeps a sample and what it found: asked for on the decision pages or
the API (``replay_check_request``, run by a worker), by ``manage.py replay_decisions``
(run in its process), or beat's daily sample of the whole log (``replay_check_daily``).
One with a difference is logged at ERROR and e-mailed to administrators and auditors.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from decisions.exceptions import QueueUnavailable
from decisions.models import Decision, OptimisationRun, ReplayCheck
from decisions.optimisation import resend_due
from decisions.services import REPLAY_ROLES, Replay, decision_replay, decision_replay_unchecked
from governance.exceptions import DomainError, ValidationFailed
from governance.roles import require_role

logger = logging.getLogger(__name__)

IDENTICAL, DIFFERS, NOT_REPLAYED = "identical", "differs", "not replayed"
BATCH = 500


@dataclass(frozen=True)
class ReplayOutcome:
    decision: Decision
    result: str  # IDENTICAL, DIFFERS or NOT_REPLAYED
    fields: tuple[str, ...] = ()  # what differed from the log
    message: str = ""  # why it could not be replayed


@dataclass
class ReplaySample:
    """Which decisions to replay, and (once ``outcomes`` has run) how they replayed."""

    replay: Callable[[Decision], Replay]  # decision_replay as the person who asked, or beat's
    decisions: QuerySet[Decision]  # the set, bounded by ``through_seq``
    population: int
    through_seq: int
    seed: int
    seqs: list[int] | None  # the draw, ascending; None for every decision of the set
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((IDENTICAL, DIFFERS, NOT_REPLAYED), 0)
    )

    @property
    def size(self) -> int:
        return self.population if self.seqs is None else len(self.seqs)

    @property
    def replayed(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.counts[IDENTICAL] == self.replayed

    def outcomes(self) -> Iterator[ReplayOutcome]:
        """Replay the drawn decisions in log order, counting each result as it comes."""
        for batch in self._batches():
            for decision in batch:
                outcome = _replay(self.replay, decision)
                self.counts[outcome.result] += 1
                yield outcome

    def _batches(self) -> Iterator[list[Decision]]:
        if self.seqs is None:
            after = 0
            while batch := list(self.decisions.filter(seq__gt=after).order_by("seq")[:BATCH]):
                after = batch[-1].seq
                yield batch
            return
        for start in range(0, len(self.seqs), BATCH):
            chunk = self.seqs[start : start + BATCH]
            yield list(Decision.objects.filter(seq__in=chunk).order_by("seq"))


def decision_replay_sample(
    *, actor: AbstractBaseUser, decisions: QuerySet[Decision], size: int | None, seed: int
) -> ReplaySample:
    """Draw ``size`` decisions of ``decisions`` uniformly at random (all when ``size`` is
    None or the set is smaller). Decisions logged after the draw started are not in the
    set, so a count, a draw and its replay all speak of the same decisions."""
    require_role(actor, REPLAY_ROLES, action="replay decisions")
    return _draw(decisions, size, seed, lambda d: decision_replay(actor=actor, decision=d))


def _draw(
    decisions: QuerySet[Decision],
    size: int | None,
    seed: int,
    replay: Callable[[Decision], Replay],
) -> ReplaySample:
    through = decisions.aggregate(last=Max("seq"))["last"] or 0
    bounded = decisions.filter(seq__lte=through).order_by()
    population = bounded.count()
    if size is None or size >= population:
        return ReplaySample(replay, bounded, population, through, seed, None)
    # A draw anyone can repeat from its seed (the default seed is itself random).
    wanted = sorted(random.Random(seed).sample(range(population), size))  # noqa: S311
    return ReplaySample(replay, bounded, population, through, seed, _seqs_at(bounded, wanted))


def _seqs_at(decisions: QuerySet[Decision], offsets: list[int]) -> list[int]:
    """The seqs at ``offsets`` (ascending) of the set in log order, read in one stream of
    seqs (a server-side cursor on PostgreSQL) rather than held whole."""
    seqs: list[int] = []
    wanted = iter(offsets)
    target = next(wanted, None)
    stream = decisions.order_by("seq").values_list("seq", flat=True).iterator(chunk_size=20_000)
    for position, seq in enumerate(stream):
        if target is None:
            break
        if position == target:
            seqs.append(seq)
            target = next(wanted, None)
    return seqs


def _replay(replay_of: Callable[[Decision], Replay], decision: Decision) -> ReplayOutcome:
    try:
        replay = replay_of(decision)
    except DomainError as exc:
        return ReplayOutcome(decision, NOT_REPLAYED, message=exc.message)
    except Exception as exc:  # one decision's failure is a finding, not the sample's end
        logger.exception("replaying decision %s failed", decision.decision_id)
        return ReplayOutcome(
            decision,
            NOT_REPLAYED,
            message=f"An internal error stopped its replay ({type(exc).__name__}); the "
            "server's log has the details.",
        )
    if replay.matches:
        return ReplayOutcome(decision, IDENTICAL)
    fields: list[Any] = [d["field"] for d in replay.differences]
    return ReplayOutcome(decision, DIFFERS, fields=tuple(dict.fromkeys(fields)))


# --- replay checks: a sample asked for on the pages or the API, run by a worker ----------

MAX_SAMPLE = 10_000
"""The largest sample a page or API request may ask for (about 10-20 s of a worker);
``manage.py replay_decisions --all`` replays any number."""
FINDINGS_KEPT = 200
"""Decisions that differ or were not replayed, named on the check (the counts are whole)."""
PROGRESS_EVERY = 100
_COUNTS = ("identical", "differs", "not_replayed")  # ReplayCheck's count fields


def replay_check_request(*, actor: AbstractBaseUser, **asked: Any) -> ReplayCheck:
    """Queue a replay of ``size`` decisions (1,000 by default) drawn at random from those
    the filters select (``replay_check_create``'s arguments). Raises what it raises, and
    ``QueueUnavailable`` (the check then says failed) when the broker does not take the
    task. Without a broker the check runs here, before this returns."""
    check = replay_check_create(actor=actor, **{"size": 1000, **asked})
    _enqueue(check)
    check.refresh_from_db()
    return check


def replay_check_create(
    *,
    actor: AbstractBaseUser,
    size: int | None,
    seed: int | None = None,
    deployment: str | None = "",
    customer_id: str | None = "",
    run: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    most: int = MAX_SAMPLE,
) -> ReplayCheck:
    """A queued ``ReplayCheck`` of ``size`` decisions (None: every one selected, for
    ``manage.py replay_decisions --all``) drawn at random from those the filters select.

    Raises ``PermissionDenied`` for roles that may not replay, and ``ValidationFailed``
    for a size out of 1..``most``, a seed out of range, times out of order, an unknown
    run or filters that select no decision.
    """
    require_role(actor, REPLAY_ROLES, action="replay decisions")
    problems: dict[str, list[str]] = {}
    if size is not None and not 1 <= size <= most:
        problems["size"] = [f"must be from 1 to {most:,}"]
    if seed is not None and not 0 <= seed < 2**63:
        problems["seed"] = ["must be from 0 to 2^63 - 1"]
    if since is not None and until is not None and since >= until:
        problems["until"] = ["must be after since"]
    if run is not None and not OptimisationRun.objects.filter(pk=run).exists():
        problems["run"] = [f"there is no optimisation run {run}"]
    if problems:
        raise ValidationFailed("The replay was not started.", details=problems)
    filters = {
        "deployment": deployment or None,
        "customer_id": customer_id or None,
        "run": run,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    filters = {k: v for k, v in filters.items() if v is not None}
    if not _selected(actor, filters).exists():
        raise ValidationFailed(
            "No logged decision matches these filters; nothing to replay.",
            details={"filters": ["select no decision"]},
        )
    return ReplayCheck.objects.create(
        requested_by=actor,
        requested_at=timezone.now(),
        filters=filters,
        size=size,
        seed=secrets.randbelow(2**31) if seed is None else seed,
    )


def _selected(actor: AbstractBaseUser, filters: dict[str, Any]) -> QuerySet[Decision]:
    """The decisions ``filters`` select among those ``actor`` may read."""
    from decisions.selectors import decision_list

    decisions = decision_list(
        actor=actor,
        deployment=filters.get("deployment"),
        customer_id=filters.get("customer_id"),
        since=datetime.fromisoformat(filters["since"]) if filters.get("since") else None,
        until=datetime.fromisoformat(filters["until"]) if filters.get("until") else None,
    )
    if filters.get("run") is not None:
        decisions = decisions.filter(run_id=filters["run"])
    return decisions


def _enqueue(check: ReplayCheck) -> None:
    from kombu.exceptions import OperationalError

    from decisions.tasks import decision_replay_check_task

    ReplayCheck.objects.filter(pk=check.pk).update(sent_at=timezone.now())
    try:
        decision_replay_check_task.delay(check.pk)
    except OperationalError as exc:
        logger.error("replay check %s could not be queued: %s", check.pk, exc)
        message = (
            "The replay was not started: the task queue (the Celery broker) did not answer. "
            "Ask again once the broker is back, or run manage.py replay_decisions."
        )
        ReplayCheck.objects.filter(pk=check.pk, status=ReplayCheck.Status.QUEUED).update(
            status=ReplayCheck.Status.FAILED, finished_at=timezone.now(), error=message
        )
        raise QueueUnavailable(message) from None


def replay_check_execute(
    check_id: int, *, each: Callable[[ReplayOutcome, ReplaySample], None] | None = None
) -> ReplayCheck | None:
    """Run a queued check (the worker's task; ``replay_decisions`` runs it in its own
    process, with ``each`` called after every decision), and return it as it ends.

    The check is claimed first: a check already done or failed, or running with a worker
    heard from in the last ``DECISION_REPLAY_STALE_SECONDS``, is left alone (a message
    delivered twice replays nothing twice). One whose worker went silent starts again
    from the same seed, which draws the same decisions. Every progress report is
    written only while this attempt still holds the check: once beat has queued it
    again (this worker was silent too long), this one stops and leaves it to the next.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DECISION_REPLAY_STALE_SECONDS)
    claimed = (
        ReplayCheck.objects.filter(pk=check_id)
        .filter(
            Q(status=ReplayCheck.Status.QUEUED)
            | Q(status=ReplayCheck.Status.RUNNING)
            & (Q(beat_at__lt=stale) | Q(beat_at__isnull=True))
        )
        .update(
            status=ReplayCheck.Status.RUNNING,
            started_at=now,
            beat_at=now,
            attempts=F("attempts") + 1,
            identical=0,
            differs=0,
            not_replayed=0,
            findings=[],
            error="",
        )
    )
    check = ReplayCheck.objects.filter(pk=check_id).first()
    if check is None or not claimed:
        if check is not None and check.status == ReplayCheck.Status.RUNNING:
            logger.info("replay check %s is being replayed elsewhere; left to it", check_id)
        return check
    mine = ReplayCheck.objects.filter(
        pk=check_id, status=ReplayCheck.Status.RUNNING, attempts=check.attempts
    )

    def report(**fields: Any) -> bool:
        """Write ``fields`` if this attempt still holds the check."""
        return bool(mine.update(beat_at=timezone.now(), **fields))

    def progress(sample: ReplaySample) -> dict[str, Any]:
        _count(check, sample)
        return {name: getattr(check, name) for name in (*_COUNTS, "findings")}

    try:
        if check.requested_by is None:  # beat's daily sample
            sample = _draw(
                Decision.objects.all(), check.size, check.seed, decision_replay_unchecked
            )
        else:
            sample = decision_replay_sample(
                actor=check.requested_by,
                decisions=_selected(check.requested_by, check.filters),
                size=check.size,
                seed=check.seed,
            )
        check.population, check.through_seq = sample.population, sample.through_seq
        if not report(population=sample.population, through_seq=sample.through_seq):
            return _superseded(check_id)
        for outcome in sample.outcomes():
            if each is not None:
                each(outcome, sample)
            if outcome.result != IDENTICAL and len(check.findings) < FINDINGS_KEPT:
                check.findings.append(_finding(outcome))
            if sample.replayed % PROGRESS_EVERY == 0 and not report(**progress(sample)):
                return _superseded(check_id)
        ended = {**progress(sample), "status": ReplayCheck.Status.DONE}
    except Exception as exc:  # the check says why; the worker's log has the traceback
        logger.exception("replay check %s failed", check_id)
        error = f"The replay stopped: {type(exc).__name__}. The server's log says more."
        if isinstance(exc, DomainError):
            error = f"The replay stopped: {exc.message}"
        ended = {"status": ReplayCheck.Status.FAILED, "error": error}
    if not report(**ended, finished_at=timezone.now()):
        return _superseded(check_id)
    check.refresh_from_db()
    if check.status == ReplayCheck.Status.DONE and not check.ok:
        logger.error(
            "replay check %s: %s of %s decisions did not replay identically",
            check.pk,
            check.differs + check.not_replayed,
            check.replayed,
        )
        _email(check)
    return check


def _superseded(check_id: int) -> ReplayCheck | None:
    logger.warning(
        "replay check %s was queued again or ended while this worker replayed it "
        "(silent for over %s s?); this one stops",
        check_id,
        settings.DECISION_REPLAY_STALE_SECONDS,
    )
    return ReplayCheck.objects.filter(pk=check_id).first()


def replay_checks_recover() -> dict[str, list[int]]:
    """Queue again the replays whose worker stopped, send again those no worker took, and
    fail those that cannot finish. Beat calls it every minute; returns the ids
    ``{"resent": [...], "failed": [...]}``.

    - A running check silent for ``DECISION_REPLAY_STALE_SECONDS`` lost its worker (killed,
      or its machine gone). One a worker was sent is queued and sent again until it has
      been started ``DECISION_REPLAY_MAX_ATTEMPTS`` times, then failed. One replayed in
      the process that asked (``manage.py replay_decisions``, beat's daily sample) is
      failed: that process is gone, and the person runs it again.
    - A queued check no worker has taken ``DECISION_REPLAY_QUEUED_RESEND_SECONDS`` after
      it was sent is sent again, on doubling waits (the broker may have lost the message;
      a spare message finds the check taken and ends).
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DECISION_REPLAY_STALE_SECONDS)
    done: dict[str, list[int]] = {"resent": [], "failed": []}
    silent = ReplayCheck.objects.filter(status=ReplayCheck.Status.RUNNING).filter(
        Q(beat_at__lt=stale) | Q(beat_at__isnull=True, started_at__lt=stale)
    )
    for check in silent.only("pk", "attempts", "beat_at", "sent_at").order_by("pk"):
        same = ReplayCheck.objects.filter(
            pk=check.pk, status=ReplayCheck.Status.RUNNING, beat_at=check.beat_at
        )
        message = ""
        if check.sent_at is None:
            message = (
                "The process replaying it (manage.py replay_decisions, or beat's daily "
                "sample) stopped without finishing. Ask again."
            )
        elif check.attempts >= settings.DECISION_REPLAY_MAX_ATTEMPTS:
            message = (
                f"The replay was started {check.attempts} times and its worker stopped "
                "each time; the workers' log names the cause. Ask again."
            )
        if message:
            if same.update(status=ReplayCheck.Status.FAILED, finished_at=now, error=message):
                logger.error("replay check %s failed: %s", check.pk, message)
                done["failed"].append(check.pk)
        elif _send_again(check.pk, same, reason="lost its worker"):
            done["resent"].append(check.pk)

    first = settings.DECISION_REPLAY_QUEUED_RESEND_SECONDS
    waiting = ReplayCheck.objects.filter(
        status=ReplayCheck.Status.QUEUED, sent_at__lt=now - timedelta(seconds=first)
    )
    for check in waiting.only("pk", "requested_at", "sent_at").order_by("pk"):
        if not resend_due(check.requested_at, check.sent_at, now, first=first):
            continue
        same = ReplayCheck.objects.filter(
            pk=check.pk, status=ReplayCheck.Status.QUEUED, sent_at=check.sent_at
        )
        waited = round((now - check.sent_at).total_seconds())
        if _send_again(
            check.pk, same, reason=f"was not taken by a worker {waited} s after it was sent"
        ):
            done["resent"].append(check.pk)
    return done


def _send_again(check_id: int, same: QuerySet[ReplayCheck], *, reason: str) -> bool:
    """Queue a check again and send its task; False if it moved on meanwhile or the broker
    did not take the task (beat tries again in a minute)."""
    from kombu.exceptions import OperationalError

    from decisions.tasks import decision_replay_check_task

    if not same.update(status=ReplayCheck.Status.QUEUED, sent_at=timezone.now()):
        return False
    logger.warning("replay check %s %s; sending it again", check_id, reason)
    try:
        decision_replay_check_task.delay(check_id)
    except OperationalError as exc:
        logger.error("replay check %s could not be sent again: %s", check_id, exc)
        return False
    return True


def replay_check_daily() -> ReplayCheck | None:
    """Beat's daily sample: ``DECISION_REPLAY_DAILY_SAMPLE`` decisions drawn from the whole
    log and replayed here (None when it is 0, or the log is empty). A decision that no
    longer replays (a library upgrade that changed the numbers, a model file gone) is
    found within a day, not when an examiner asks."""
    size = settings.DECISION_REPLAY_DAILY_SAMPLE
    if not size or not Decision.objects.exists():
        return None
    check = ReplayCheck.objects.create(
        requested_by=None,
        requested_at=timezone.now(),
        size=size,
        seed=secrets.randbelow(2**31),
    )
    return replay_check_execute(check.pk)


def _email(check: ReplayCheck) -> None:
    from decisions.tasks import email_admins_and_auditors

    named = "\n".join(
        f"- {f['decision_id']} (seq {f['seq']}): "
        + (f"differs in {', '.join(f['fields'])}" if f["fields"] else f["message"])
        for f in check.findings[:20]
    )
    asked = check.requested_by.get_username() if check.requested_by else "beat's daily sample"
    email_admins_and_auditors(
        "[Arbiter] Logged decisions do not replay",
        f"Replay {check.pk} ({asked}, seed {check.seed}) recomputed {check.replayed} "
        f"decisions drawn at random from {check.population} and "
        f"{check.differs + check.not_replayed} did not replay identically: {check.differs} "
        f"differ from the log, {check.not_replayed} could not be replayed.\n\n{named}\n\n"
        "A decision that differs was altered in the log, or the software or a model file "
        "now computes it differently (after an upgrade?). The decision pages show the "
        "replay; python manage.py replay_decision ID shows each difference.\n",
    )


def _count(check: ReplayCheck, sample: ReplaySample) -> None:
    check.identical = sample.counts[IDENTICAL]
    check.differs = sample.counts[DIFFERS]
    check.not_replayed = sample.counts[NOT_REPLAYED]


def _finding(outcome: ReplayOutcome) -> dict[str, Any]:
    decision = outcome.decision
    return {
        "decision_id": str(decision.decision_id),
        "seq": decision.seq,
        "result": outcome.result,
        "fields": list(outcome.fields),
        "message": outcome.message,
    }
