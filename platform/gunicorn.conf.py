"""Gunicorn settings for the web role (platform/entrypoint.sh passes this file with ``-c``).

Read by gunicorn, not by Django: ``WEB_CONCURRENCY`` and ``FORWARDED_ALLOW_IPS`` are the
server's knobs, so they are not in ``arbiter.settings.base.ENVIRONMENT_VARIABLES``.
Every public name here must be a gunicorn setting: gunicorn silently ignores unknown names,
so tests/arbiter/test_deployment_files.py checks them.
"""

import gc
import os

MAX_AUTO_WORKERS = 8


def _cores() -> int:
    # The CPUs this process may run on (a cpuset-limited container sees fewer than the host).
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _workers() -> int:
    """``WEB_CONCURRENCY`` when set to a positive number; otherwise 2 x cores + 1, at most 8.

    Each worker holds its own copy of Django, numpy and the loaded models, so memory, not CPU,
    is what the cap protects on large hosts.
    """
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    # gunicorn itself int()s WEB_CONCURRENCY on import, so only numbers get this far;
    # 0 (docker-compose.yml's default) means "choose for me".
    if raw and int(raw) > 0:
        return int(raw)
    return min(2 * _cores() + 1, MAX_AUTO_WORKERS)


# All interfaces inside the container; what is published to the host is docker-compose.yml's call.
bind = "0.0.0.0:8000"
workers = _workers()
worker_class = "gthread"
threads = 4
# A real-time decision takes milliseconds; a request still running after 60 s is stuck.
timeout = 60
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so slow leaks (fragmentation) cannot build up; the jitter keeps
# them from all restarting at once. Not too often: a new worker loads every model again.
max_requests = 20000
max_requests_jitter = 2000
# Heartbeat files on tmpfs: on the container's overlay filesystem a slow disk write can make
# the arbiter think a healthy worker hung.
worker_tmp_dir = "/dev/shm"  # noqa: S108
accesslog = "-"
errorlog = "-"
# TLS ends at the proxy in front, which sets X-Forwarded-For/-Proto; the default "*" trusts any
# peer, which is right only when nothing but that proxy can reach port 8000.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# No gunicornc control socket: compose restarts the container to change anything, and the
# default path under $HOME is not worth a warning on every start.
control_socket_disable = True


# Prometheus counters (arbiter/metrics.py): each worker writes its own files in a folder of
# this server's (named by the master's pid, so two servers on a host never mix) and a
# scrape, whichever worker answers it, adds them up. The master sets it before it forks the
# workers, which then import prometheus_client; a restart starts counting from zero.
def on_starting(server):
    """An empty metrics folder for this server, named in the workers' environment."""
    import shutil

    folder = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR",
        f"/dev/shm/arbiter-metrics-{os.getpid()}",  # noqa: S108 (this server's own, on tmpfs)
    )
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def on_exit(server):
    """Remove this server's metrics folder."""
    import shutil

    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def child_exit(server, worker):
    """A worker that exited: its gauges no longer count (its counters still do)."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    except Exception:  # a worker that never imported it left nothing
        server.log.debug("no metrics of worker %s to retire", worker.pid)


def post_worker_init(worker):
    """Load and compile every active deployment before the worker takes requests.

    Otherwise the first decisions after a (re)start pay for loading models and building
    SHAP explainers: hundreds of milliseconds instead of a few.
    """
    from django.apps import apps

    # Only when the app is Arbiter's: benchmarks/decision_latency.py also serves an app
    # without Django (benchmarks/trivial_wsgi.py) with this file.
    if apps.ready:
        try:
            from decisions.runtime import warm_up

            warm_up()
        except Exception:  # a cold worker still serves; it just warms on first use
            worker.log.exception("warming the decision runtime failed")
    # Everything loaded so far (Django, models, SHAP explainers: about 300,000 objects with
    # the demo) lives as long as the worker. Frozen, the garbage collector stops walking it:
    # a full collection, which Python starts now and then in the middle of some request,
    # took about 150 ms before and nothing after (benchmarks/RESULTS.md, decision latency).
    gc.collect()
    gc.freeze()
