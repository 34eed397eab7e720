"""Loaded, compiled and cached: what the decision service needs for a deployment version.

Model versions, decision functions and SHAP explainers are immutable once their version
is sealed, so they are cached by content hash for the life of the process; a new version
is a new hash, never a stale entry. Loading verifies every artifact's SHA-256.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from arbiter.db import prepared_cursor
from decisions.engine.decision_function import DecisionFunction, compile_decision_function
from decisions.engine.predictors import ModelRuntime
from decisions.model_artifacts import model_artifact_load
from governance.exceptions import NotFound
from governance.models import Item, Version, VersionStatus

_lock = threading.Lock()
_models: dict[str, ModelRuntime] = {}
_functions: dict[tuple[str, str], DecisionFunction] = {}
_explainers: dict[str, Any] = {}
_versions: dict[tuple[str, str, int], Version] = {}
_features: dict[str, dict[str, dict[str, Any]]] = {}
# name -> (pk, number) of the deployment's active version when last looked up: only for
# callers whose write re-checks it (``active_deployment(remembered=True)``).
_active_rows: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True)
class ArmRuntime:
    arm: str
    strategy: Version
    constraint_set: Version
    function: DecisionFunction
    prices: list[float]


def _version(kind: str, ref: dict[str, Any]) -> Version:
    """A referenced version. Cached: deployments name only approved versions, whose content
    can never change again (the services and, on PostgreSQL, triggers refuse it)."""
    key = (kind, ref["name"], int(ref["version"]))
    cached = _versions.get(key)
    if cached is not None:
        return cached
    version = (
        Version.objects.select_related("item")
        .filter(item__kind=kind, item__name=ref["name"], number=ref["version"])
        .first()
    )
    if version is None:
        raise NotFound(f"{kind} {ref['name']} v{ref['version']} does not exist.")
    if version.is_locked:
        with _lock:
            _versions.setdefault(key, version)
    return version


def model_runtime(version: Version) -> ModelRuntime:
    cached = _models.get(version.content_hash)
    if cached is not None:  # before naming it: ``version.item`` may be a query
        return cached
    return model_runtime_of(
        key=f"{version.item.name} v{version.number}",
        content=version.content,
        content_hash=version.content_hash,
        artifact_path=version.artifact_path,
        artifact_sha256=version.artifact_sha256,
    )


def model_runtime_of(
    *,
    key: str,
    content: dict[str, Any],
    content_hash: str,
    artifact_path: str,
    artifact_sha256: str,
) -> ModelRuntime:
    """A model version's runtime from its sealed content and artifact, without the database
    (what a distributed run's workers have)."""
    cached = _models.get(content_hash)
    if cached is not None:
        return cached
    runtime = ModelRuntime.from_content(
        key=key,
        estimator=model_artifact_load(artifact_path, artifact_sha256),
        content=content,
        content_hash=content_hash,
    )
    with _lock:
        return _models.setdefault(content_hash, runtime)


def explainer(runtime: ModelRuntime) -> Any:
    """The SHAP explainer of a model version (built once: it is the slow part)."""
    cached = _explainers.get(runtime.content_hash or runtime.key)
    if cached is not None:
        return cached
    from decisions.engine.explain import explainer_for  # shap: keep off web start-up

    built = explainer_for(runtime, tables=True)
    with _lock:
        return _explainers.setdefault(runtime.content_hash or runtime.key, built)


def decision_function(strategy: Version, constraint_set: Version) -> DecisionFunction:
    key = (strategy.content_hash, constraint_set.content_hash)
    cached = _functions.get(key)
    if cached is not None:
        return cached
    runtimes = {}
    for prediction in strategy.content.get("predictions", []):
        ref = prediction["model"]
        runtimes[(ref["name"], int(ref["version"]))] = model_runtime(_version("model", ref))
    function = compile_decision_function(
        strategy=strategy.content, constraints=constraint_set.content, runtimes=runtimes
    )
    with _lock:
        return _functions.setdefault(key, function)


def arm_runtime(arm: str, content: dict[str, Any]) -> ArmRuntime:
    """Compile one arm (champion or a challenger) of a deployment's content."""
    strategy = _version("strategy", content["strategy"])
    constraint_set = _version("constraint_set", content["constraint_set"])
    function = decision_function(strategy, constraint_set)
    published = content.get("prices", {})
    prices = [float(published.get(limit.name, 0.0)) for limit in function.limits]
    return ArmRuntime(arm, strategy, constraint_set, function, prices)


def _active_sql() -> str:
    item, version = Item._meta, Version._meta
    column = {f.name: f.column for f in version.concrete_fields}
    # Only table and column names from the models' metadata go into the text; the values
    # are parameters.
    sql = (
        "SELECT v.{pk}, v.{number} FROM {versions} v JOIN {items} i ON v.{item} = i.{item_pk} "
        "WHERE i.{kind} = %s AND i.{name} = %s AND v.{status} = %s"
    )
    return sql.format(
        pk=version.pk.column,
        number=column["number"],
        versions=version.db_table,
        items=item.db_table,
        item=column["item"],
        item_pk=item.pk.column,
        kind=item.get_field("kind").column,
        name=item.get_field("name").column,
        status=column["status"],
    )


_ACTIVE_SQL: list[str] = []


def _active_row(name: str) -> tuple[int, int] | None:
    """(pk, number) of the deployment's active version: plain SQL built once (and prepared
    on PostgreSQL), since this runs on every decision and building the ORM query cost more
    than running it. The database allows one active version per item (a unique
    constraint)."""
    if not _ACTIVE_SQL:
        _ACTIVE_SQL.append(_active_sql())
    with prepared_cursor() as cursor:
        cursor.execute(_ACTIVE_SQL[0], ["deployment", name, VersionStatus.ACTIVE.value])
        return cursor.fetchone()


def active_deployment(name: str, *, remembered: bool = False) -> Version:
    """The deployment's active version. One indexed query for its id (so an activation
    takes effect at once); the version itself, immutable, comes from the cache.

    ``remembered``: the version this process found last time, without the query, for a
    caller that writes only while that version is still active and asks again with
    ``active_deployment_forget`` when it is not (``decision_write(while_active=True)``).
    """
    row = _active_rows.get(name) if remembered else None
    if row is None:
        row = _active_row(name)
        if row is not None:
            _active_rows[name] = row
    if row is None:
        exists = Version.objects.filter(item__kind="deployment", item__name=name).exists()
        raise NotFound(
            f"The deployment {name!r} "
            + ("has no active version." if exists else "does not exist."),
            code="deployment_not_found",
        )
    pk, number = row
    version = _version("deployment", {"name": name, "version": number})
    if version.pk != pk:  # a registry rebuilt under the same names (tests, restores)
        with _lock:
            _versions.pop(("deployment", name, number), None)
        version = _version("deployment", {"name": name, "version": number})
    return version


def active_deployment_forget(name: str) -> None:
    """Look the deployment's active version up again next time: it is no longer active."""
    _active_rows.pop(name, None)


def deployment_features(version: Version) -> dict[str, dict[str, Any]]:
    """Every customer input any arm of the deployment needs (clients send all of them).

    Asked on every decision, so kept per deployment content hash like everything else here.
    """
    cached = _features.get(version.content_hash)
    if cached is not None:
        return cached
    content = version.content
    features = dict(arm_runtime("champion", content).function.features)
    for arm in content.get("challengers", []):
        for name, spec in arm_runtime(arm["arm"], arm).function.features.items():
            features.setdefault(name, spec)
    with _lock:
        return _features.setdefault(version.content_hash, features)


def warm_up() -> list[str]:
    """Load, compile and explain-ready every arm of every active deployment; returns names."""
    warmed = []
    active = Version.objects.select_related("item").filter(
        item__kind="deployment", status=VersionStatus.ACTIVE
    )
    for version in active:
        arms = [("champion", version.content)]
        arms += [(a["arm"], a) for a in version.content.get("challengers", [])]
        for name, content in arms:
            arm = arm_runtime(name, content)
            for prediction in arm.function.predictions:
                explainer(prediction.runtime)
        warmed.append(version.item.name)
    return warmed


def clear_caches() -> None:
    """Forget everything loaded (tests; a process that must reload tampered artifacts)."""
    with _lock:
        _models.clear()
        _functions.clear()
        _explainers.clear()
        _versions.clear()
        _features.clear()
        _active_rows.clear()
