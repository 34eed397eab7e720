"""Read-only admin pages of reported outcomes and their batches."""

from __future__ import annotations

from django.contrib import admin

from governance.admin import ReadOnlyAdmin
from monitoring.models import Outcome, OutcomeBatch


@admin.register(Outcome)
class OutcomeAdmin(ReadOnlyAdmin):
    list_display = ("decision_id", "event", "amount", "occurred_at", "recorded_at")
    list_filter = ("event",)
    search_fields = ("=decision__decision_id",)
    readonly_fields = [f.name for f in Outcome._meta.fields]


@admin.register(OutcomeBatch)
class OutcomeBatchAdmin(ReadOnlyAdmin):
    list_display = ("batch_id", "source", "file_name", "posted_by", "created_at", "created")
    list_filter = ("source",)
    readonly_fields = [f.name for f in OutcomeBatch._meta.fields]
