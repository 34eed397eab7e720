"""GET /metrics: Prometheus text for a scraper with the token, counted across gunicorn workers."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-me-" + "x" * 30


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == wanted:
            return float(match.group(3))
    return 0.0


def scrape(client: Client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


@pytest.mark.django_db
def test_metrics_need_the_token_and_are_off_without_one(settings):
    web = Client()
    assert web.get("/metrics").status_code == 404  # no token configured: no endpoint
    settings.METRICS_TOKEN = TOKEN
    refused = web.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert web.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    # Text beyond ASCII (latin-1 in a header) is a wrong token too, not a server error.
    assert web.get("/metrics", HTTP_AUTHORIZATION="Bearer caf\u00e9").status_code == 401
    assert web.get("/metrics", HTTP_AUTHORIZATION=f"Api-Key {TOKEN}").status_code == 401
    assert web.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gunicorn_workers_count_into_one_scrape(tmp_path):
    """Real gunicorn workers with the web role's config, replaced as they are in production
    (max_requests): any one scrape adds up the counts of every worker, gone or not."""
    database = tmp_path / "metrics.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "arbiter.settings.local",
        "DATABASE_URL": f"sqlite:///{database}",
        "ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "METRICS_TOKEN": TOKEN,
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "platform/gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            # A worker is replaced after 10 requests (production: 20,000): the 40 below
            # are served by at least four processes, whose counts must all be kept.
            "--max-requests",
            "10",
            "--max-requests-jitter",
            "0",
            "arbiter.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def get(path: str, **headers: str) -> tuple[int, str]:
            # Generous: when both workers reach max_requests together, the next request
            # waits for a new worker to import Django and the models (seconds on a busy
            # machine); this test is about counts, not speed.
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
            connection.request("GET", path, headers={"Host": "localhost", **headers})
            response = connection.getresponse()
            body = response.read().decode()
            connection.close()
            return response.status, body

        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = get("/accounts/login/")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                log.flush()
                pytest.fail((tmp_path / "gunicorn.log").read_text()[-3000:])
            time.sleep(0.3)

        # Unauthenticated API calls: 401, counted by whichever worker took them.
        assert [get("/api/v1/decisions/")[0] for _ in range(40)] == [401] * 40
        scrapes = [get("/metrics", Authorization=f"Bearer {TOKEN}") for _ in range(6)]
        for status, body in scrapes:
            assert status == 200
            assert (
                sample(body, "arbiter_api_errors_total", status="401", code="not_authenticated")
                == 40
            )
        files = list((tmp_path / "metrics").glob("counter_*.db"))
        assert len(files) >= 4, files  # each worker process counted in its own file
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert not (tmp_path / "metrics").exists() or not any((tmp_path / "metrics").iterdir())
