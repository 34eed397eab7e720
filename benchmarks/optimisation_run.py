"""End to end: one optimisation run on PostgreSQL, from population to logged decisions,
in one process and distributed over Celery workers, side by side.

    .venv/bin/python benchmarks/optimisation_run.py [--customers 200000] [--use-case onboarding]
        [--workers 2] [--chunk N] [--broker redis://127.0.0.1:6379/14] [--no-verify]

Creates a fresh PostgreSQL database, loads the demo, registers and approves a constraint
set sized for the population (the demo's is sized for 5,000 customers), then runs the
optimisation twice on the same simulated population:

1. in this process exactly as the Celery task does without chunks
   (``OPTIMISATION_DISTRIBUTED=off``): load and check the population, score every customer
   on every action, solve, explain every decision with SHAP reasons and COPY it into the
   decision log;
2. distributed (``OPTIMISATION_DISTRIBUTED=on``): ``--workers`` Celery worker processes
   (``--pool solo``, started here on a queue of their own, broker ``--broker``, the same
   ARTIFACT_ROOT, no database use) score, price and stage the decisions of chunks of
   ``--chunk`` customers (default customers / 8); this process is the coordinator: it
   calls ``optimisation_run_execute`` itself, waits for the chunks and COPYs their staged
   decisions into PostgreSQL. ``--workers 0`` skips this run.

Prints each run's time of each phase, decisions per second end to end, objective and gap
(and the distributed run's execution record), then the ratio of the two times and whether
the objectives and the decisions agree. After the single-process run it seals the log and
times ``verify_decisions``'s check of every logged decision (``--no-verify`` skips it).
Target (issue 4): >= 20,000 decisions per second for 200,000 customers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 20_000


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (all CPUs, /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    ticks = [int(v) for v in fields]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (/proc/<pid>/stat)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--use-case", default="onboarding")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--workers", type=int, default=2, help="Celery worker processes; 0 skips the run"
    )
    parser.add_argument(
        "--chunk", type=int, default=0, help="customers per chunk (default customers / 8)"
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip sealing and verifying the log after the single-process run",
    )
    args = parser.parse_args()
    if args.chunk <= 0:
        args.chunk = max(1, -(-args.customers // 8))

    import psycopg

    name = f"arbiter_runbench_{os.getpid()}"
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    artifacts = tempfile.mkdtemp(prefix="arbiter-runbench-")
    os.environ.update(
        {
            "DATABASE_URL": f"{args.postgres}/{name}",
            "ARTIFACT_ROOT": artifacts,
            "DJANGO_SETTINGS_MODULE": "arbiter.settings.local",
            "DEBUG": "true",
            "OMP_NUM_THREADS": "1",
        }
    )
    # Before django.setup(): with a broker the settings make Celery not eager here, so the
    # distributed run sends its chunks to the workers. Without workers, no broker at all.
    if args.workers > 0:
        os.environ["CELERY_BROKER_URL"] = args.broker
        os.environ["CELERY_RESULT_BACKEND"] = args.broker
    else:
        os.environ.pop("CELERY_BROKER_URL", None)
        os.environ.pop("CELERY_RESULT_BACKEND", None)
    try:
        run_benchmark(args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(artifacts, ignore_errors=True)


class Workers:
    """``count`` Celery worker processes on a queue of their own; logs kept in ``logs``."""

    def __init__(self, count: int, broker: str, queue: str) -> None:
        self.queue, self.broker = queue, broker
        self.names = [f"runbench{i}-{uuid.uuid4().hex[:6]}@localhost" for i in range(count)]
        self.logs = Path(tempfile.mkdtemp(prefix="arbiter-runbench-workers-"))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "arbiter.settings.local",
            "DEBUG": "true",
            "OMP_NUM_THREADS": "1",
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
        }
        self.files = []
        self.processes: list[subprocess.Popen] = []
        for i, name in enumerate(self.names):
            log = open(self.logs / f"worker-{i}.log", "w")  # noqa: SIM115
            self.files.append(log)
            self.processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "arbiter",
                        "worker",
                        "-Q",
                        queue,
                        "-n",
                        name,
                        "--pool",
                        "solo",
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel",
                        "INFO",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def wait_ready(self, timeout: float = 120.0) -> float:
        from arbiter.celery import app

        started = time.monotonic()
        answered: set[str] = set()
        while answered != set(self.names):
            if time.monotonic() - started > timeout or any(
                p.poll() is not None for p in self.processes
            ):
                raise SystemExit(f"the workers did not start; their logs:\n{self.tails()}")
            for reply in app.control.ping(destination=self.names, timeout=1.0):
                answered.update(reply)
        return time.monotonic() - started

    def tails(self, chars: int = 4000) -> str:
        out = []
        for i in range(len(self.names)):
            path = self.logs / f"worker-{i}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- {path} (last {chars} chars) ---\n{text[-chars:]}")
        return "\n".join(out)

    def stop(self) -> list[int | None]:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=60))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        for log in self.files:
            log.close()
        if self.broker.startswith("redis://"):
            try:  # the queue and its bindings (kombu's keys) would stay in the broker's DB
                import redis

                client = redis.Redis.from_url(self.broker)
                client.delete(
                    self.queue,
                    f"_kombu.binding.{self.queue}",
                    f"_kombu.binding_permanent.{self.queue}",
                )
                client.close()
            except Exception as exc:  # cleanup only
                print(f"could not delete the queue {self.queue!r}: {exc}")
        return codes


def seal_and_verify() -> None:
    """Seal the log (what beat does every few seconds) and time ``verify_decisions``'s
    check of all of it: what an auditor waits for after a run."""
    from decisions.decision_log import decision_blocks_seal, decision_log_verify

    print(f"\n== sealing and verifying the log (load average {loadavg()})", flush=True)
    started = time.perf_counter()
    blocks = decision_blocks_seal(grace_seconds=0)
    sealed = time.perf_counter() - started
    started = time.perf_counter()
    report = decision_log_verify()
    verified = time.perf_counter() - started
    rows = report.rows + report.unsealed
    print(
        f"sealed {sum(b.row_count for b in blocks):,} decisions in {len(blocks):,} blocks: "
        f"{sealed:.2f} s; verified {rows:,} decisions in {report.blocks:,} blocks: "
        f"{verified:.2f} s = {verified / max(1, rows) * 1e6:.1f} us a decision, "
        f"{'intact' if report.ok else 'NOT INTACT: ' + '; '.join(report.problems)}",
        flush=True,
    )


def run_benchmark(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from celery import current_app
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings

    from decisions import runtime
    from decisions.demo_setup import demo_load
    from decisions.models import Decision
    from decisions.optimisation import optimisation_run_create, optimisation_run_execute
    from decisions.simulator.use_cases import use_case
    from governance import services

    print(f"load average at start: {loadavg()}", flush=True)
    if args.workers > 0 and current_app.conf.task_always_eager:
        raise SystemExit("Celery is eager in this process: the broker was not picked up")

    call_command("migrate", interactive=False, verbosity=0)
    demo_load()
    users = get_user_model().objects
    maker, checker = users.get(username="maker"), users.get(username="checker")
    deployment = args.use_case
    active = runtime.active_deployment(deployment)
    strategy = active.content["strategy"]
    limits_item = active.content["constraint_set"]["name"]
    content = use_case(args.use_case).constraints(strategy["name"], customers=args.customers)
    limits = services.version_create(
        actor=maker, kind="constraint_set", name=limits_item, content=content
    )
    services.version_submit(actor=maker, version=limits)
    services.version_approve(actor=checker, version=limits, comment="Reviewed.")

    def one_run(label: str, worker_pids: tuple[int, ...] = ()) -> dict[str, Any]:
        last = {"phase": "", "at": time.perf_counter()}

        def progress(phase: str, percent: float) -> None:
            if phase != last["phase"]:
                now = time.perf_counter()
                print(f"  {now - last['at']:7.2f} s  {last['phase'] or 'start'} done", flush=True)
                last.update(phase=phase, at=now)

        print(f"\n== {label} (load average {loadavg()})", flush=True)
        cpu = {"this process": time.process_time(), "machine": machine_busy_seconds()}
        cpu.update({f"worker {pid}": process_cpu_seconds(pid) for pid in worker_pids})
        started = time.perf_counter()
        run = optimisation_run_create(
            actor=maker,
            strategy=strategy,
            constraint_set={"name": limits_item, "version": limits.number},
            simulated={"customers": args.customers, "seed": args.seed},
            enqueue=False,
        )
        run = optimisation_run_execute(run.pk, progress=progress)
        elapsed = time.perf_counter() - started
        used = {"this process": time.process_time(), "machine": machine_busy_seconds()}
        used.update({f"worker {pid}": process_cpu_seconds(pid) for pid in worker_pids})
        used = {k: v - cpu[k] for k, v in used.items()}
        if run.status != "succeeded":
            raise RuntimeError(
                f"{label}: run {run.pk} {run.status}: {run.error} {run.error_details or ''}"
            )
        logged = Decision.objects.filter(run=run).count()
        phases = run.phase_seconds
        rate = logged / elapsed
        print(
            f"{args.use_case}: {run.customers:,} customers x {len(run.kpis['per_action'])} "
            f"actions x {len(run.limits)} limits on PostgreSQL"
        )
        print(
            f"solver: {run.solver_status}, objective {run.objective:.6f}, bound "
            f"{run.bound:.6f}, certified gap {run.gap:.2e}, "
            f"price agreement {run.kpis['price_agreement']:.4f}"
        )
        print("phase seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
        print(f"execution: {run.execution}")
        print(f"decisions logged: {logged:,} (run says {run.decisions_logged:,})")
        print(
            f"end to end: {elapsed:.2f} s = {rate:,.0f} decisions/s "
            f"(target >= {TARGET:,}/s: {'MET' if rate >= TARGET else 'MISSED'})"
        )
        if phases.get("logging"):
            print(f"logging phase alone: {logged / phases['logging']:,.0f} decisions/s")
        ours = sum(v for k, v in used.items() if k != "machine")
        print(
            "CPU seconds: "
            + ", ".join(f"{k} {v:.1f}" for k, v in used.items())
            + f" of {os.cpu_count() or 0} x {elapsed:.1f} available; other processes "
            f"(PostgreSQL, other jobs) {used['machine'] - ours:.1f}"
        )
        print(f"load average after: {loadavg()}", flush=True)
        if logged != args.customers or run.decisions_logged != logged:
            print(f"WARNING: {logged:,} decisions logged for {args.customers:,} customers")
        return {"run": run, "elapsed": elapsed, "logged": logged, "rate": rate}

    workers = None
    try:
        if args.workers > 0:
            queue = f"arbiter-chunks-bench-{os.getpid()}"
            workers = Workers(args.workers, args.broker, queue)
            ready = workers.wait_ready()
            print(
                f"{args.workers} workers ready on queue {queue!r} in {ready:.1f} s "
                f"(logs in {workers.logs})",
                flush=True,
            )

        with override_settings(OPTIMISATION_DISTRIBUTED="off"):
            single = one_run("single process (OPTIMISATION_DISTRIBUTED=off)")
        if args.verify:
            seal_and_verify()
        if workers is None:
            return
        try:
            with override_settings(
                OPTIMISATION_DISTRIBUTED="on",
                OPTIMISATION_CHUNK_CUSTOMERS=args.chunk,
                OPTIMISATION_CHUNK_QUEUE=workers.queue,
            ):
                distributed = one_run(
                    f"distributed: {args.workers} workers, chunks of {args.chunk:,} customers",
                    tuple(p.pid for p in workers.processes),
                )
        except BaseException:
            print(f"\nthe distributed run failed; worker logs:\n{workers.tails()}", flush=True)
            raise

        a, b = single["run"], distributed["run"]
        if b.execution.get("mode") != "workers":
            print(f"WARNING: the distributed run's mode is {b.execution.get('mode')!r}")
        difference = abs(a.objective - b.objective) / max(abs(a.objective), abs(b.objective))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM decisions_decision s JOIN decisions_decision d "
                "ON s.customer_id = d.customer_id WHERE s.run_id = %s AND d.run_id = %s "
                "AND s.action_id = d.action_id",
                [a.pk, b.pk],
            )
            same = cursor.fetchone()[0]
        print("\n== side by side")
        print(
            f"single process: {single['elapsed']:.2f} s = {single['rate']:,.0f} decisions/s; "
            f"distributed ({args.workers} workers): {distributed['elapsed']:.2f} s = "
            f"{distributed['rate']:,.0f} decisions/s"
        )
        print(f"ratio single / distributed time: {single['elapsed'] / distributed['elapsed']:.2f}x")
        # Both objectives are within their certified gaps of the optimum: they agree when
        # they differ by no more than the larger gap allows.
        allowed = max(a.gap, b.gap) + 1e-9
        print(
            f"objectives: {a.objective:.6f} vs {b.objective:.6f}, relative difference "
            f"{difference:.2e} ({'agree: within' if difference <= allowed else 'DIFFER: beyond'}"
            f" the larger certified gap {max(a.gap, b.gap):.2e}); bounds {a.bound:.6f} vs "
            f"{b.bound:.6f}; gaps {a.gap:.2e} vs {b.gap:.2e}"
        )
        print(
            f"same action for {same:,} of {single['logged']:,} customers "
            f"({same / max(1, single['logged']):.4%})"
        )
    finally:
        if workers is not None:
            codes = workers.stop()
            print(f"workers stopped (exit codes {codes}); logs in {workers.logs}", flush=True)
        print(f"load average at end: {loadavg()}", flush=True)


if __name__ == "__main__":
    main()
