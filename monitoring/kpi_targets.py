"""KPI targets: a governed kind, so the numbers a deployment is judged by pass four eyes.

The item's name is the deployment's (``cross-sell``), as a deployment's item is named after
its channel. Content::

    {
      "description": "Targets for the 2026 cross-sell campaigns.",
      "targets": {
        "take_up_rate": {"target": 0.08},                          # direction from the catalog
        "latency_p99_ms": {"target": 250, "direction": "at_most"},
        "complaint_rate": {"target": 0.002, "note": "conduct risk appetite"}
      }
    }

``direction`` is ``at_least`` or ``at_most`` and defaults to the KPI's own (``at_least``
where higher is better). Rates are fractions between 0 and 1. A version may be approved or
activated only while a deployment of that name exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from governance.content_diff import Change, keyed_changes, value_changes
from governance.exceptions import PreconditionFailed
from governance.kinds import Kind, register_kind
from governance.models import Item, Version
from governance.presentation import Cell, Section, display
from governance.validation import FieldErrors, is_finite_number
from monitoring.kpis import KPIS

KIND = "kpi_targets"
DIRECTIONS = ("at_least", "at_most")


def default_direction(key: str) -> str:
    return "at_least" if KPIS[key].better == "higher" else "at_most"


def kpi_targets_content_validate(
    content: dict[str, Any], *, artifact: Path | None = None
) -> dict[str, Any]:
    """Normalise KPI targets content; ``ValidationFailed`` names every bad field."""
    errors = FieldErrors()
    errors.check_keys(content, "", required=("targets",), optional=("description",))
    description = content.get("description", "")
    if not isinstance(description, str):
        errors.add("description", "must be a string")
    targets = content.get("targets", {})
    normalised: dict[str, dict[str, Any]] = {}
    if not isinstance(targets, dict) or not targets:
        errors.add("targets", "must be an object of KPI name: {target, direction?, note?}")
        targets = {}
    for key, raw in targets.items():
        path = f"targets.{key}"
        if key not in KPIS:
            errors.add(path, f"unknown KPI (known: {', '.join(sorted(KPIS))})")
            continue
        if not errors.check_keys(raw, path, required=("target",), optional=("direction", "note")):
            continue
        value = raw.get("target")
        if not is_finite_number(value):
            errors.add(f"{path}.target", "must be a finite number")
        elif KPIS[key].unit == "rate" and not 0 <= value <= 1:
            errors.add(f"{path}.target", "is a rate: give a fraction between 0 and 1")
        direction = raw.get("direction", default_direction(key))
        if direction not in DIRECTIONS:
            errors.add(f"{path}.direction", "must be at_least or at_most")
        note = raw.get("note", "")
        if not isinstance(note, str):
            errors.add(f"{path}.note", "must be a string")
        normalised[key] = {"target": value, "direction": direction, "note": note}
    errors.raise_if_any("The KPI targets are not valid")
    return {"description": description, "targets": dict(sorted(normalised.items()))}


def kpi_targets_check_deployment(version: Version) -> None:
    """Targets may be approved or activated only for a deployment that exists."""
    name = version.item.name
    if not Item.objects.filter(kind="deployment", name=name).exists():
        raise PreconditionFailed(
            f"There is no deployment called {name!r}; KPI targets are named after the "
            "deployment they steer.",
            code="unknown_deployment",
            details={"deployment": name},
        )


def kpi_targets_present(content: dict[str, Any]) -> list[Section]:
    words = {"at_least": "at least", "at_most": "at most"}
    rows = []
    for key, target in content.get("targets", {}).items():
        kpi = KPIS.get(key)
        rows.append(
            [
                Cell(kpi.label if kpi else key),
                Cell(key, code=True),
                Cell(words.get(target.get("direction"), str(target.get("direction")))),
                Cell(display(target.get("target"))),
                Cell(target.get("note") or "—"),
            ]
        )
    return [
        Section("KPI targets", facts=[("Description", Cell(content.get("description") or "—"))]),
        Section(
            "Targets",
            columns=["KPI", "Key", "Direction", "Target", "Note"],
            rows=rows,
            empty="No targets.",
        ),
    ]


def kpi_targets_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    def compare(path: str, label: str, a: dict[str, Any], b: dict[str, Any]) -> list[Change]:
        return value_changes(path, label, a, b, keys=("target", "direction", "note"))

    def listed(content: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"kpi": k, **v} for k, v in (content.get("targets") or {}).items()]

    out = value_changes("", "", old, new, keys=("description",))
    out += keyed_changes(
        "targets", "target for", listed(old), listed(new), key="kpi", compare=compare
    )
    return [change for change in out if not change.text.startswith("order of")]


def kpi_targets_example() -> dict[str, Any]:
    return {
        "description": "Targets for this deployment.",
        "targets": {
            "complaint_rate": {"target": 0.002, "note": "conduct risk appetite"},
            "latency_p99_ms": {"target": 250},
        },
    }


def register_kpi_targets_kind() -> None:
    kind = Kind(
        key=KIND,
        slug="kpi-targets",
        label="KPI targets",
        plural_label="KPI targets",
        item_label="KPI target set",
        validate=kpi_targets_content_validate,
        example=kpi_targets_example,
        naming="the deployment they judge (cross-sell)",
        before_submit=kpi_targets_check_deployment,
        before_approve=kpi_targets_check_deployment,
        before_activate=kpi_targets_check_deployment,
        present=kpi_targets_present,
        diff=kpi_targets_changes,
    )
    register_kind(kind)
