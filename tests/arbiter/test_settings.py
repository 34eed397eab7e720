"""Settings come from the environment; production settings pass Django's deploy checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def run_manage(
    *args: str, unset: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    dropped = {"SECRET_KEY", "DEBUG", *unset}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy_without_warnings(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        "--settings",
        "arbiter.settings.production",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="arbiter.example.com",
        DATABASE_URL="postgres://arbiter@db.example.com:5432/arbiter",  # not connected to
        CELERY_BROKER_URL="redis://redis.example.com:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_of_the_embedded_defaults(tmp_path):
    """The demo's SQLite and in-process tasks pass for a production service otherwise."""
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        "--settings",
        "arbiter.settings.production",
        unset=("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"),
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="arbiter.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    assert result.returncode != 0
    assert "(arbiter.W001) CELERY_BROKER_URL is not set" in result.stderr
    assert "(arbiter.W002) The database is SQLite" in result.stderr
    assert "System check identified 2 issues" in result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", "--settings", "arbiter.settings.production")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_a_short_secret_key():
    result = run_manage("check", "--settings", "arbiter.settings.production", SECRET_KEY="short")
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


def test_debug_off_needs_a_secret_key_even_outside_production():
    result = run_manage("check", "--settings", "arbiter.settings.local", DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_without_a_usable_secret_key_says_so_in_one_sentence(tmp_path):
    for command, key, sentence in (
        ("migrate", None, "SECRET_KEY must be set in the environment when DEBUG is off."),
        ("create_user", "short", "SECRET_KEY must be at least 50 characters of random text."),
    ):
        result = run_manage(
            command,
            DJANGO_SETTINGS_MODULE="arbiter.settings.production",
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            **({"SECRET_KEY": key} if key else {}),
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr == sentence + "\n"
        assert result.stdout == ""
    assert not (tmp_path / "db.sqlite3").exists()


def test_environment_drives_database_broker_and_mail(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.CELERY_TASK_ALWAYS_EAGER);"
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT);"
        "print(s.ARTIFACT_ROOT)"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "arbiter.settings.local",
            "DATABASE_URL": "postgres://u:p@db.internal:5432/arbiter",
            "CELERY_BROKER_URL": "redis://broker:6379/0",
            "EMAIL_URL": "smtp://mailer:2525",
            "ARTIFACT_ROOT": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    # Django's PostgreSQL backend with a health check that asks the socket first.
    assert lines[0] == "arbiter.db.postgresql"
    assert lines[1] == "False"  # a broker is configured: tasks go to workers
    assert lines[2] == "django.core.mail.backends.smtp.EmailBackend mailer 2525"
    assert lines[3] == str(tmp_path)


def test_without_a_broker_tasks_run_in_process():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s;"
            "print(s.CELERY_TASK_ALWAYS_EAGER, repr(s.CELERY_BROKER_URL))",
        ],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "arbiter.settings.local"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True 'memory://localhost/'"


def test_a_running_task_is_never_handed_to_a_second_worker_before_its_time_limit():
    from arbiter.celery import app

    timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert timeout > app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert timeout > settings.OPTIMISATION_TIME_LIMIT_SECONDS


def test_test_settings_run_tasks_in_process_whatever_the_broker():
    assert settings.CELERY_TASK_ALWAYS_EAGER is True


def test_openapi_schema_generates_without_warnings(tmp_path):
    result = run_manage(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(tmp_path / "schema.yaml"),
        DJANGO_SETTINGS_MODULE="arbiter.settings.test",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    schema = (tmp_path / "schema.yaml").read_text()
    assert "/api/v1/registry/{kind}/{name}/versions/{number}/{move}/" in schema
    assert "ApiKeyAuth" in schema


def test_production_serves_collected_static_files(tmp_path):
    """Without DEBUG nothing serves /static/ unless WhiteNoise does: the admin needs its CSS."""
    script = (
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('collectstatic', interactive=False, verbosity=0);"
        "from django.test import Client;"
        "from django.templatetags.static import static;"
        "url = static('admin/css/base.css');"
        "r = Client().get(url, secure=True, HTTP_HOST='arbiter.example.com');"
        "print(url, r.status_code, r.headers.get('Content-Type'), sep='|');"
        "icon = Client().get('/favicon.ico', secure=True, HTTP_HOST='arbiter.example.com');"
        "svg = Client().get(icon['Location'], secure=True, HTTP_HOST='arbiter.example.com');"
        "print(icon['Location'], svg.status_code, svg.headers.get('Content-Type'), sep='|')"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG"}}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "arbiter.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "arbiter.example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "STATIC_ROOT": str(tmp_path / "static"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    css, icon = (line.split("|") for line in result.stdout.strip().splitlines())
    url, status, content_type = css
    assert url.startswith("/static/admin/css/base.") and url != "/static/admin/css/base.css"
    assert status == "200" and content_type.startswith("text/css")
    # The site's icon by its hashed name, which may be cached for good.
    url, status, content_type = icon
    assert url.startswith("/static/favicon.") and url != "/static/favicon.svg"
    assert status == "200" and content_type.startswith("image/svg+xml")


def test_the_embedded_sqlite_database_keeps_a_write_ahead_log(tmp_path):
    """WAL: readers see a snapshot and neither block the writer nor wait for it."""
    result = run_manage(
        "shell",
        "-c",
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('PRAGMA journal_mode')\n"
        "    print(c.fetchone()[0])",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DEBUG="true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "wal", result.stdout


def test_on_sqlite_decisions_are_logged_while_the_log_is_checked():
    """CI runs the suite on PostgreSQL; this runs the concurrency test on the embedded
    SQLite default too, where a check used to hold the write lock for its whole length
    (every decision meanwhile waited, then failed as "could not be logged")."""
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PYTEST_ADDOPTS"}}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/decisions/test_decision_log.py",
            "-k",
            "what_commits_while_the_log_is_verified",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


@pytest.mark.postgres
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL); CI runs it"
)
def test_the_database_check_connects_as_the_entrypoint_waits_on_it():
    """``check --database default`` is the containers' wait for the database: it must fail
    while the server is down or the role is missing (Django's own checks do not connect)."""
    server = connection.settings_dict
    host, port, user = server["HOST"] or "127.0.0.1", server["PORT"] or "5432", server["USER"]
    good = f"postgres://{user}@{host}:{port}/{server['NAME']}"
    cases = {
        good: None,
        f"postgres://arbiter_no_such_role@{host}:{port}/{server['NAME']}": (
            'role "arbiter_no_such_role" does not exist'
        ),
        f"postgres://{user}@{host}:1/{server['NAME']}": "Connection refused",
    }
    for url, problem in cases.items():
        result = run_manage("check", "--database", "default", DATABASE_URL=url, DEBUG="true")
        if problem is None:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode == 1, result.stdout + result.stderr
            assert "(arbiter.E001) Cannot connect to database 'default'" in result.stderr
            assert problem in result.stderr
