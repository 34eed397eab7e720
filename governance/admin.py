"""Admin pages for governance: read-only content, lifecycle moves as admin actions.

The actions call the same services as the API, so role checks, four eyes and the audit
chain hold here too; a refused move shows the service's message.
"""

from __future__ import annotations

from typing import Any

import django.contrib.auth.admin  # noqa: F401 (registers User and Group, unregistered below)
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from governance.exceptions import DomainError
from governance.lifecycle import TRANSITIONS, Move
from governance.models import ApiKey, AuditEvent, ChainHead, Item, Version
from governance.services import api_key_revoke, user_set_active, version_move


class ReadOnlyAdmin(admin.ModelAdmin):
    """Governed records change only through services, never by editing a form."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MoveForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


def _move_action(move: Move) -> Any:
    transition = TRANSITIONS[move]

    def action(modeladmin: VersionAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
        if "apply" not in request.POST:
            return TemplateResponse(
                request,
                "admin/governance/version/move_confirm.html",
                {
                    **modeladmin.admin_site.each_context(request),
                    "title": f"{move.label}: add a comment",
                    "move": move,
                    "versions": queryset,
                    "form": MoveForm(),
                    "comment_required": transition.comment_required,
                    "opts": modeladmin.model._meta,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        comment = request.POST.get("comment", "")
        done = 0
        for version in queryset.select_related("item"):
            try:
                version_move(actor=request.user, version=version, move=move, comment=comment)
                done += 1
            except DomainError as exc:
                modeladmin.message_user(request, f"{version}: {exc.message}", messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{move.label}: {done} version(s).", messages.SUCCESS)
        return None

    action.__name__ = f"move_{move.value}"
    action.short_description = f"{move.label} selected versions"
    return action


class VersionInline(admin.TabularInline):
    model = Version
    fields = ("number", "status", "content_hash", "author", "submitted_by", "reviewed_by")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "created_by", "created_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    inlines = [VersionInline]


@admin.register(Version)
class VersionAdmin(ReadOnlyAdmin):
    list_display = (
        "item",
        "number",
        "status",
        "author",
        "submitted_by",
        "reviewed_by",
        "submitted_at",
    )
    list_filter = ("status", "item__kind")
    search_fields = ("item__name",)
    readonly_fields = [f.name for f in Version._meta.fields] + ["contributors"]
    actions = [_move_action(move) for move in Move]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "created_at",
        "actor_username",
        "action",
        "kind",
        "item_name",
        "version_number",
        "old_status",
        "new_status",
    )
    list_filter = ("action", "kind")
    search_fields = ("item_name", "actor_username")
    readonly_fields = [f.name for f in AuditEvent._meta.fields]


@admin.register(ChainHead)
class ChainHeadAdmin(ReadOnlyAdmin):
    list_display = ("name", "seq", "hash")


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = (
        "prefix",
        "user",
        "name",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    readonly_fields = [f.name for f in ApiKey._meta.fields if f.name != "key_hash"]
    exclude = ("key_hash",)
    actions = ["revoke"]

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        for key in queryset:
            try:
                api_key_revoke(actor=request.user, key=key)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


# --- people ---------------------------------------------------------------------------

# Roles are groups, managed by code: editing groups, or a user's groups, staff or superuser
# flags or password in the admin would change who may approve what with no audit event.
admin.site.unregister(Group)
admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class PersonAdmin(ReadOnlyAdmin):
    """People and systems, read-only: they change through the services, each change an
    audit event (``manage.py create_user``, ``update_user``, ``reset_password``; the
    actions below)."""

    list_display = ("username", "email", "roles", "is_active", "last_login", "date_joined")
    list_filter = ("is_active", "groups")
    search_fields = ("username", "email")
    shown = (
        "username",
        "email",
        "roles",
        "is_active",
        "is_superuser",
        "last_login",
        "date_joined",
    )
    readonly_fields = shown
    fieldsets = (
        (
            None,
            {
                "fields": shown,
                "description": (
                    "Read-only here: roles, addresses and passwords change through "
                    "manage.py update_user and reset_password, each change an audit event. "
                    "The list's actions deactivate and reactivate accounts."
                ),
            },
        ),
    )
    actions = ["deactivate", "reactivate"]

    @admin.display(description="roles")
    def roles(self, obj: Any) -> str:
        return ", ".join(sorted(group.name for group in obj.groups.all())) or "none"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("groups")

    def _set_active(self, request: HttpRequest, queryset: QuerySet, active: bool) -> None:
        changed = 0
        for person in queryset:
            try:
                changed += user_set_active(actor=request.user, user=person, active=active)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        verb = "Reactivated" if active else "Deactivated"
        self.message_user(request, f"{verb} {changed} account(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected accounts (sign-ins and API keys stop)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description="Reactivate selected accounts")
    def reactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, True)
