"""Distributed optimisation runs on two real Celery workers over Redis.

The workers are separate processes started here (``celery -A arbiter worker``) on a queue
of their own, with the broker from ``CELERY_BROKER_URL`` (CI: the local Redis, database
15) or the local Redis. They share the artifact root with this process (the shared
storage) and nothing else: no database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from django.conf import settings
from django.test import Client, override_settings
from kombu import Connection

from arbiter.celery import app
from decisions import distributed_runs
from decisions.decision_log import decision_blocks_seal, decision_log_verify
from decisions.distributed_runs import CeleryExecutor
from decisions.engine.distributed import LocalExecutor, chunk_choice, solve_chunks
from decisions.models import Decision, OptimisationRun, RunStatus
from decisions.optimisation import optimisation_run_create, optimisation_run_execute
from decisions.run_chunks import ChunkFolderMissing, chunk_operation, runs_root
from decisions.services import decision_replay
from tests.decisions.engine.test_distributed import offers, split
from tests.decisions.test_optimisation_runs import demo  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/15"


def require_broker() -> None:
    """Skip unless ``BROKER`` answers (CI fails on a skip: ARBITER_FORBID_SKIPS)."""
    try:
        with Connection(BROKER, connect_timeout=3) as probe:
            probe.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.skip(f"no broker at {BROKER}: {exc}")


@contextmanager
def celery_on(url: str) -> Iterator[None]:
    """The app sends its tasks to ``url`` (broker and result backend) instead of running
    them in-process, until the block ends. Celery reads ``CELERY_BROKER_URL`` and
    ``CELERY_RESULT_BACKEND`` from the environment before its configuration, so both
    are set too."""
    names = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    environment = {name: os.environ.get(name) for name in names}
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url", "result_backend")}
    os.environ.update(dict.fromkeys(names, url))
    app.conf.update(task_always_eager=False, broker_url=url, result_backend=url)
    reset_connections()
    try:
        yield
    finally:
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        app.conf.update(**saved)
        reset_connections()


def reset_connections() -> None:
    # The app caches its connection pools and result backend; after a change of broker
    # they must be built again (what Celery itself does after a fork).
    app._after_fork()
    app._backend_cache = None
    app._local = threading.local()


def _start_worker(
    name: str, queue: str, log: IO[str], artifact_root: Path | None = None
) -> subprocess.Popen:
    """A real ``celery worker`` process (solo pool) on ``queue``; the test's artifact root
    is its shared storage unless ``artifact_root`` is given, and it has no database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arbiter.settings.test",
        "ARTIFACT_ROOT": str(artifact_root or settings.ARTIFACT_ROOT),
        "CELERY_BROKER_URL": BROKER,
        "CELERY_RESULT_BACKEND": BROKER,
    }
    command = [sys.executable, "-m", "celery", "-A", "arbiter", "worker", "-Q", queue]
    command += ["-n", name, "--pool", "solo", "--without-gossip", "--without-mingle"]
    command += ["--loglevel", "INFO"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_until_answering(names: list[str], processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 120
    answered: set[str] = set()
    while answered != set(names):
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            logs = "\n".join(
                path.read_text()[-3000:] for path in Path(settings.ARTIFACT_ROOT).glob("*.log")
            )
            pytest.fail(f"the workers did not start; their logs:\n{logs}")
        for reply in app.control.ping(destination=names, timeout=1.0):
            answered.update(reply)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def workers():
    require_broker()
    queue = f"arbiter-chunks-test-{uuid.uuid4().hex[:8]}"
    names = [f"chunks{i}-{uuid.uuid4().hex[:6]}@localhost" for i in (1, 2)]
    logs = [open(Path(settings.ARTIFACT_ROOT) / f"worker-{i}.log", "w") for i in (1, 2)]  # noqa: SIM115
    processes = [_start_worker(name, queue, log) for name, log in zip(names, logs, strict=True)]
    try:
        with celery_on(BROKER):
            _wait_until_answering(names, processes)
            with override_settings(OPTIMISATION_CHUNK_QUEUE=queue):
                yield names
    finally:
        _stop(processes)
        for log in logs:
            log.close()


def test_two_workers_solve_a_portfolio_as_one_process_does(workers):
    value, usage, limit = offers(24_000, seed=11)
    allowed = np.ones(value.shape, dtype=bool)
    allowed[np.random.default_rng(2).uniform(size=value.shape) < 0.1] = False
    allowed[:, 0] = True
    folder = runs_root() / f"test-{uuid.uuid4().hex[:8]}"
    # A residual small enough for the exact solver to prove optimal: with a time-limited
    # residual, where the search stops depends on the machine's speed.
    options = {"sample": 2000, "residual_pairs": 120, "residual_seconds": 20.0}
    local_folders = split(folder / "local", value, usage, allowed, 6)
    local = solve_chunks(LocalExecutor(), local_folders, limit, **options)

    folders = split(folder / "celery", value, usage, allowed, 6)
    executor = CeleryExecutor(check=lambda: None, deadline=time.monotonic() + 600)
    distributed = solve_chunks(executor, folders, limit, **options)

    assert executor.workers == set(workers)  # both workers took chunks
    assert distributed.status == local.status
    np.testing.assert_allclose(distributed.prices, local.prices, rtol=1e-9, atol=1e-12)
    assert distributed.objective == pytest.approx(local.objective, rel=1e-9)
    assert distributed.bound == pytest.approx(local.bound, rel=1e-9)
    assert distributed.iterations == local.iterations
    # The choice the workers stored is feasible and worth the objective.
    choice = np.concatenate([chunk_choice(f) for f in folders])
    rows = np.arange(len(value))
    assert allowed[rows, choice].all()
    assert value[rows, choice].sum() == pytest.approx(distributed.objective, rel=1e-12)
    assert np.all(usage[:, rows, choice].sum(axis=1) <= limit + 1e-6)


def test_a_chunk_whose_worker_dies_is_sent_again(workers):
    """A worker killed in the middle of a chunk: its heartbeat stops, the chunk goes to
    another worker, and the solve ends as if nothing had happened."""
    value, usage, limit = offers(8_000, seed=5)
    allowed = np.ones(value.shape, dtype=bool)
    folder = runs_root() / f"test-{uuid.uuid4().hex[:8]}"
    options = {"sample": 1000, "residual_pairs": 120, "residual_seconds": 20.0}
    local = solve_chunks(
        LocalExecutor(), split(folder / "local", value, usage, allowed, 3), limit, **options
    )
    folders = split(folder / "celery", value, usage, allowed, 3)
    # The first chunk's values are a named pipe for now: the worker that takes the first
    # task blocks reading it, so it is surely in the middle of a chunk when it is killed.
    real = Path(folders[0]) / "value.real"
    pipe = Path(folders[0]) / "value.npy"
    pipe.replace(real)
    os.mkfifo(pipe)
    queue = f"arbiter-chunks-loss-{uuid.uuid4().hex[:8]}"
    victim, survivor = (f"{who}-{uuid.uuid4().hex[:6]}@localhost" for who in ("victim", "survivor"))
    root = Path(settings.ARTIFACT_ROOT)
    with open(root / "victim.log", "w") as victim_log, open(root / "survivor.log", "w") as log:
        processes = [_start_worker(victim, queue, victim_log)]
        try:
            _wait_until_answering([victim], processes)
            with override_settings(
                OPTIMISATION_CHUNK_QUEUE=queue, OPTIMISATION_CHUNK_LOST_SECONDS=3.0
            ):
                executor = CeleryExecutor(check=lambda: None, deadline=time.monotonic() + 600)
                sent = []
                send = executor._send
                executor._send = lambda operation, call: (
                    sent.append(send(operation, call)) or sent[-1]
                )
                outcome: dict[str, object] = {}

                def coordinate() -> None:
                    try:
                        outcome["solution"] = solve_chunks(executor, folders, limit, **options)
                    except BaseException as error:  # reported below
                        outcome["error"] = error

                thread = threading.Thread(target=coordinate, daemon=True)
                thread.start()
                deadline = time.monotonic() + 60
                # The victim took the first chunk's task and is beating while it waits on
                # the pipe (the other chunks' tasks of the round wait in the queue).
                blocked = None
                while blocked is None:
                    assert time.monotonic() < deadline, "the victim never blocked on the chunk"
                    time.sleep(0.05)
                    for result in list(sent):
                        info = result.info if result.state == "STARTED" else None
                        if isinstance(info, dict) and info.get("beat", 0) >= 2:
                            blocked = info
                assert blocked["hostname"] == victim
                processes[0].kill()
                processes[0].wait(timeout=30)
                real.replace(pipe)  # the chunk is readable again, for whoever takes it next
                processes.append(_start_worker(survivor, queue, log))
                thread.join(timeout=300)
            assert not thread.is_alive(), "the run stalled on the lost chunk"
            assert "error" not in outcome, outcome.get("error")
        finally:
            _stop(processes)
            with Connection(BROKER) as connection:
                connection.default_channel.queue_purge(queue)
    distributed = outcome["solution"]
    assert executor.resent == 1
    assert executor.workers == {survivor}  # the victim finished nothing
    assert distributed.status == local.status
    np.testing.assert_allclose(distributed.prices, local.prices, rtol=1e-9, atol=1e-12)
    assert distributed.objective == pytest.approx(local.objective, rel=1e-9)
    assert distributed.bound == pytest.approx(local.bound, rel=1e-9)


@pytest.mark.django_db(transaction=True)
def test_a_distributed_run_equals_the_single_process_run(workers, demo, monkeypatch):  # noqa: F811
    maker, auditor = demo["maker"], demo["auditor"]
    population = {"customers": 3000, "seed": 21}
    with override_settings(
        OPTIMISATION_DISTRIBUTED="on",
        OPTIMISATION_CHUNK_CUSTOMERS=700,
        OPTIMISATION_RESIDUAL_PAIRS=120,
        OPTIMISATION_RESIDUAL_SECONDS=20.0,
    ):
        run = optimisation_run_create(
            actor=maker, deployment="cross-sell", simulated=population, enqueue=False
        )
        run = optimisation_run_execute(run.pk)
        assert run.status == RunStatus.SUCCEEDED, (run.error, run.error_details)
        # The reference: the same chunks, every operation in this process.
        monkeypatch.setattr(distributed_runs, "chunked_mode", lambda customers: "in_process")
        reference = optimisation_run_create(
            actor=maker, deployment="cross-sell", simulated=population, enqueue=False
        )
        reference = optimisation_run_execute(reference.pk)
    assert reference.status == RunStatus.SUCCEEDED, reference.error

    assert run.execution["mode"] == "workers"
    assert run.execution["chunks"] == 5
    assert set(run.execution["workers"]) == set(workers)
    assert reference.execution["workers"] == ["this process"]
    assert run.objective == pytest.approx(reference.objective, rel=1e-9)
    assert run.bound == pytest.approx(reference.bound, rel=1e-9)
    for name, price in reference.prices.items():
        assert run.prices[name] == pytest.approx(price, rel=1e-9, abs=1e-12)
    assert run.kpis["total"]["value"] == pytest.approx(run.objective, rel=1e-9)
    assert run.kpis["total"]["customers"] == 3000

    # Every customer's decision is logged once, with reasons, and verifies and replays.
    assert run.decisions_logged == 3000
    logged = Decision.objects.filter(run=run)
    assert logged.count() == 3000
    assert logged.values("customer_id").distinct().count() == 3000
    # In population order, as a single-process run logs them, however the chunks finished.
    order = list(logged.order_by("seq").values_list("customer_id", flat=True))
    assert order == [f"sim-21-{i}" for i in range(3000)]
    actions = dict(logged.values_list("customer_id", "action_id"))
    same = dict(Decision.objects.filter(run=reference).values_list("customer_id", "action_id"))
    agree = np.mean([actions[c] == same[c] for c in actions])
    assert agree >= 0.99
    time.sleep(settings.DECISION_SEAL_GRACE_SECONDS + 0.5)
    decision_blocks_seal()
    report = decision_log_verify()
    assert report.ok, report.problems
    for decision in logged.order_by("?")[:25]:
        assert decision.reasons is not None
        replay = decision_replay(actor=auditor, decision=decision)
        assert replay.matches, replay.differences
    # The run says how it was computed, on its page and in the API.
    client = Client()
    client.force_login(maker)
    page = client.get(f"/optimisation/{run.pk}/").content.decode()
    assert "in 5 chunks of up to 700 customers by 2 workers" in page
    detail = client.get(f"/api/v1/optimisation-runs/{run.pk}/").json()
    assert detail["execution"]["workers"] == sorted(workers)
    # The run's folder of shared storage is gone.
    assert not list(runs_root().glob(f"run-{run.pk}-*"))
    assert OptimisationRun.objects.get(pk=run.pk).execution == run.execution


@pytest.mark.django_db(transaction=True)
def test_a_round_no_worker_takes_fails_the_run_naming_the_queue(workers, demo):  # noqa: F811
    queue = f"arbiter-chunks-nobody-{uuid.uuid4().hex[:8]}"
    with override_settings(
        OPTIMISATION_DISTRIBUTED="on",
        OPTIMISATION_CHUNK_CUSTOMERS=500,
        OPTIMISATION_CHUNK_QUEUE=queue,
        OPTIMISATION_CHUNK_START_SECONDS=1.0,
    ):
        run = optimisation_run_create(
            actor=demo["maker"],
            deployment="cross-sell",
            simulated={"customers": 1000, "seed": 3},
            enqueue=False,
        )
        run = optimisation_run_execute(run.pk)
    with Connection(BROKER) as connection:
        connection.default_channel.queue_purge(queue)
    assert run.status == RunStatus.FAILED
    assert "No worker took the run's chunk tasks within 1 s" in run.error
    assert queue in run.error
    assert not Decision.objects.filter(run=run).exists()
    assert not list(runs_root().glob(f"run-{run.pk}-*"))


@pytest.mark.django_db(transaction=True)
def test_a_chunk_worker_without_the_shared_storage_fails_the_run_saying_so(
    demo,  # noqa: F811
    tmp_path,
    caplog,
):
    """A machine whose ARTIFACT_ROOT is not the storage the run's folder is on (the
    mistake "On several machines" warns of): the run fails with a sentence, not as an
    internal error."""
    require_broker()
    queue = f"arbiter-chunks-elsewhere-{uuid.uuid4().hex[:8]}"
    name = f"elsewhere-{uuid.uuid4().hex[:6]}@localhost"
    with open(tmp_path / "elsewhere.log", "w") as log:
        processes = [_start_worker(name, queue, log, artifact_root=tmp_path / "elsewhere")]
        try:
            with celery_on(BROKER):
                _wait_until_answering([name], processes)
                with override_settings(
                    OPTIMISATION_DISTRIBUTED="on",
                    OPTIMISATION_CHUNK_CUSTOMERS=500,
                    OPTIMISATION_CHUNK_QUEUE=queue,
                ):
                    run = optimisation_run_create(
                        actor=demo["maker"],
                        deployment="cross-sell",
                        simulated={"customers": 1000, "seed": 3},
                        enqueue=False,
                    )
                    run = optimisation_run_execute(run.pk)
        finally:
            _stop(processes)
    assert run.status == RunStatus.FAILED
    assert "cannot see the run's folder" in run.error
    assert "mount the same shared storage at the same ARTIFACT_ROOT" in run.error
    assert "internal error" not in run.error
    assert run.error_details["operation"] == "score"
    assert run.error_details["chunk"] in (1, 2)
    # The coordinator's log names the machine and the two roots.
    assert "is not a run folder under the artifact root of machine" in caplog.text
    assert str(tmp_path / "elsewhere") in caplog.text
    assert not Decision.objects.filter(run=run).exists()
    assert not list(runs_root().glob(f"run-{run.pk}-*"))


def test_a_chunk_folder_missing_from_the_shared_storage_is_named(settings, tmp_path):
    """The same path on a machine whose storage is not the shared one."""
    settings.ARTIFACT_ROOT = tmp_path
    missing = runs_root() / "run-1-1-abcdef12" / "chunk-00000"
    with pytest.raises(ChunkFolderMissing, match="does not exist on machine") as raised:
        chunk_operation("score", {"directory": str(missing)})
    assert str(tmp_path) in str(raised.value)
    with pytest.raises(ChunkFolderMissing, match="is not a run folder"):
        chunk_operation("score", {"directory": "/etc"})
