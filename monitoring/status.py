"""Whether every part of an Arbiter installation is working: ``manage.py status``.

One check per part an operator runs (the database, the task queue, the workers, beat,
the artifact storage) and per thing they keep (the active deployments' model files, the
decision log's last verification, the decisions not yet sealed in a block and the last
replay of a sample, optimisation runs no worker is on, API keys near expiry). Each says
``ok``, ``warning`` or ``failing`` with a sentence naming what to look at. Checks only
read, except the storage check, which writes and removes one small file; none takes
longer than a few seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Q
from django.utils import timezone

from decisions.decision_log import decision_log_backlog

logger = logging.getLogger(__name__)

OK, WARNING, FAILING = "ok", "warning", "failing"
EXIT_CODES = {OK: 0, WARNING: 1, FAILING: 2}
"""The monitoring-plugin convention (Nagios, Icinga): 0 ok, 1 warning, 2 critical."""

BEAT_SILENT = timedelta(minutes=10)
"""Beat is presumed stopped when no periodic task has run for this long (the fastest runs
every 10 s; django-celery-beat records runs every 3 minutes)."""
VERIFICATION_AGE = timedelta(hours=36)
"""The daily check of the decision log should be younger than this."""
STORAGE_LOW_BYTES = 1024**3
MAIL_TIMEOUT = 10
"""Seconds to wait for the mail server's answer (EMAIL_TIMEOUT, when shorter, wins)."""
SEALING_LATE = timedelta(minutes=5)
"""Beat seals every few seconds: a decision unsealed this long means sealing has stopped."""
SEALING_FAILING = timedelta(hours=1)
"""An hour of decisions outside the block chain (a deletion among them would go unseen)."""
REPLAY_LATE = timedelta(minutes=30)
"""A replay of at most 10,000 decisions takes a worker under a minute."""


@dataclass(frozen=True)
class Check:
    name: str
    state: str
    message: str


def status_report(*, actor: Any, monitor_token: str | None = None) -> dict[str, Any]:
    """The checks for ``actor``, an administrator (they name hosts, paths and key
    prefixes), or for a monitoring system holding ``METRICS_TOKEN`` (``monitor_token``):
    administrators cannot hold API keys, so an HTTP monitor sends that token instead."""
    from arbiter.metrics import monitor_token_matches
    from governance.roles import Role, require_role

    if not monitor_token_matches(monitor_token):
        require_role(actor, {Role.ADMIN}, action="read the installation's status")
    return status_as_dict(status_checks())


def status_checks() -> list[Check]:
    """Every check, in the order an operator would look; a check that raises is failing."""
    eager = _eager()
    checks: list[Check] = []
    database = _guarded("database", _database)
    checks.append(database)
    checks.append(_guarded("task queue", _task_queue))
    if checks[-1].state == OK and not eager:
        checks.append(_guarded("workers", _workers))
    checks.append(_guarded("artifact storage", _storage))
    checks.append(_guarded("mail", _mail))
    if database.state != FAILING:
        if not eager:
            checks.append(_guarded("beat", _beat))
        checks.append(_guarded("deployments", _deployments))
        checks.append(_guarded("decision log", _decision_log))
        checks.append(_guarded("sealing", lambda: _sealing(eager)))
        checks.append(_guarded("replays", _replays))
        checks.append(_guarded("optimisation runs", _runs))
        checks.append(_guarded("API keys", _api_keys))
    return checks


def _eager() -> bool:
    """Whether tasks run in-process (no broker configured)."""
    from arbiter.celery import app

    return bool(app.conf.task_always_eager)


def status_state(checks: list[Check]) -> str:
    """The worst state of ``checks``."""
    return max((c.state for c in checks), key=EXIT_CODES.__getitem__, default=OK)


def status_as_dict(checks: list[Check]) -> dict[str, Any]:
    return {
        "state": status_state(checks),
        "checked_at": timezone.now().isoformat(),
        "checks": [asdict(c) for c in checks],
    }


def _guarded(name: str, check: Callable[[], tuple[str, str]]) -> Check:
    try:
        state, message = check()
    except Exception as exc:  # a check must report, never stop the others
        logger.exception("status check %s raised", name)
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        state, message = FAILING, f"The check itself failed: {type(exc).__name__} {first}".strip()
    return Check(name, state, message)


def _database() -> tuple[str, str]:
    from django.db import DatabaseError

    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return FAILING, f"Cannot connect: {first or type(exc).__name__}. Check DATABASE_URL."
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    where = _database_name()
    if pending:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in pending[:3])
        more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        return FAILING, (
            f"{where}: {len(pending)} migration(s) not applied ({names}{more}); run "
            "python manage.py migrate."
        )
    if connection.vendor == "sqlite":
        return WARNING, (
            f"{where}: SQLite, for a demo or one user (no append-only triggers on the decision "
            "log, one writer at a time); use PostgreSQL in production."
        )
    return OK, f"{where}: reachable, every migration applied."


def _database_name() -> str:
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite {config['NAME']}"
    host = config.get("HOST") or "local socket"
    port = f":{config['PORT']}" if config.get("PORT") else ""
    return f"{connection.display_name} database {config['NAME']} at {host}{port}"


def _task_queue() -> tuple[str, str]:
    from kombu.utils.url import maybe_sanitize_url

    from arbiter.celery import app

    if _eager():
        return WARNING, (
            "No broker (CELERY_BROKER_URL unset): tasks run inside the request or command "
            "that starts them, and no schedule runs (log seals are made by requests)."
        )
    url = maybe_sanitize_url(app.conf.broker_url)  # the password masked
    try:
        with app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # kombu and its transports raise several types
        return FAILING, f"The broker at {url} does not answer ({type(exc).__name__}: {exc})."
    return OK, f"The broker at {url} answers."


def _workers() -> tuple[str, str]:
    from arbiter.celery import app

    replies = app.control.inspect(timeout=2.0).active_queues() or {}
    if not replies:
        return FAILING, (
            "No Celery worker answered within 2 s: optimisation runs, seals of the decision "
            "log and scheduled jobs wait. Start one: celery -A arbiter worker."
        )
    takes: dict[str, list[str]] = {}
    for worker, queues in replies.items():
        for queue in queues:
            takes.setdefault(queue["name"], []).append(worker)
    default = app.conf.task_default_queue
    chunks = settings.OPTIMISATION_CHUNK_QUEUE
    summary = "; ".join(f"{q}: {', '.join(sorted(w))}" for q, w in sorted(takes.items()))
    if default not in takes:
        return FAILING, (
            f"No worker takes the queue {default!r}, where runs and scheduled jobs go "
            f"({summary}). Start one: celery -A arbiter worker -Q {default}."
        )
    if settings.OPTIMISATION_DISTRIBUTED != "off" and chunks not in takes:
        return WARNING, (
            f"No worker takes the queue {chunks!r}: a run larger than "
            f"{settings.OPTIMISATION_CHUNK_CUSTOMERS:,} customers will fail for want of chunk "
            f"workers ({summary}). Start one: celery -A arbiter worker -Q {chunks}."
        )
    return OK, f"{len(replies)} worker(s) answered ({summary})."


def _beat() -> tuple[str, str]:
    from django_celery_beat.models import PeriodicTask

    last = (
        PeriodicTask.objects.filter(name__in=list(settings.CELERY_BEAT_SCHEDULE))
        .exclude(last_run_at=None)
        .order_by("-last_run_at")
        .values_list("last_run_at", flat=True)
        .first()
    )
    if last is None:
        return (
            FAILING,
            "Beat has never run a scheduled job: start one beat (celery -A arbiter beat).",
        )
    silent = timezone.now() - last
    if silent > BEAT_SILENT:
        return FAILING, (
            f"Beat last ran a scheduled job {_ago(silent)} ago ({last:%Y-%m-%d %H:%M} UTC): "
            "it has stopped. Log seals, the recovery of stopped runs and the daily checks "
            "wait until one beat runs again."
        )
    return OK, f"Beat ran a scheduled job {_ago(silent)} ago."


def _storage() -> tuple[str, str]:
    root = Path(settings.ARTIFACT_ROOT)
    probe = root / f".status-{uuid.uuid4().hex}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"arbiter status")
        probe.unlink()
    except OSError as exc:
        return FAILING, f"{root} cannot be written ({exc.strerror or exc}): check ARTIFACT_ROOT."
    usage = shutil.disk_usage(root)
    free = f"{usage.free / 1024**3:.1f} GiB free of {usage.total / 1024**3:.1f}"
    if usage.free < STORAGE_LOW_BYTES or usage.free < 0.05 * usage.total:
        return WARNING, f"{root}: writable, but only {free}; uploads will soon be refused."
    if os.environ.get("ARTIFACT_ROOT") is None and not settings.DEBUG:
        return WARNING, f"{root}: writable ({free}), but ARTIFACT_ROOT is not set."
    return OK, f"{root}: writable, {free}."


# What a backend other than SMTP does with mail (EMAIL_URL's scheme picks it).
_NOT_SENT = {
    "console": "printed to the log",
    "locmem": "kept in memory",
    "filebased": "written to files",
    "dummy": "dropped",
}


def _mail() -> tuple[str, str]:
    """Whether mail leaves: alerts, executive reports, review notices and the decision
    log's tamper warnings all go by it."""
    from django.core.mail import get_connection

    kind = settings.EMAIL_BACKEND.rsplit(".", 2)[-2]
    if kind != "smtp":
        fate = _NOT_SENT.get(kind, f"handled by {settings.EMAIL_BACKEND}")
        return WARNING, (
            f"Mail is {fate}, not sent: alerts, executive reports, review notices and "
            "tamper warnings reach nobody. Set EMAIL_URL to the mail relay (smtp+tls://...)."
        )
    where = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
    relay = get_connection(timeout=min(settings.EMAIL_TIMEOUT or MAIL_TIMEOUT, MAIL_TIMEOUT))
    try:
        relay.open()  # connects, starts TLS and signs in, as sending does
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return FAILING, (
            f"The mail server {where} did not take a connection ({reason}): alerts, reports "
            "and review notices are not sent. Check EMAIL_URL."
        )
    finally:
        relay.close()
    secure = " over TLS" if settings.EMAIL_USE_TLS or settings.EMAIL_USE_SSL else ""
    signed = " and took the sign-in" if settings.EMAIL_HOST_USER else ""
    return OK, f"The mail server {where} answered{secure}{signed}."


def _deployments() -> tuple[str, str]:
    from governance.artifacts import artifact_problem
    from governance.models import Version, VersionStatus

    active = list(
        Version.objects.select_related("item").filter(
            item__kind="deployment", status=VersionStatus.ACTIVE
        )
    )
    if not active:
        return WARNING, "No deployment is active: every decision request answers 404."
    problems = []
    checked = 0
    for deployment in active:
        arms = [deployment.content, *deployment.content.get("challengers", [])]
        strategies = {(a["strategy"]["name"], int(a["strategy"]["version"])) for a in arms}
        for name, number in sorted(strategies):
            strategy = Version.objects.get(item__kind="strategy", item__name=name, number=number)
            for prediction in strategy.content.get("predictions", []):
                ref = prediction["model"]
                model = Version.objects.get(
                    item__kind="model", item__name=ref["name"], number=int(ref["version"])
                )
                checked += 1
                problem = artifact_problem(model.artifact_path, model.artifact_sha256)
                if problem:
                    problems.append(
                        f"{deployment.item.name} ({ref['name']} v{model.number}): {problem}"
                    )
    names = ", ".join(sorted(v.item.name for v in active))
    if problems:
        return FAILING, (
            f"{len(problems)} model file(s) missing or altered, so these deployments answer "
            f"503: {'; '.join(problems[:3])}."
        )
    return OK, f"{len(active)} active ({names}); their {checked} model file(s) match their hashes."


def _decision_log() -> tuple[str, str]:
    from decisions.models import LogVerification

    last = LogVerification.objects.order_by("-started_at").first()
    if last is None:
        return WARNING, "Never verified: run python manage.py verify_decisions."
    age = timezone.now() - last.started_at
    when = f"{_ago(age)} ago ({last.get_source_display()})"
    if not last.ok:
        where = f"block {last.first_bad_block}" if last.first_bad_block else last.first_bad_row
        return FAILING, (
            f"The last verification, {when}, found the log altered"
            f"{f' at {where}' if where else ''}: see python manage.py verify_decisions."
        )
    if age > VERIFICATION_AGE:
        return WARNING, (
            f"Intact when last verified, {when}: the daily check has not run since; is beat "
            "running?"
        )
    if last.skipped_rows:
        return OK, (
            f"Intact when verified {when}: every link, and {last.rows:,} of "
            f"{last.rows + last.skipped_rows:,} sealed decisions re-hashed (a rolling check)."
        )
    return OK, f"Intact when verified {when}: {last.rows:,} sealed decisions."


def _sealing(eager: bool) -> tuple[str, str]:
    count, age = decision_log_backlog()
    if age is None:
        return OK, "Every decision is sealed in a block."
    waiting = f"{count:,} decision(s) not sealed in a block, the oldest {_ago(age)} old"
    if eager:
        # No beat without a broker: rows are sealed when a block fills, or by hand.
        how = "sealed when a block fills, or by python manage.py seal_decisions"
    else:
        how = f"beat seals every {settings.DECISION_SEAL_SECONDS} s"
    if age <= SEALING_LATE:
        return OK, f"{waiting} ({how})."
    if eager:
        return WARNING, (
            f"{waiting}: run python manage.py seal_decisions (no beat without a broker)."
        )
    return FAILING if age > SEALING_FAILING else WARNING, (
        f"{waiting}: until sealed, a removed decision would go unseen. Is beat running? See the "
        "workers' log for decisions.tasks.decision_blocks_seal_task, or run python manage.py "
        "seal_decisions."
    )


def _replays() -> tuple[str, str]:
    from decisions.models import ReplayCheck

    last = (
        ReplayCheck.objects.filter(status__in=[ReplayCheck.Status.DONE, ReplayCheck.Status.FAILED])
        .select_related("requested_by")
        .order_by("-finished_at", "-pk")
        .first()
    )
    now = timezone.now()
    silent = now - timedelta(seconds=settings.DECISION_REPLAY_STALE_SECONDS)
    stuck = list(
        ReplayCheck.objects.filter(
            Q(status=ReplayCheck.Status.QUEUED, requested_at__lt=now - REPLAY_LATE)
            | Q(status=ReplayCheck.Status.RUNNING, beat_at__lt=silent)
        ).values_list("pk", flat=True)[:5]
    )
    if stuck:
        return WARNING, (
            f"Replay(s) {', '.join(map(str, stuck))} not finished: queued more than "
            f"{_ago(REPLAY_LATE)} ago, or their worker silent for over "
            f"{_ago(now - silent)}. Is a worker taking the default queue? Beat sends them "
            "again; python manage.py replay_decisions replays without a worker."
        )
    daily = settings.DECISION_REPLAY_DAILY_SAMPLE
    if last is None:
        every = f"beat replays {daily} a day" if daily else "no daily sample is set"
        return OK, f"No sample of the log replayed yet ({every})."
    who = last.requested_by.get_username() if last.requested_by else "the daily sample"
    when = f"replay {last.pk}, {_ago(timezone.now() - last.finished_at)} ago ({who})"
    if last.status == ReplayCheck.Status.FAILED:
        return WARNING, f"The last replay, {when}, stopped: {last.error}"
    if not last.ok:
        return FAILING, (
            f"The last replay, {when}, found {last.differs + last.not_replayed:,} of "
            f"{last.replayed:,} decisions not identical ({last.differs:,} differ, "
            f"{last.not_replayed:,} could not be replayed): see /decisions/replays/{last.pk}/."
        )
    return OK, f"The last replay, {when}: all {last.replayed:,} decisions identical."


def _runs() -> tuple[str, str]:
    from decisions.models import OptimisationRun, RunStatus

    going = list(
        OptimisationRun.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).only(
            "pk", "status", "sent_at", "created_at", "heartbeat_at"
        )
    )
    waiting = [r.pk for r in going if r.waiting]
    stalled = [r.pk for r in going if r.stalled]
    if waiting or stalled:
        parts = []
        if waiting:
            parts.append(f"no worker has taken run(s) {', '.join(map(str, waiting))}")
        if stalled:
            parts.append(f"the worker of run(s) {', '.join(map(str, stalled))} went quiet")
        return WARNING, "; ".join(parts).capitalize() + " (beat sends them again)."
    queued = sum(r.status == RunStatus.QUEUED for r in going)
    running = len(going) - queued
    return OK, f"{running} running, {queued} queued; none waiting on a worker."


def _api_keys() -> tuple[str, str]:
    from governance.models import ApiKey

    now = timezone.now()
    soon = now + timedelta(days=settings.API_KEY_WARN_DAYS)
    live = ApiKey.objects.filter(revoked_at=None).select_related("user")
    expiring = list(live.filter(expires_at__gt=now, expires_at__lte=soon).order_by("expires_at"))
    count = live.exclude(expires_at__lte=now).count()
    if expiring:
        named = ", ".join(
            f"{k.prefix} ({k.user.get_username()}, {k.expires_at:%Y-%m-%d})" for k in expiring[:5]
        )
        return (
            WARNING,
            f"{len(expiring)} key(s) expire within {settings.API_KEY_WARN_DAYS} days: {named}.",
        )
    return OK, f"{count} key(s) in use; none expires within {settings.API_KEY_WARN_DAYS} days."


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
