"""Forms of the reviewer pages. They parse what a person typed; the services judge it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms

from arbiter.moments import day_field
from arbiter.parsers import JSONRefused, json_loads
from governance.kinds import kinds_all
from governance.lifecycle import Move
from governance.models import AuditAction


class MoveForm(forms.Form):
    """A lifecycle move: the button pressed names it, the comment is the reason.

    Whether a comment is required (to reject) is the service's rule, not the form's, so
    the page and the API refuse alike.
    """

    move = forms.ChoiceField(choices=Move.choices)
    comment = forms.CharField(required=False, max_length=5000)


class DraftForm(forms.Form):
    """A draft's content as JSON text, and the note saying what changed and why."""

    content = forms.CharField(
        label="Content (JSON)",
        strip=False,  # give back exactly what was typed when it is refused
        widget=forms.Textarea(attrs={"rows": 30, "spellcheck": "false"}),
        error_messages={"required": "Write the version's content as a JSON object."},
    )
    change_note = forms.CharField(
        label="Change note",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What changed and why: the checker reads this first.",
    )

    def clean_content(self) -> dict[str, Any]:
        text = self.cleaned_data["content"]
        try:
            content = json_loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        except JSONRefused as exc:
            raise forms.ValidationError(f"The content was refused: {exc}.") from None
        if not isinstance(content, dict):
            raise forms.ValidationError("The content must be a JSON object ({ ... }).")
        return content


class NewItemForm(DraftForm):
    """A new item's name, and its first draft's content and note."""

    name = forms.CharField(
        label="Name",
        max_length=100,
        help_text=(
            "Lower-case letters, digits, '.', '_' or '-', starting with a letter or digit. "
            "It cannot change later."
        ),
        error_messages={"required": "Give the new item a name."},
    )
    field_order = ("name", "content", "change_note")


class PasswordChangeForm(forms.Form):
    """A new password typed twice, and the current one. The service checks the current
    one and the validators; the form checks only that the two new ones match."""

    current_password = forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    new_password = forms.CharField(
        label="New password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    new_password_again = forms.CharField(
        label="New password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        new, again = data.get("new_password"), data.get("new_password_again")
        if new is not None and again is not None and new != again:
            self.add_error("new_password_again", "The two new passwords differ.")
        return data


def pretty_json(content: Any) -> str:
    """Content as the editor shows it: indented, keys in the order they are stored."""
    return json.dumps(content, indent=2, ensure_ascii=False)


class AuditFilterForm(forms.Form):
    item = forms.CharField(label="Item name", required=False, max_length=100)
    actor = forms.CharField(label="Actor (user name)", required=False, max_length=150)
    kind = forms.ChoiceField(label="Kind", required=False)
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any action"), *AuditAction.choices]
    )
    since = day_field("From (date)")
    until = day_field("To (date, inclusive)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", "Any kind")] + [
            (kind.key, kind.label) for kind in kinds_all()
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def time_range(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """Whole days in UTC: ``until`` includes its own day."""
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC) if since else None
        end = (
            dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
            if until
            else None
        )
        return start, end
