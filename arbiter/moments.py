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


def moment_problem(value: date | datetime) -> str | None:
    """Why ``value`` is not a date Arbiter takes, or None."""
    day = value.astimezone(UTC).date() if isinstance(value, datetime) and value.tzinfo else value
    if isinstance(day, datetime):
        day = day.date()
    try:
        inside = EARLIEST <= day <= LATEST
    except (OverflowError, TypeError):
        inside = False
    return None if inside else OUT_OF_RANGE


def moment_problem_safe(value: date | datetime) -> str | None:
    """``moment_problem``, also for a time at the very ends of the calendar (whose UTC
    equivalent does not exist)."""
    try:
        return moment_problem(value)
    except OverflowError:
        return OUT_OF_RANGE


def validate_moment(value: Any) -> None:
    """A Django validator for form date fields."""
    problem = moment_problem_safe(value)
    if problem:
        raise ValidationError(f"The date {problem}.")


class BoundedDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, value: Any) -> datetime:
        moment = super().to_internal_value(value)
        problem = moment_problem_safe(moment)
        if problem:
            raise serializers.ValidationError(problem)
        return moment


class BoundedDateField(serializers.DateField):
    def to_internal_value(self, value: Any) -> date:
        day = super().to_internal_value(value)
        problem = moment_problem_safe(day)
        if problem:
            raise serializers.ValidationError(problem)
        return day


def day_field(label: str) -> forms.DateField:
    """An optional date input of a filter form (ISO whatever the locale), within bounds."""
    widget = forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    return forms.DateField(label=label, required=False, widget=widget, validators=[validate_moment])
