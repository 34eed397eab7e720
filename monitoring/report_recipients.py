"""Report recipients: a governed kind naming who receives an executive report, and of what.

Who reads the bank's KPIs by e-mail is a disclosure decision, so it passes four eyes like
the targets themselves. The item is named after the report (``executive``); its schedule
is a django-celery-beat periodic task, edited in the admin (docs/monitoring.md). Content::

    {
      "description": "Weekly report to the executive committee.",
      "recipients": ["cfo@bank.example", "cro@bank.example"],
      "deployments": ["cross-sell", "onboarding"],     # optional: default every active one
      "window_days": 7                                 # optional: the KPI window, default 7
    }
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from governance.content_diff import Change, value_changes
from governance.kinds import Kind, register_kind
from governance.presentation import Cell, Section, display
from governance.validation import FieldErrors
from monitoring.alert_rules import recipients_validate

KIND = "report_recipients"
DEFAULT_REPORT = "executive"
DEFAULT_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 92


def report_recipients_content_validate(
    content: dict[str, Any], *, artifact: Path | None = None
) -> dict[str, Any]:
    """Normalise report recipients content; ``ValidationFailed`` names every bad field."""
    errors = FieldErrors()
    errors.check_keys(
        content,
        "",
        required=("recipients",),
        optional=("description", "deployments", "window_days"),
    )
    description = content.get("description", "")
    if not isinstance(description, str):
        errors.add("description", "must be a string")
    recipients = recipients_validate(content.get("recipients"), "recipients", errors)
    deployments = content.get("deployments", [])
    if not isinstance(deployments, list) or not all(
        isinstance(d, str) and d.strip() for d in deployments
    ):
        errors.add("deployments", "must be a list of deployment names (empty: every active one)")
        deployments = []
    window = content.get("window_days", DEFAULT_WINDOW_DAYS)
    if (
        not isinstance(window, int)
        or isinstance(window, bool)
        or not 1 <= window <= MAX_WINDOW_DAYS
    ):
        errors.add("window_days", f"must be a whole number of days from 1 to {MAX_WINDOW_DAYS}")
    errors.raise_if_any("The report recipients are not valid")
    return {
        "description": description,
        "recipients": recipients,
        "deployments": sorted(set(deployments)),
        "window_days": window,
    }


def report_recipients_present(content: dict[str, Any]) -> list[Section]:
    return [
        Section(
            "Executive report",
            facts=[
                ("Description", Cell(content.get("description") or "—")),
                (
                    "Deployments",
                    Cell(
                        display(content.get("deployments"))
                        if content.get("deployments")
                        else "every active deployment"
                    ),
                ),
                ("KPI window", Cell(f"the last {content.get('window_days')} days")),
            ],
        ),
        Section(
            "Recipients",
            columns=["E-mail address"],
            rows=[[Cell(address)] for address in content.get("recipients", [])],
            empty="Nobody.",
        ),
    ]


def report_recipients_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = value_changes(
        "",
        "",
        old,
        new,
        keys=("description", "deployments", "window_days"),
        words={"window_days": "KPI window (days)"},
    )
    before, after = set(old.get("recipients", [])), set(new.get("recipients", []))
    out += [
        Change(f"recipients[{a}]", "added", f"recipient {a} added", new=a)
        for a in sorted(after - before)
    ]
    out += [
        Change(f"recipients[{a}]", "removed", f"recipient {a} removed", old=a)
        for a in sorted(before - after)
    ]
    return out


def report_recipients_example() -> dict[str, Any]:
    return {
        "description": "Weekly report to the executive committee.",
        "recipients": ["cfo@bank.example", "cro@bank.example"],
        "deployments": [],
        "window_days": DEFAULT_WINDOW_DAYS,
    }


def register_report_recipients_kind() -> None:
    register_kind(
        Kind(
            key=KIND,
            slug="report-recipients",
            label="report recipients",
            plural_label="report recipients",
            item_label="recipient list",
            validate=report_recipients_content_validate,
            example=report_recipients_example,
            naming=f"the report they receive ({DEFAULT_REPORT}, the weekly executive report)",
            present=report_recipients_present,
            diff=report_recipients_changes,
        )
    )
