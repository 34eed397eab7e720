"""Prometheus metrics: ``GET /metrics`` with ``Authorization: Bearer <METRICS_TOKEN>``.

Counted in the web processes: real-time decisions by deployment, arm and result, their
server-side time, and API answers in the common error body by status and code. Read from
the database at each scrape: optimisation runs by status, the decision log's last
verification and replayed sample, and the decisions not yet sealed in a block. Under
gunicorn every worker counts in its own files in ``PROMETHEUS_MULTIPROC_DIR``
(``platform/gunicorn.conf.py`` sets and clears it) and a scrape adds them up, whichever
worker answers it.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

DECISIONS = Counter(
    "arbiter_decisions",
    "Real-time decisions answered: created (logged now) or repeated (an Idempotency-Key "
    "seen before).",
    ["deployment", "arm", "result"],
)
DECISION_SECONDS = Histogram(
    "arbiter_decision_seconds",
    "Server-side time of a real-time decision, from the request to the logged decision.",
    ["deployment"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0),
)
API_ERRORS = Counter(
    "arbiter_api_errors",
    "API answers in the common error body, by HTTP status and error code.",
    ["status", "code"],
)


class DatabaseCollector:
    """What the database knows, read at scrape time (a few indexed queries)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from decisions.decision_log import decision_log_backlog
        from decisions.models import LogVerification, OptimisationRun, ReplayCheck, RunStatus

        runs = GaugeMetricFamily(
            "arbiter_optimisation_runs", "Optimisation runs by status.", labels=["status"]
        )
        counts = dict(
            OptimisationRun.objects.order_by()
            .values("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        for status in RunStatus.values:
            runs.add_metric([status], counts.get(status, 0))
        yield runs
        count, age = decision_log_backlog()
        yield GaugeMetricFamily(
            "arbiter_decision_log_unsealed",
            "Decisions logged but not yet sealed in a block.",
            value=count,
        )
        yield GaugeMetricFamily(
            "arbiter_decision_log_unsealed_oldest_seconds",
            "Age of the oldest decision not yet sealed in a block (0 when none); beat seals "
            "every few seconds, so a growing age means sealing has stopped.",
            value=age.total_seconds() if age is not None else 0.0,
        )
        replay = (
            ReplayCheck.objects.filter(status=ReplayCheck.Status.DONE)
            .order_by("-finished_at", "-pk")
            .first()
        )
        if replay is not None:
            yield GaugeMetricFamily(
                "arbiter_decision_replay_ok",
                "1 if every decision of the last replayed sample replayed identically, else 0.",
                value=1 if replay.ok else 0,
            )
            yield GaugeMetricFamily(
                "arbiter_decision_replay_timestamp_seconds",
                "When the last replayed sample of the decision log finished (Unix time).",
                value=replay.finished_at.timestamp(),
            )
        last = LogVerification.objects.order_by("-started_at", "-pk").first()
        if last is not None:
            yield GaugeMetricFamily(
                "arbiter_decision_log_verified_ok",
                "1 if the decision log's last verification found it intact, else 0.",
                value=1 if last.ok else 0,
            )
            yield GaugeMetricFamily(
                "arbiter_decision_log_verified_timestamp_seconds",
                "When the decision log's last verification started (Unix time).",
                value=last.started_at.timestamp(),
            )


def _registry() -> CollectorRegistry:
    if os.path.isdir(os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in (DECISIONS, DECISION_SECONDS, API_ERRORS):
            registry.register(collector)
    registry.register(DatabaseCollector())
    return registry


def bearer_token(request: Any) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def monitor_token_matches(given: str | None) -> bool:
    """Whether ``given`` is ``METRICS_TOKEN``, the monitoring systems' shared secret (never
    when none is set)."""
    token = settings.METRICS_TOKEN
    if not token or given is None:
        return False
    # As bytes: compare_digest refuses str with characters beyond ASCII (a 500, not a 401).
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics, for a scraper holding ``METRICS_TOKEN``; 404 when none is set (off)."""
    if not settings.METRICS_TOKEN:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    if not monitor_token_matches(bearer_token(request)):
        response = HttpResponse("A bearer token (METRICS_TOKEN) is needed.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="arbiter-metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


__all__ = [
    "API_ERRORS",
    "DECISIONS",
    "DECISION_SECONDS",
    "bearer_token",
    "metrics_view",
    "monitor_token_matches",
]
