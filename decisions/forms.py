"""Forms of the decision pages."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms

from decisions.replays import MAX_SAMPLE


class ReplaySampleForm(forms.Form):
    """A random sample of the log to replay: how many, from which decisions, which seed."""

    size = forms.IntegerField(
        label="Decisions to draw", min_value=1, max_value=MAX_SAMPLE, initial=1000
    )
    deployment = forms.ChoiceField(label="Deployment", required=False)
    since = forms.DateField(
        label="Logged from (date)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="Logged to (date, inclusive)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    run = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        min_value=0,
        max_value=2**63 - 1,
        help_text="An earlier replay's seed draws the same decisions again; empty: a new draw.",
    )

    def __init__(self, *args: Any, deployments: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["deployment"].choices = [("", "All deployments")] + [
            (name, name) for name in deployments
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The last day comes before the first.")
        return data

    def request_arguments(self) -> dict[str, Any]:
        """The form as ``replay_check_request``'s arguments: days as UTC midnights, the
        last day inclusive."""
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        return {
            "size": data["size"],
            "seed": data.get("seed"),
            "deployment": data.get("deployment") or "",
            "run": data.get("run"),
            "since": datetime.combine(since, time(), UTC) if since else None,
            "until": datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        }
