"""Read-only admin pages of the decision log."""

from __future__ import annotations

from django.contrib import admin

from decisions.models import Decision, DecisionBlock, DecisionPurge, LogVerification, ReplayCheck
from governance.admin import ReadOnlyAdmin


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "decision_id",
        "created_at",
        "deployment_name",
        "customer_id",
        "action_id",
        "arm",
    )
    list_filter = ("deployment_name", "arm")
    search_fields = ("customer_id", "=decision_id", "=request_id")
    readonly_fields = [f.name for f in Decision._meta.fields]


@admin.register(DecisionBlock)
class DecisionBlockAdmin(ReadOnlyAdmin):
    list_display = ("number", "after_seq", "last_seq", "row_count", "sealed_at", "hash")
    readonly_fields = [f.name for f in DecisionBlock._meta.fields]


@admin.register(DecisionPurge)
class DecisionPurgeAdmin(ReadOnlyAdmin):
    list_display = ("through_block", "rows_removed", "outcomes_removed", "before", "purged_at")
    readonly_fields = [f.name for f in DecisionPurge._meta.fields]


@admin.register(LogVerification)
class LogVerificationAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "source", "ok", "blocks", "rows", "unsealed", "seconds")
    list_filter = ("ok", "source")
    readonly_fields = [f.name for f in LogVerification._meta.fields]


@admin.register(ReplayCheck)
class ReplayCheckAdmin(ReadOnlyAdmin):
    list_display = (
        "requested_at",
        "requested_by",
        "status",
        "size",
        "identical",
        "differs",
        "not_replayed",
    )
    list_filter = ("status",)
    readonly_fields = [f.name for f in ReplayCheck._meta.fields]
