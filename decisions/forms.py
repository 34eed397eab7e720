"""Forms of the decision pages."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms

from arbiter.moments import day_field
from decisions.replays import MAX_SAMPLE


def _day(label: str) -> forms.DateField:
    # A date input's value is ISO whatever the locale's date format; years 1900-2999.
    return day_field(label)


def day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """Days as the times the log is filtered by: the first day's UTC midnight, and the
    midnight after the last (the last day inclusive)."""
    return (
        datetime.combine(since, time(), UTC) if since else None,
        datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
    )


class _Days(forms.Form):
    """A range of days the decisions were logged on, the last one inclusive."""

    since = _day("Logged from (date)")
    until = _day("Logged to (date, inclusive)")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The last day comes before the first.")
        return data

    def deployment_choices(self, deployments: list[str]) -> None:
        self.fields["deployment"].choices = [("", "All deployments")] + [
            (name, name) for name in deployments
        ]


class DecisionFilterForm(_Days):
    """The decision search: a decision id or customer id, a deployment, a range of days."""

    q = forms.CharField(label="Decision id or customer id", required=False, max_length=200)
    deployment = forms.ChoiceField(label="Deployment", required=False)
    field_order = ["q", "deployment", "since", "until"]

    def __init__(self, *args: Any, deployments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deployment_choices(deployments)
        self.fields["q"].widget.input_type = "search"
        self.fields["q"].widget.attrs["autocomplete"] = "off"

    def selection(self) -> dict[str, Any]:
        """The cleaned form as ``selectors.decision_search``'s filters."""
        data = self.cleaned_data
        since, until = day_bounds(data.get("since"), data.get("until"))
        return {
            "query": data.get("q") or "",
            "deployment": data.get("deployment") or None,
            "since": since,
            "until": until,
        }


class ReplaySampleForm(_Days):
    """A random sample of the log to replay: how many, from which decisions, which seed."""

    size = forms.IntegerField(
        label="Decisions to draw", min_value=1, max_value=MAX_SAMPLE, initial=1000
    )
    deployment = forms.ChoiceField(label="Deployment", required=False)
    run = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        min_value=0,
        max_value=2**63 - 1,
        help_text="An earlier replay's seed draws the same decisions again; empty: a new draw.",
    )

    field_order = ["size", "deployment", "since", "until", "run", "seed"]

    def __init__(self, *args: Any, deployments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deployment_choices(deployments)

    def request_arguments(self) -> dict[str, Any]:
        """The form as ``replay_check_request``'s arguments: days as UTC midnights, the
        last day inclusive."""
        data = self.cleaned_data
        since, until = day_bounds(data.get("since"), data.get("until"))
        return {
            "size": data["size"],
            "seed": data.get("seed"),
            "deployment": data.get("deployment") or "",
            "run": data.get("run"),
            "since": since,
            "until": until,
        }
