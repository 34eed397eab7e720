"""Distributed optimisation runs: chunks of customers scored, priced and logged by Celery
workers, coordinated by the run's own task.

With a broker configured, a run whose population is larger than
``OPTIMISATION_CHUNK_CUSTOMERS`` is split into chunks of that many customers
(``OPTIMISATION_DISTRIBUTED``: ``auto``, the default; ``on`` splits every run, in this
process when no broker is configured; ``off`` never splits). The run's task, wherever it
runs, becomes the coordinator:

1. it reads and validates the population a chunk at a time (an uploaded file is never in
   its memory whole), writes each chunk's customers and the
   decision function's bundle to a folder of shared storage (``run_chunks``), and sends
   one ``score`` task per chunk;
2. it solves the portfolio problem with ``engine.distributed.solve_chunks``: every price
   iteration is a round of ``dual`` tasks, each answering with its chunk's dual value and
   use of each limit, so no process but a chunk's worker ever holds a chunk's arrays;
   the few thousand customers the prices leave nearly indifferent come to the
   coordinator and are solved exactly;
3. ``finish`` tasks write each chunk's decisions, hashed, to a staged COPY file in
   parallel; the coordinator loads each staged file as soon as its worker is done, in
   the one transaction that marks the run succeeded (opened before the first), so a
   failed or cancelled run still logs nothing.

Chunk tasks go to their own queue, ``OPTIMISATION_CHUNK_QUEUE``: the coordinator waits
for them, so a worker pool that takes runs must not be the only one that takes chunks
(``docs/optimisation-runs.md`` shows the commands). If no worker takes a round within
``OPTIMISATION_CHUNK_START_SECONDS`` the run fails saying so. A chunk whose worker stops
sending heartbeats for ``OPTIMISATION_CHUNK_LOST_SECONDS`` is sent again (``CeleryExecutor``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction

from decisions.decision_log import log_writer_enter
from decisions.engine.decision_function import DecisionFunction
from decisions.engine.distributed import solve_chunks
from decisions.models import Decision, OptimisationRun
from decisions.populations import Population, population_slice
from decisions.run_chunks import (
    POPULATION,
    STAGED,
    ChunkFolderMissing,
    bundle_write,
    chunk_operation,
    copy_fields,
    population_write,
    run_folder,
    runs_root,
)

logger = logging.getLogger(__name__)

ON, OFF, AUTO = "on", "off", "auto"
Each = Callable[[int, dict[str, Any]], None]
"""Called with a chunk's index and its result as each chunk's result arrives."""
IN_PROCESS, ON_WORKERS = "in_process", "workers"


def chunked_mode(customers: int) -> str | None:
    """How a run of ``customers`` is computed in chunks: on workers, in this process, or
    not in chunks at all (None)."""
    setting = settings.OPTIMISATION_DISTRIBUTED
    eager = bool(current_app.conf.task_always_eager)
    if setting == OFF:
        return None
    if setting == ON:
        return IN_PROCESS if eager else ON_WORKERS
    if not eager and customers > settings.OPTIMISATION_CHUNK_CUSTOMERS:
        return ON_WORKERS
    return None


class LocalChunkExecutor:
    """Every chunk operation in this process (``OPTIMISATION_DISTRIBUTED=on``, no broker)."""

    workers: set[str]
    resent = 0  # nothing is ever lost in this process

    def __init__(self, check: Any) -> None:
        self.check = check
        self.workers = {"this process"}

    def map(
        self, operation: str, calls: list[dict[str, Any]], each: Each | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for i, call in enumerate(calls):
            out.append(chunk_operation(operation, call))
            if each is not None:
                each(i, out[-1])
            self.check()
        return out


class CeleryExecutor:
    """Each round of chunk operations as Celery tasks on the chunk queue.

    Waits for the round while checking, about twice a second, that the run was not
    cancelled (``check`` raises), that a worker took the round and that the run's time is
    not up; a round abandoned for any of those is revoked.

    A chunk whose worker died is sent again: a started task refreshes its state every
    ``lost_seconds / 6`` (``tasks.run_chunk_task``), and one whose refreshes stop for
    ``lost_seconds`` is presumed lost. Chunk operations are idempotent, so a presumed-lost
    task that was only slow does no harm; each chunk is sent again at most
    ``MAX_RESENDS`` times a round before the run fails. (A message a worker had taken but
    not started when it died is not seen here: with one task prefetched per worker and
    the task started at once, that window is milliseconds, and the broker redelivers it.)
    """

    MAX_RESENDS = 3

    def __init__(self, check: Any, deadline: float) -> None:
        self.check = check
        self.deadline = deadline
        self.workers: set[str] = set()
        self.queue = settings.OPTIMISATION_CHUNK_QUEUE
        self.start_seconds = settings.OPTIMISATION_CHUNK_START_SECONDS
        self.lost_seconds = float(settings.OPTIMISATION_CHUNK_LOST_SECONDS)
        self.resent = 0
        """Chunk tasks sent again over the run because their worker was presumed lost."""

    def map(
        self, operation: str, calls: list[dict[str, Any]], each: Each | None = None
    ) -> list[dict[str, Any]]:
        """The results in call order; ``each(i, result)`` is called as each arrives."""
        results = [self._send(operation, call) for call in calls]
        replaced: list[Any] = []  # tasks presumed lost, sent again
        try:
            values = self._gather(operation, calls, results, each, replaced)
        except BaseException:
            for result in results:
                result.revoke()
            raise
        finally:
            for result in results + replaced:
                result.forget()
        self.workers.update(v["worker"] for v in values)
        return [v["result"] for v in values]

    def _send(self, operation: str, call: dict[str, Any]) -> Any:
        from decisions.tasks import run_chunk_task

        beat = max(0.1, self.lost_seconds / 6)
        return run_chunk_task.apply_async((operation, call), {"beat": beat}, queue=self.queue)

    def _gather(
        self,
        operation: str,
        calls: list[dict[str, Any]],
        results: list[Any],
        each: Each | None,
        replaced: list[Any],
    ) -> list[dict[str, Any]]:
        from decisions.optimisation import RunFailed

        sent = time.monotonic()
        last_check, pause, taken = sent, 0.001, False
        values: list[Any] = [None] * len(results)
        pending = list(range(len(values)))
        # Per pending chunk: the last heartbeat seen and when (this clock), and resends.
        seen: dict[int, tuple[Any, float]] = {}
        resends = [0] * len(results)
        while pending:
            for i in [i for i in pending if results[i].ready()]:
                # The coordinator may itself be a task: waiting on its own subtasks is safe
                # here because they go to a queue of their own (see the module's docstring).
                try:
                    values[i] = results[i].get(disable_sync_subtasks=False, propagate=True)
                except ChunkFolderMissing as exc:
                    logger.error("chunk %s of a distributed run: %s", i + 1, exc)
                    raise RunFailed(
                        f"A worker that took chunk {i + 1} of the run cannot see the run's "
                        "folder: it does not share the artifact storage the run's worker wrote "
                        "it to. Every machine that computes chunks must mount the same "
                        "shared storage at the same ARTIFACT_ROOT (docs/optimisation-runs.md, "
                        "'On several machines'); the workers' log names the machine. The run "
                        "logged no decision.",
                        code="chunk_storage",
                        details={"chunk": i + 1, "operation": operation},
                    ) from None
                pending.remove(i)
                taken = True
                if each is not None:
                    each(i, values[i]["result"])
                pause = 0.001
            if not pending:
                break
            now = time.monotonic()
            if now - last_check >= 0.5:
                last_check = now
                self.check()
                states = {i: results[i].state for i in pending}
                if not taken:
                    taken = any(state != "PENDING" for state in states.values())
                if not taken and now - sent > self.start_seconds:
                    raise RunFailed(
                        f"No worker took the run's chunk tasks within {self.start_seconds:g} s. "
                        f"Start workers on the queue {self.queue!r} (celery -A arbiter worker "
                        f"-Q {self.queue}), or set OPTIMISATION_DISTRIBUTED=off.",
                        code="no_workers",
                        details={"queue": self.queue},
                    )
                if now > self.deadline:
                    raise RunFailed(
                        "The run exceeded its time limit waiting for its chunks.",
                        code="time_limit",
                    )
                for i in self._lost(pending, states, results, seen, now):
                    resends[i] += 1
                    if resends[i] > self.MAX_RESENDS:
                        raise RunFailed(
                            f"Chunk {i + 1} of the run lost its worker {self.MAX_RESENDS + 1} "
                            "times; giving up.",
                            code="chunk_lost",
                            details={"chunk": i + 1, "operation": operation},
                        )
                    results[i].revoke()
                    replaced.append(results[i])
                    results[i] = self._send(operation, calls[i])
                    seen.pop(i, None)
                    self.resent += 1
            time.sleep(pause)
            pause = min(0.05, pause * 1.5)
        return values

    def _lost(
        self,
        pending: list[int],
        states: dict[int, str],
        results: list[Any],
        seen: dict[int, tuple[Any, float]],
        now: float,
    ) -> list[int]:
        """The started chunks whose heartbeat has not moved for ``lost_seconds``."""
        lost = []
        for i in pending:
            if states[i] != "STARTED":
                seen.pop(i, None)
                continue
            info = results[i].info
            marker = (info.get("hostname"), info.get("beat")) if isinstance(info, dict) else info
            last = seen.get(i)
            if last is None or last[0] != marker:
                seen[i] = (marker, now)  # this clock: workers' clocks may differ
            elif now - last[1] > self.lost_seconds:
                lost.append(i)
        return lost


def _clear_old_folders(run_id: int) -> None:
    """A restarted run's earlier attempts' folders (their worker died)."""
    root = runs_root()
    if root.is_dir():
        for old in root.glob(f"run-{run_id}-*"):
            shutil.rmtree(old, ignore_errors=True)


def execute_chunked(
    run: OptimisationRun,
    reporter: Any,
    function: DecisionFunction,
    pieces: Iterable[Population],
    *,
    mode: str,
    deadline: float,
) -> None:
    """The scoring, solving and logging of ``_execute``, in chunks (see the module).

    ``pieces``: the validated population, in pieces of any size (a file being read), cut
    here into chunks of ``OPTIMISATION_CHUNK_CUSTOMERS``.
    """
    from decisions import optimisation as runs

    _clear_old_folders(run.pk)
    folder = run_folder(run.pk, run.attempts)
    folder.mkdir(parents=True)
    try:
        bundle_write(folder, run.strategy_version, run.constraint_set_version)
        size = settings.OPTIMISATION_CHUNK_CUSTOMERS
        chunks, n = [], 0
        # Each piece becomes a chunk as it is read; the iterator raises after the last
        # piece if the population had problems (the folder is then removed, below).
        for piece in pieces:
            for start in range(0, piece.size, size):
                part = population_slice(piece, slice(start, start + size))
                chunk = folder / f"chunk-{len(chunks):05d}"
                chunk.mkdir()
                population_write(chunk / POPULATION, part, slice(None))
                chunks.append(str(chunk))
                n += part.size
            reporter.check()
        run.customers = n
        OptimisationRun.objects.filter(pk=run.pk).update(customers=n)
        executor: CeleryExecutor | LocalChunkExecutor = (
            CeleryExecutor(reporter.check, deadline)
            if mode == ON_WORKERS
            else LocalChunkExecutor(reporter.check)
        )

        reporter.phase("scoring", 10)
        executor.map("score", [{"directory": c} for c in chunks])
        reporter.check()

        reporter.phase("solving", 40)

        def on_round(operation: str, rounds: int) -> None:
            reporter.progress(40 + 19 * rounds / (rounds + 30))
            reporter.check()

        solution = solve_chunks(
            executor,
            chunks,
            function.limit_bounds(),
            time_limit=max(1.0, deadline - time.monotonic()),
            residual_pairs=settings.OPTIMISATION_RESIDUAL_PAIRS,
            residual_seconds=settings.OPTIMISATION_RESIDUAL_SECONDS,
            on_round=on_round,
        )
        run.execution = {
            "mode": mode,
            "chunks": len(chunks),
            "chunk_customers": size,
            "workers": sorted(executor.workers),
            "price_iterations": solution.iterations,
            "rounds": solution.rounds,
            "residual_customers": solution.residual,
            "resent": executor.resent,
        }
        prices = runs.record_solution(run, function, solution)
        reporter.check()

        common = runs.log_common(run, function) if run.log_decisions else None
        calls = [{"directory": c, "prices": prices.tolist(), "common": common} for c in chunks]

        def finish(each: Each | None = None) -> None:
            finished = executor.map("finish", calls, each)
            run.kpis = runs.kpis_from_sums(
                function, runs.kpi_sums_add([f["kpis"] for f in finished])
            )
            run.kpis["price_agreement"] = sum(f["agree"] for f in finished) / n
            run.execution["workers"] = sorted(executor.workers)
            run.execution["resent"] = executor.resent

        if not run.log_decisions:
            reporter.phase("finishing", 60)
            finish()
            runs.succeed(run, reporter, logged=0)
            return
        reporter.phase("logging", 60)
        # The transaction opens before the workers write: each chunk's staged decisions are
        # loaded as soon as its worker is done, while the others still write theirs.
        with transaction.atomic():
            reporter.in_log_transaction = True
            try:
                log_writer_enter()
                loader = _StagedLoader(reporter, [Path(c) / STAGED for c in chunks], n)
                finish(loader.ready)
                reporter.phase("finishing", 99)
                runs.succeed(run, reporter, logged=loader.loaded)
            finally:
                reporter.in_log_transaction = False
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _StagedLoader:
    """Chunks' staged decisions into the log, within the caller's transaction: COPY on
    PostgreSQL, bulk INSERT elsewhere.

    Chunks are loaded in population order (so the log's order is the population's, as in
    a single-process run): a chunk that is ready waits for the ones before it.
    """

    def __init__(self, reporter: Any, files: list[Path], n: int) -> None:
        self.reporter, self.files, self.n = reporter, files, n
        self.loaded, self.next, self.done = 0, 0, set()

    def ready(self, index: int, result: dict[str, Any]) -> None:
        self.done.add(index)
        while self.next in self.done:
            self.load(self.files[self.next])
            self.next += 1

    def load(self, path: Path) -> None:
        from decisions.optimisation import COLUMNS

        if connection.vendor == "postgresql":
            sql = f"COPY decisions_decision ({', '.join(COLUMNS)}) FROM STDIN"
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(sql) as copy,
                path.open("rb") as staged,
            ):
                while block := staged.read(1 << 20):
                    copy.write(block)
                    self.loaded += block.count(b"\n")
        else:
            with path.open(encoding="utf-8") as staged:
                batch = []
                for line in staged:
                    batch.append(_decision_from_copy(line))
                    if len(batch) == 500:
                        Decision.objects.bulk_create(batch)
                        self.loaded += len(batch)
                        batch = []
                Decision.objects.bulk_create(batch)
                self.loaded += len(batch)
        self.reporter.progress(60 + 39 * self.loaded / self.n)


def _decision_from_copy(line: str) -> Decision:
    from decisions.optimisation import COLUMNS, JSON_COLUMNS

    values: dict[str, Any] = {}
    for name, text in zip(COLUMNS, copy_fields(line), strict=True):
        if text is None:
            values[name] = None
        elif name in JSON_COLUMNS:
            values[name] = json.loads(text)
        else:
            values[name] = Decision._meta.get_field(name).to_python(text)
    return Decision(**values)


__all__ = ["AUTO", "OFF", "ON", "CeleryExecutor", "chunked_mode", "execute_chunked"]
