"""Replaying many logged decisions at once: an examiner's random sample, or every one.

An examiner asks for, say, 1,000 decisions of a quarter picked at random and recomputed
from what the log kept. ``decision_replay_sample`` draws them uniformly from a set of
decisions (seeded, so the same seed over the same set draws the same decisions again)
and ``ReplaySample.outcomes`` replays each through ``decision_replay``. A decision that
cannot be replayed (a model file it needs is gone or altered) is counted and named, not
raised, so the rest of the sample still gets its answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Max, QuerySet

from decisions.models import Decision
from decisions.services import REPLAY_ROLES, decision_replay
from governance.exceptions import DomainError
from governance.roles import require_role

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

    actor: AbstractBaseUser
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
                outcome = _replay(self.actor, decision)
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
    through = decisions.aggregate(last=Max("seq"))["last"] or 0
    bounded = decisions.filter(seq__lte=through).order_by()
    population = bounded.count()
    if size is None or size >= population:
        return ReplaySample(actor, bounded, population, through, seed, None)
    # A draw anyone can repeat from its seed (the default seed is itself random).
    wanted = sorted(random.Random(seed).sample(range(population), size))  # noqa: S311
    return ReplaySample(actor, bounded, population, through, seed, _seqs_at(bounded, wanted))


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


def _replay(actor: AbstractBaseUser, decision: Decision) -> ReplayOutcome:
    try:
        replay = decision_replay(actor=actor, decision=decision)
    except DomainError as exc:
        return ReplayOutcome(decision, NOT_REPLAYED, message=exc.message)
    if replay.matches:
        return ReplayOutcome(decision, IDENTICAL)
    fields: list[Any] = [d["field"] for d in replay.differences]
    return ReplayOutcome(decision, DIFFERS, fields=tuple(dict.fromkeys(fields)))
