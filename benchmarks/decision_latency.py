"""Real-time decision latency: the demo onboarding deployment on PostgreSQL behind gunicorn.

    .venv/bin/python benchmarks/decision_latency.py [--requests 5000] [--rate 100]

Creates a fresh PostgreSQL database, loads the demo, starts gunicorn (2 workers) with the
production settings and platform/gunicorn.conf.py (what the web role runs: gthread
workers with keep-alive; ``--worker-class sync`` for one request per connection), and
from a separate process sends requests open-loop at a fixed rate (each request is timed
from its scheduled start, so a slow server cannot hide behind a slow client). Prints
p50/p95/p99 and the ratio of p99 to the bare in-process time of the same work (predict +
SHAP for one customer, no HTTP, no database), measured
in the same run. Then the floor: the same client at the same rate against the same
gunicorn serving an app that does nothing (``benchmarks/trivial_wsgi.py``), what the
client, the server and the loopback cost on the machine before any decision code runs.
Targets (issue 3): p99 <= 15 ms, ratio <= 3.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def fresh_database(base_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    return f"{base_url}/{name}"


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def customers(n: int) -> list[dict]:
    from decisions.simulator.use_cases import population

    frame = population("onboarding", n, seed=2026)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def client_process(
    port: int, key: str, bodies: list[bytes], rate: float, threads: int, out: multiprocessing.Queue
) -> None:
    """Open-loop load: request i is due at start + i / rate; latency from that moment."""
    start = time.perf_counter() + 0.5
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))

    def work() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            try:
                connection.request(
                    "POST",
                    "/api/v1/decisions/",
                    body=bodies[i],
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Api-Key {key}",
                    },
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = repr(exc)
            elapsed = time.perf_counter() - due
            with lock:
                if status == 201:
                    latencies.append(elapsed * 1000)
                else:
                    failures.append(str(status))
        connection.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put((latencies, failures, time.perf_counter() - start))


def gunicorn(app: str, args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen:
    """gunicorn serving ``app`` with the web role's config and the benchmark's options."""
    return subprocess.Popen(
        [
            PYTHON, "-m", "gunicorn", app,
            "-c", "platform/gunicorn.conf.py",
            "--workers", str(args.workers), "--bind", f"127.0.0.1:{args.port}",
            *(["--worker-class", args.worker_class] if args.worker_class else []),
            "--log-level", "warning", "--access-logfile", "/dev/null",
        ],
        cwd=ROOT, env=env,
    )  # fmt: skip


def answer(port: int, method: str, path: str, what: str, read: Any = bytes, **request: Any) -> Any:
    """``read`` of the body of the first answer to ``method path`` that it accepts (no
    ValueError), while the server starts (30 s)."""
    for _ in range(150):
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request(method, path, **request)
            return read(probe.getresponse().read())
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer")


def send(
    port: int, key: str, bodies: list[bytes], rate: float, threads: int
) -> tuple[list[float], list[str], float]:
    """``client_process`` in a process of its own: (latencies ms, failures, seconds)."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    load = multiprocessing.Process(
        target=client_process, args=(port, key, bodies, rate, threads, queue)
    )
    load.start()
    result = queue.get()
    load.join()
    return result


def floor_latencies(
    args: argparse.Namespace, env: dict[str, str], bodies: list[bytes], key: str
) -> list[float]:
    """The same client, rate and gunicorn against an app that does nothing
    (``benchmarks/trivial_wsgi.py``): the part of the latency no decision code can remove."""
    if not bodies:
        return []
    server = gunicorn("benchmarks.trivial_wsgi:application", args, env)
    try:
        answer(args.port, "POST", "/", "gunicorn (trivial app)", body=b"{}")
        send(args.port, key, bodies[:100], 50.0, 4)  # warm-up, as for the endpoint
        latencies, failures, _ = send(args.port, key, bodies, args.rate, args.threads)
        if failures:
            raise SystemExit(f"requests to the trivial app failed: {failures[:5]}")
        return latencies
    finally:
        server.terminate()
        server.wait(timeout=30)


def bare_in_process(env: dict[str, str], people: list[dict], repeats: int) -> float:
    """Median ms of the engine's work for one customer: predict every model + SHAP."""
    os.environ.update(env)
    import django

    django.setup()
    from decisions import runtime
    from decisions.services import _evaluate

    arm = runtime.arm_runtime("champion", runtime.active_deployment("onboarding").content)
    wanted = list(arm.function.features)
    samples = []
    for i in range(repeats + 50):
        features = {k: people[i % len(people)][k] for k in wanted}
        started = time.perf_counter()
        _evaluate(arm=arm, features=features)
        if i >= 50:  # warm caches first
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=8, help="client connections")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--worker-class",
        default=None,
        choices=["sync", "gthread"],
        help="default: platform/gunicorn.conf.py's (gthread, 4 threads, keep-alive)",
    )
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--floor-requests",
        type=int,
        default=2000,
        help="requests to an app that does nothing, for the harness's own floor (0: skip)",
    )
    args = parser.parse_args()

    name = f"arbiter_bench_{os.getpid()}"
    database_url = fresh_database(args.postgres, name)
    artifacts = tempfile.mkdtemp(prefix="arbiter-bench-")
    os.makedirs(os.path.join(artifacts, "static"))  # whitenoise warns about a missing root
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env = {
        **base,
        "DATABASE_URL": database_url,
        "ARTIFACT_ROOT": artifacts,
        "STATIC_ROOT": os.path.join(artifacts, "static"),
        "OMP_NUM_THREADS": "1",
    }
    demo_env = {**env, "DJANGO_SETTINGS_MODULE": "arbiter.settings.local", "DEBUG": "true"}
    prod_env = {
        **env,
        "DJANGO_SETTINGS_MODULE": "arbiter.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
    }
    server = None
    try:
        print("loading the demo into", name, flush=True)
        manage(demo_env, "demo", "--no-serve")
        key = manage(prod_env, "create_api_key", "--user", "lending-app").strip()
        server = gunicorn("arbiter.wsgi:application", args, prod_env)
        schema = answer(
            args.port,
            "GET",
            "/api/v1/deployments/onboarding/",
            "gunicorn",
            read=json.loads,
            headers={"Authorization": f"Api-Key {key}"},
        )
        wanted = [f["name"] for f in schema["features"]]
        os.environ.update({"DJANGO_SETTINGS_MODULE": "arbiter.settings.test"})
        sys.path.insert(0, str(ROOT))
        people = [{k: p[k] for k in wanted} for p in customers(2000)]

        def body(prefix: str, i: int) -> bytes:
            return json.dumps(
                {
                    "deployment": "onboarding",
                    "customer_id": f"{prefix}-{i}",
                    "features": people[i % len(people)],
                }
            ).encode()

        bodies = [body("b", i) for i in range(args.requests)]
        warm = [body("w", i) for i in range(100)]
        # Warm-up: every worker loads the models and builds its explainers.
        _, warm_failures, _ = send(args.port, key, warm, 50.0, 4)
        if warm_failures:
            raise SystemExit(f"warm-up requests failed: {warm_failures[:5]}")
        print(f"sending {args.requests} requests at {args.rate:g}/s", flush=True)
        workers = children(server.pid)
        cpu_before = (cpu_seconds(workers), cpu_seconds(postgres_pids()))
        latencies, failures, seconds = send(args.port, key, bodies, args.rate, args.threads)
        cpu_web = cpu_seconds(workers) - cpu_before[0]
        cpu_db = cpu_seconds(postgres_pids()) - cpu_before[1]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    floor = floor_latencies(args, prod_env, bodies[: args.floor_requests], key)
    bare = bare_in_process(prod_env, people, repeats=500)
    from decisions.models import Decision

    logged = list(
        Decision.objects.filter(customer_id__startswith="b-").values_list("latency_ms", flat=True)
    )
    drop_database(args.postgres, name)

    p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
    print(f"gunicorn: {args.workers} workers, {args.worker_class or 'gthread (the config file)'}")
    print(f"requests: {len(latencies)} ok, {len(failures)} failed, {seconds:.1f} s")
    print(f"end-to-end latency ms: p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f}")
    print(
        f"server-side deciding ms (from the log): p50 {percentile(logged, 50):.2f}  "
        f"p99 {percentile(logged, 99):.2f}"
    )
    done = max(1, len(latencies))
    print(
        f"CPU per request: gunicorn workers {cpu_web / done * 1000:.2f} ms, "
        f"PostgreSQL {cpu_db / done * 1000:.2f} ms"
    )
    if floor:
        floor_p50, floor_p99 = percentile(floor, 50), percentile(floor, 99)
        print(
            f"floor (the same client and gunicorn, an app that does nothing; {len(floor)} "
            f"requests): p50 {floor_p50:.2f}  p99 {floor_p99:.2f}; p99 above it "
            f"{p99 - floor_p99:.2f} ms"
        )
    print(f"bare in-process predict + SHAP, one customer: median {bare:.2f} ms")
    print(f"ratio p99 / bare: {p99 / bare:.2f}")
    print(f"targets: p99 <= 15 ms {'MET' if p99 <= 15 else 'MISSED'}; "
          f"ratio <= 3 {'MET' if p99 / bare <= 3 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
