"""Request and response shapes of the governance API. Input serializers refuse unknown fields."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers

from arbiter.moments import BoundedDateTimeField
from arbiter.pagination import MAX_PAGE
from arbiter.parsers import JSONRefused, json_loads
from governance.kinds import kinds_all
from governance.models import AuditAction, AuditEvent, Item, Version


class StrictSerializer(serializers.Serializer):
    """A serializer that answers 400 naming every field it does not know."""

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {key: [f"unknown field (allowed: {', '.join(self.fields)})"] for key in unknown}
                )
        return super().to_internal_value(data)


class QueryParamsSerializer(StrictSerializer):
    """A list's query parameters: unknown ones, empty ones, repeated ones and a ``since``
    not before ``until`` answer 400.

    DRF takes ``?customer_id=`` as if the parameter were left out, so a client whose
    customer id came out empty would get every customer's decisions; and of
    ``?deployment=a&deployment=b`` it reads only the last. Both are a client's mistake, so
    they are refused, naming the parameter, as the schema's ``minLength: 1`` promises.
    """

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "getlist"):
            errors: dict[str, list[str]] = {}
            for name in data:
                if name not in self.fields:
                    continue  # StrictSerializer names it
                values = data.getlist(name)
                if len(values) > 1:
                    errors[name] = [f"given {len(values)} times: give it once"]
                elif not values[0].strip():
                    errors[name] = ["must not be empty (leave the parameter out instead)"]
            if errors:
                raise serializers.ValidationError(errors)
        values = super().to_internal_value(data)
        since, until = values.get("since"), values.get("until")
        if since is not None and until is not None and since >= until:
            # An empty answer would read as "nothing happened then".
            raise serializers.ValidationError({"since": ["must be before until"]})
        return values


class CursorParamsSerializer(QueryParamsSerializer):
    """A cursor-paged list without filters: only its paging parameters (their ranges are
    the paginator's to check), so that a mistyped one (``?pagesize=``) is a 400."""

    cursor = serializers.CharField(required=False)
    page_size = serializers.CharField(required=False)


class PagesParamsSerializer(QueryParamsSerializer):
    """A ``limit``/``offset`` list without filters: as ``CursorParamsSerializer``."""

    limit = serializers.CharField(required=False)
    offset = serializers.CharField(required=False)


def query_params_check(request: Any, serializer: type[serializers.Serializer]) -> dict:
    """The request's query parameters as ``serializer`` reads them, or a 400 naming each
    bad one."""
    checked = serializer(data=request.query_params)
    checked.is_valid(raise_exception=True)
    return checked.validated_data


def _username(user: Any) -> str | None:
    return user.username if user is not None else None


class VersionSummarySerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    submitted_by = serializers.SerializerMethodField()
    reviewed_by = serializers.SerializerMethodField()

    class Meta:
        model = Version
        fields = (
            "number",
            "status",
            "content_hash",
            "artifact_sha256",
            "artifact_size",
            "change_note",
            "author",
            "submitted_by",
            "reviewed_by",
            "review_comment",
            "created_at",
            "submitted_at",
            "reviewed_at",
            "activated_at",
            "retired_at",
        )

    def get_author(self, obj: Version) -> str:
        return obj.author.username

    def get_submitted_by(self, obj: Version) -> str | None:
        return _username(obj.submitted_by)

    def get_reviewed_by(self, obj: Version) -> str | None:
        return _username(obj.reviewed_by)


class VersionDetailSerializer(VersionSummarySerializer):
    kind = serializers.CharField(source="item.kind")
    name = serializers.CharField(source="item.name")
    contributors = serializers.SerializerMethodField()
    content = serializers.JSONField()

    class Meta(VersionSummarySerializer.Meta):
        fields = ("kind", "name", *VersionSummarySerializer.Meta.fields, "contributors", "content")

    def get_contributors(self, obj: Version) -> list[str]:
        return sorted(u.username for u in obj.contributors.all())


class ItemSerializer(serializers.ModelSerializer):
    versions = VersionSummarySerializer(many=True, read_only=True)
    created_by = serializers.CharField(source="created_by.username")

    class Meta:
        model = Item
        fields = ("kind", "name", "created_by", "created_at", "versions")


class VersionCreateSerializer(StrictSerializer):
    content = serializers.JSONField(help_text="the version's content (see docs/registry.md)")
    change_note = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_content(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class VersionUploadSerializer(StrictSerializer):
    """Multipart form for kinds with an artifact (models): the file plus JSON content."""

    artifact = serializers.FileField(help_text="the skops file")
    content = serializers.CharField(help_text="the version's content as a JSON object")
    change_note = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_content(self, value: str) -> Any:
        try:
            parsed = json_loads(value)
        except json.JSONDecodeError as exc:
            raise serializers.ValidationError(f"not valid JSON: {exc.msg} at {exc.pos}") from None
        except JSONRefused as exc:
            raise serializers.ValidationError(f"not valid here: {exc}") from None
        if not isinstance(parsed, dict):
            raise serializers.ValidationError("must be a JSON object")
        return parsed


class VersionUpdateSerializer(StrictSerializer):
    content = serializers.JSONField()
    change_note = serializers.CharField(required=False, allow_blank=True)

    def validate_content(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class MoveSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = (
            "seq",
            "created_at",
            "actor_username",
            "action",
            "kind",
            "item_name",
            "version_number",
            "old_status",
            "new_status",
            "content_hash",
            "comment",
            "details",
            "prev_hash",
            "hash",
        )


class AuditFilterSerializer(QueryParamsSerializer):
    kind = serializers.CharField(
        required=False, help_text="a kind (model, strategy, ...) or its registry (models, ...)"
    )
    item = serializers.CharField(required=False)
    actor = serializers.CharField(required=False)
    action = serializers.ChoiceField(
        choices=AuditAction.choices, required=False, help_text="what was done, e.g. role_grant"
    )
    since = BoundedDateTimeField(required=False)
    until = BoundedDateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE)
    offset = serializers.IntegerField(required=False, min_value=0)
    format = serializers.ChoiceField(
        choices=["json", "csv"], required=False, help_text="csv: every event selected"
    )

    def validate_kind(self, value: str) -> str:
        """The kind's key; its registry's URL slug (``strategies``) is taken for it. A kind
        no registry has would only ever list nothing, so it is refused."""
        kinds = kinds_all()
        for kind in kinds:
            if value in (kind.key, kind.slug):
                return kind.key
        raise serializers.ValidationError(f"not a kind: one of {', '.join(k.key for k in kinds)}")


class ChainReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    events = serializers.IntegerField()
    head_seq = serializers.IntegerField(
        allow_null=True, help_text="null when the chain is broken: it has no head to record"
    )
    head_hash = serializers.CharField(
        allow_null=True, help_text="null when the chain is broken: it has no head to record"
    )
    versions_checked = serializers.IntegerField()
    first_bad_event = serializers.IntegerField(allow_null=True)
    problems = serializers.ListField(child=serializers.CharField())
