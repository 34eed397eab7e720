"""Dates and times people and clients may give: between 1900 and 2999.

Python's dates end at years 1 and 9999, so ``9999-12-31`` plus a day, or ``0001-01-01``
in another time zone, raises ``OverflowError`` in the window arithmetic behind every
filter (the last day inclusive, a week back, UTC). Nothing a lender records falls
outside these bounds; a date that does is a field error, not a 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from rest_framework import serializers

EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)
OUT_OF_RANGE = f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def moment_problem_safe(value: date | datetime) -> str | None:
    """Why ``value`` is not a date Arbiter takes, or None; also for a time at the very
    ends of the calendar, whose UTC equivalent does not exist."""
    try:
        day = value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value
    except OverflowError:
        return OUT_OF_RANGE
    day = day.date() if isinstance(day, datetime) else day
    return None if EARLIEST <= day <= LATEST else OUT_OF_RANGE


def validate_moment(value: Any) -> None:
    """A Django validator for form date fields."""
    problem = moment_problem_safe(value)
    if problem:
        raise ValidationError(f"The date {problem}.")


class _Bounded:
    """For a DRF date or date-time field: a value outside the bounds is a field error."""

    def to_internal_value(self, value: Any) -> Any:
        parsed = super().to_internal_value(value)  # type: ignore[misc]
        problem = moment_problem_safe(parsed)
        if problem:
            raise serializers.ValidationError(problem)
        return parsed


class BoundedDateTimeField(_Bounded, serializers.DateTimeField):
    pass


class BoundedDateField(_Bounded, serializers.DateField):
    pass


def day_field(label: str) -> forms.DateField:
    """An optional date input of a filter form (ISO whatever the locale), within bounds."""
    widget = forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    return forms.DateField(label=label, required=False, widget=widget, validators=[validate_moment])
