"""Drift of a model version's inputs and score: the logged decisions of a window against the
reference sample sealed in the version (``content["reference_sample"]``).

For one model version and one window ``[since, until)``:

1. the **logged inputs**: the ``features`` of the decisions of deployed traffic (real time
   and optimisation runs of a deployment) whose strategy version predicts with this model
   version, made in the window. A window with more than ``DRIFT_SAMPLE_ROWS`` of them is
   compared on a uniform random sample of that many, seeded by the version's content hash
   and the window, so the same report can be recomputed exactly;
2. **data drift** with Evidently's data-drift preset: per feature the test Evidently picks
   for the column type and sample size, its statistic, threshold and drift flag, and the
   share of drifted features (Evidently's dataset drift when at least half drifted);
3. **prediction drift**: the model's score recomputed with the model runtime
   (``decisions.runtime``) on the window's rows and on the reference sample, compared by
   Evidently's value-drift test as one more column (not counted in the share);
4. the **population stability index** per feature and for the score (``monitoring.psi``).
   The report's status is the band of the largest PSI: stable, watch or act.

The figures are stored as a ``DriftReport``; Evidently's HTML report as a file under
``ARTIFACT_ROOT/reports/drift/``. One report per (model version, window): asking again
returns the stored one. Evidently is imported only here, when a report is computed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import slugify

from decisions.models import Decision
from decisions.selectors import customer_decisions
from governance.exceptions import NotFound, ValidationFailed
from governance.models import Version, VersionStatus
from monitoring import psi
from monitoring.models import DriftReport, DriftStatus

#: The score's column in the Evidently report. Feature names may not contain "__"
#: (``decisions.feature_schema``), so it never collides with one.
SCORE_COLUMN = "model__score"
WINDOW = timedelta(days=1)
MAX_WINDOW = timedelta(days=366)
#: The daily task looks back this many complete days, so a missed run catches up.
CATCH_UP_DAYS = 2
REPORT_FOLDER = Path("reports") / "drift"
_LOCKED = (VersionStatus.APPROVED, VersionStatus.ACTIVE, VersionStatus.RETIRED)
_CHUNK = 2_000


@dataclass(frozen=True)
class DriftWindow:
    since: datetime
    until: datetime


@dataclass
class DriftComparison:
    """What ``drift_compare`` found: the figures of a report, and Evidently's HTML."""

    features: list[dict[str, Any]]
    score: dict[str, Any]
    share_drifted: float
    drifted_features: int
    dataset_drift: bool
    psi_score: float | None
    psi_max: float | None
    status: str
    html: str = field(repr=False)
    evidently_version: str


# --- windows and model versions --------------------------------------------------------


def drift_window_default(*, now: datetime | None = None) -> DriftWindow:
    """The last complete UTC day."""
    now = (now or timezone.now()).astimezone(UTC)
    until = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return DriftWindow(until - WINDOW, until)


def drift_windows_recent(*, now: datetime | None = None) -> list[DriftWindow]:
    """The last ``CATCH_UP_DAYS`` complete UTC days, oldest first."""
    last = drift_window_default(now=now)
    return [
        DriftWindow(last.since - k * WINDOW, last.until - k * WINDOW)
        for k in reversed(range(CATCH_UP_DAYS))
    ]


def drift_window_check(*, since: datetime, until: datetime) -> DriftWindow:
    """A window a report may be made of: ordered, at most 366 days, and over.

    A report is computed once per window, so a window still going would be frozen half
    full; ``ValidationFailed`` says so.
    """
    if timezone.is_naive(since) or timezone.is_naive(until):
        raise ValidationFailed(
            "since and until need a time zone.", details={"since": ["give a time zone"]}
        )
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    if since >= until:
        raise ValidationFailed(
            "since must be before until.", details={"since": ["must be before until"]}
        )
    if until - since > MAX_WINDOW:
        raise ValidationFailed(
            "The window is longer than 366 days.",
            details={"since": ["the window may span at most 366 days"]},
        )
    if until > timezone.now():
        raise ValidationFailed(
            "The window has not ended yet: a drift report is made once per window, after it.",
            details={"until": ["must not be in the future"]},
        )
    return DriftWindow(since, until)


def _model_refs_of_strategy(content: Any) -> set[tuple[str, int]]:
    refs = set()
    for prediction in (content or {}).get("predictions", []) if isinstance(content, dict) else []:
        model = prediction.get("model") if isinstance(prediction, dict) else None
        if isinstance(model, dict) and "name" in model and "version" in model:
            refs.add((str(model["name"]), int(model["version"])))
    return refs


def drift_model_versions() -> list[Version]:
    """The model versions drift is watched for: the active ones, and those any arm of an
    active deployment predicts with (a deployment may run an approved, not yet active,
    model version)."""
    refs: set[tuple[str, int]] = set()
    deployments = Version.objects.filter(item__kind="deployment", status=VersionStatus.ACTIVE)
    strategy_refs: set[tuple[str, int]] = set()
    for content in deployments.values_list("content", flat=True):
        arms = [content, *content.get("challengers", [])]
        for arm in arms:
            strategy = arm.get("strategy") if isinstance(arm, dict) else None
            if isinstance(strategy, dict):
                strategy_refs.add((str(strategy["name"]), int(strategy["version"])))
    if strategy_refs:
        strategies = Version.objects.filter(item__kind="strategy").values_list(
            "item__name", "number", "content"
        )
        for name, number, content in strategies:
            if (name, number) in strategy_refs:
                refs |= _model_refs_of_strategy(content)
    models = Version.objects.select_related("item").filter(item__kind="model")
    chosen = [
        v
        for v in models.filter(status__in=_LOCKED)
        if v.status == VersionStatus.ACTIVE or (v.item.name, v.number) in refs
    ]
    return sorted(chosen, key=lambda v: (v.item.name, v.number))


def drift_model_version_get(*, name: str, number: int | None = None) -> Version:
    """A model version by name (and number; default: the active one, else the newest approved)."""
    versions = Version.objects.select_related("item").filter(
        item__kind="model", item__name=name, status__in=_LOCKED
    )
    if number is not None:
        version = versions.filter(number=number).first()
    else:
        version = (
            versions.filter(status=VersionStatus.ACTIVE).first()
            or versions.order_by("-number").first()
        )
    if version is None:
        which = f"{name} v{number}" if number is not None else name
        raise NotFound(f"There is no approved model version {which}.", code="model_not_found")
    return version


# --- logged inputs ---------------------------------------------------------------------


def _strategy_ids_using(model_version: Version) -> list[int]:
    key = (model_version.item.name, model_version.number)
    return [
        pk
        for pk, content in Version.objects.filter(item__kind="strategy").values_list(
            "pk", "content"
        )
        if key in _model_refs_of_strategy(content)
    ]


def strategy_inputs(model_version: Version, schema: list[dict[str, Any]]) -> set[str]:
    """The model's inputs that the strategy sets, not the customer: attributes of the
    actions (a limit, an APR, a channel) of the strategies that use the model."""
    names = {feature["name"] for feature in schema}
    found: set[str] = set()
    for content in Version.objects.filter(pk__in=_strategy_ids_using(model_version)).values_list(
        "content", flat=True
    ):
        for action in content.get("actions", []) if isinstance(content, dict) else []:
            attributes = action.get("attributes", {}) if isinstance(action, dict) else {}
            found.update(name for name in attributes if name in names)
    return found


def at_reference_actions(
    current: pd.DataFrame, reference: pd.DataFrame, columns: set[str], seed: int
) -> pd.DataFrame:
    """``current`` with the strategy-set ``columns`` of a random reference row each (the
    same row for all of them): the window's customers scored at the reference's mix of
    actions, so that the score compares customers, not the strategy's choices."""
    if not columns or current.empty or reference.empty:
        return current
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(reference), size=len(current))
    out = current.copy()
    for name in sorted(columns):
        out[name] = reference[name].to_numpy()[rows]
    return out


def window_decisions(model_version: Version, window: DriftWindow) -> QuerySet[Decision]:
    """The decisions of deployed traffic made in ``window`` with ``model_version`` (runs
    on simulated customers left out)."""
    return customer_decisions().filter(
        strategy_version_id__in=_strategy_ids_using(model_version),
        deployment_version__isnull=False,
        created_at__gte=window.since,
        created_at__lt=window.until,
    )


def _sample_seed(model_version: Version, window: DriftWindow) -> int:
    text = f"{model_version.content_hash}|{window.since.isoformat()}|{window.until.isoformat()}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def logged_features(
    model_version: Version, window: DriftWindow, *, limit: int
) -> tuple[list[dict[str, Any]], int, int]:
    """The model's inputs as logged in the window (a seeded sample of ``limit`` if there
    are more): each decision's features with the chosen action's attributes, as a model
    that takes action attributes (a limit, an APR, a channel) scored the chosen action.
    Returns them with the number of decisions in the window and the seed."""
    decisions = window_decisions(model_version, window)
    total = decisions.count()
    seed = _sample_seed(model_version, window)
    seqs = np.fromiter(
        decisions.order_by("seq").values_list("seq", flat=True).iterator(chunk_size=10_000),
        dtype=np.int64,
        count=total,
    )
    if total > limit:
        rng = np.random.default_rng(seed)
        seqs = np.sort(seqs[rng.choice(total, size=limit, replace=False)])
    rows: list[dict[str, Any]] = []
    for start in range(0, len(seqs), _CHUNK):
        chunk = [int(s) for s in seqs[start : start + _CHUNK]]
        rows.extend(
            {**(action if isinstance(action, dict) else {}), **(features or {})}
            for features, action in Decision.objects.filter(seq__in=chunk)
            .order_by("seq")
            .values_list("features", "action")
        )
    return rows, total, seed


def features_frame(schema: list[dict[str, Any]], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The schema's features as columns: numeric as float64 (missing: NaN), categorical as
    object (missing: None). Features a row lacks count as missing."""
    data: dict[str, Any] = {}
    for feature in schema:
        name = feature["name"]
        values = [row.get(name) if isinstance(row, dict) else None for row in rows]
        if feature["type"] == "numeric":
            data[name] = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(
                "float64"
            )
        else:
            data[name] = pd.Series([None if v is None else str(v) for v in values], dtype=object)
    return pd.DataFrame(data)


# --- the comparison ----------------------------------------------------------------------


def _scores(runtime: Any, frame: pd.DataFrame) -> np.ndarray:
    """The model's output per row; NaN where an input is missing (not scored)."""
    out = np.full(len(frame), np.nan)
    inputs = frame[runtime.input_columns]
    complete = inputs.notna().all(axis=1).to_numpy()
    if complete.any():
        out[complete] = runtime.predict(inputs[complete].reset_index(drop=True))
    return out


def _evidently_results(
    snapshot_dict: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per column (test, statistic, threshold, drifted) and the drifted-columns count.

    Evidently 0.7 names each metric by ``metric_name`` (``ValueDrift(column=income,...)``)
    and reports the drift verdict as the status of the metric's test (FAIL: drifted).
    """
    verdicts = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in snapshot_dict.get("tests", [])
        if t.get("metric_config", {}).get("metric_id")
    }
    columns: dict[str, dict[str, Any]] = {}
    count: dict[str, Any] = {}
    for metric in snapshot_dict["metrics"]:
        name, config = metric["metric_name"], metric.get("config", {})
        if name.startswith("ValueDrift("):
            statistic = metric["value"]
            columns[config["column"]] = {
                "test": config.get("method"),
                "statistic": None if statistic is None else float(statistic),
                "threshold": config.get("threshold"),
                "drifted": verdicts.get(metric["id"]) == "FAIL",
            }
        elif name.startswith("DriftedColumnsCount("):
            count = {
                "count": int(metric["value"]["count"]),
                "share": float(metric["value"]["share"]),
                "drift_share": float(config.get("drift_share", 0.5)),
            }
    return columns, count


def drift_compare(
    *,
    schema: list[dict[str, Any]],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_scores: np.ndarray,
    current_scores: np.ndarray,
    title: str = "",
    set_by_strategy: Collection[str] = (),
) -> DriftComparison:
    """Compare ``current`` with ``reference`` (both with the schema's columns) and the two
    score vectors: Evidently's data-drift preset and value drift of the score, and PSI.

    Pure computation: no database. Evidently's telemetry is off by the settings
    (``DO_NOT_TRACK``); this makes no network call.
    """
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    names = [f["name"] for f in schema]
    # Inputs the strategy sets (the chosen action's limit or APR) differ from the training
    # history by design: their PSI is shown, but they are not tested or counted; the
    # status is about customers. Evidently refuses a column with no value on either side:
    # those keep their PSI, with its missing-values bin, and no test.
    strategy = set(set_by_strategy)
    tested = [
        n
        for n in names
        if n not in strategy and current[n].notna().any() and reference[n].notna().any()
    ]
    numeric = [f["name"] for f in schema if f["type"] == "numeric" and f["name"] in tested]
    categorical = [f["name"] for f in schema if f["type"] != "numeric" and f["name"] in tested]
    score_tested = bool(np.isfinite(current_scores).any() and np.isfinite(reference_scores).any())
    definition = DataDefinition(
        numerical_columns=[*numeric, SCORE_COLUMN], categorical_columns=categorical
    )
    ref = reference[tested].assign(**{SCORE_COLUMN: reference_scores})
    cur = current[tested].assign(**{SCORE_COLUMN: current_scores})
    metrics: list[Any] = [DataDriftPreset(columns=tested)] if tested else []
    if score_tested:
        metrics.append(ValueDrift(column=SCORE_COLUMN))
    report = Report(metrics, include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
        name=title or None,
    )
    columns, count = _evidently_results(snapshot.dict())

    features = []
    for feature in schema:
        name = feature["name"]
        if feature["type"] == "numeric":
            index = psi.numeric_psi(reference[name].to_numpy(), current[name].to_numpy())
        else:
            index = psi.categorical_psi(reference[name].tolist(), current[name].tolist())
        features.append(
            {
                "name": name,
                "type": feature["type"],
                **columns.get(
                    name, {"test": None, "statistic": None, "threshold": None, "drifted": False}
                ),
                "set_by": "strategy" if name in strategy else "customer",
                **(
                    {}
                    if name in tested or name in strategy
                    else {"note": "no values in the window or reference"}
                ),
                "psi": round(index.value, 6),
                "psi_band": psi.psi_band(index.value),
                "psi_bins": index.bins,
            }
        )
    scored_ref = reference_scores[~np.isnan(reference_scores)]
    scored_cur = current_scores[~np.isnan(current_scores)]
    score_psi = psi.numeric_psi(scored_ref, scored_cur) if len(scored_cur) else None
    score = {
        **columns.get(SCORE_COLUMN, {"test": None, "statistic": None, "threshold": None}),
        "reference_rows": len(scored_ref),
        "current_rows": len(scored_cur),
        "reference_mean": float(scored_ref.mean()) if len(scored_ref) else None,
        "current_mean": float(scored_cur.mean()) if len(scored_cur) else None,
        "psi": None if score_psi is None else round(score_psi.value, 6),
        "psi_band": psi.psi_band(None if score_psi is None else score_psi.value),
        "psi_bins": [] if score_psi is None else score_psi.bins,
    }
    score.setdefault("drifted", False)
    customers = [f for f in features if f["set_by"] == "customer"]
    values = [f["psi"] for f in customers] + ([score["psi"]] if score["psi"] is not None else [])
    psi_max = max(values) if values else None
    drifted = [f for f in customers if f["drifted"]]
    share = count.get("share", len(drifted) / len(customers) if customers else 0.0)
    return DriftComparison(
        features=features,
        score=score,
        share_drifted=share,
        drifted_features=count.get("count", len(drifted)),
        dataset_drift=share >= count.get("drift_share", 0.5),
        psi_score=score["psi"],
        psi_max=psi_max,
        status=psi.psi_band(psi_max),
        html=snapshot.get_html_str(as_iframe=False),
        evidently_version=evidently.__version__,
    )


# --- the service ----------------------------------------------------------------------


def _html_store(model_version: Version, window: DriftWindow, html: str) -> tuple[str, str]:
    """Write the HTML report under ``ARTIFACT_ROOT``; returns its relative path and SHA-256.

    Each computation writes its own file (a random suffix): a concurrent run that loses
    the race for the database row deletes its own file, never the winner's.
    """
    folder = (
        REPORT_FOLDER / f"{slugify(model_version.item.name) or 'model'}-v{model_version.number}"
    )
    name = (
        f"{window.since:%Y%m%dT%H%M%SZ}--{window.until:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}.html"
    )
    relative = folder / name
    target = Path(settings.ARTIFACT_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    data = html.encode("utf-8")
    partial = target.with_suffix(".partial")
    with open(partial, "wb") as out:
        out.write(data)
    os.replace(partial, target)
    return relative.as_posix(), hashlib.sha256(data).hexdigest()


def drift_report_run(*, model_version: Version, since: datetime, until: datetime) -> DriftReport:
    """The drift report of ``model_version`` over ``[since, until)``, computed if absent.

    Idempotent: a report already stored for the version and window is returned as it is.
    The computation (loading the window's features, scoring, Evidently) runs outside any
    transaction and holds no lock; two runs racing on the same window both compute, the
    unique constraint keeps the first stored, and the other returns it (and deletes its
    HTML file). Raises ``ValidationFailed`` for a bad window or a version that is not an
    approved model, ``ArtifactIntegrityError`` if the model file was tampered with.
    """
    window = drift_window_check(since=since, until=until)
    if model_version.item.kind != "model" or model_version.status not in _LOCKED:
        raise ValidationFailed(
            f"{model_version} is not an approved model version.",
            details={"model_version": ["must be an approved, active or retired model version"]},
        )
    existing = DriftReport.objects.filter(
        model_version=model_version, window_start=window.since, window_end=window.until
    ).first()
    if existing is not None:
        return existing

    limit = int(settings.DRIFT_SAMPLE_ROWS)
    rows, total, seed = logged_features(model_version, window, limit=limit)
    content = model_version.content
    schema = content["schema"]
    reference_rows = len(content["reference_sample"]["rows"])
    fields: dict[str, Any] = {
        "model_version": model_version,
        "window_start": window.since,
        "window_end": window.until,
        "decisions_in_window": total,
        "current_rows": len(rows),
        "reference_rows": reference_rows,
        "sampled": total > len(rows),
        "sample_limit": limit,
        "parameters": {
            "psi_binning": "numeric: deciles of the reference; categorical: one bin per "
            "category; missing values: a bin of their own",
            "psi_epsilon": psi.EPSILON,
            "psi_bands": {"watch_from": psi.WATCH_FROM, "act_above": psi.ACT_ABOVE},
            "sample_seed": seed,
            "model_content_hash": model_version.content_hash,
        },
    }
    html_path = ""
    if not rows:
        fields.update(status=DriftStatus.NO_DATA)
    else:
        from decisions.runtime import model_runtime  # loads the model: not on web start-up

        runtime = model_runtime(model_version)
        reference = runtime.reference
        current = features_frame(schema, rows)
        set_by_strategy = strategy_inputs(model_version, schema)
        scored = at_reference_actions(current, reference, set_by_strategy, seed)
        comparison = drift_compare(
            schema=schema,
            reference=reference,
            current=current,
            reference_scores=_scores(runtime, reference),
            current_scores=_scores(runtime, scored),
            title=f"Drift of {model_version.item.name} v{model_version.number}",
            set_by_strategy=set_by_strategy,
        )
        fields["parameters"]["set_by_strategy"] = sorted(set_by_strategy)
        html_path, html_sha256 = _html_store(model_version, window, comparison.html)
        fields["parameters"]["evidently_version"] = comparison.evidently_version
        fields.update(
            status=comparison.status,
            share_drifted=comparison.share_drifted,
            drifted_features=comparison.drifted_features,
            dataset_drift=comparison.dataset_drift,
            psi_score=comparison.psi_score,
            psi_max=comparison.psi_max,
            features=comparison.features,
            score=comparison.score,
            html_path=html_path,
            html_sha256=html_sha256,
        )
    try:
        with transaction.atomic():
            return DriftReport.objects.create(created_at=timezone.now(), **fields)
    except IntegrityError:
        if html_path:
            (Path(settings.ARTIFACT_ROOT) / html_path).unlink(missing_ok=True)
        return DriftReport.objects.get(
            model_version=model_version, window_start=window.since, window_end=window.until
        )


def drift_report_html(report: DriftReport) -> bytes | None:
    """The stored HTML report, or None if there is none or it no longer matches its
    SHA-256 (a file changed on disk is not shown). The bytes returned are the bytes
    checked: serve them, not the file again."""
    if not report.html_path:
        return None
    path = Path(settings.ARTIFACT_ROOT) / report.html_path
    try:
        content = path.read_bytes()
    except OSError:
        return None
    return content if hashlib.sha256(content).hexdigest() == report.html_sha256 else None
