"""Request and response shapes of the decisions API."""

from __future__ import annotations

import threading
from typing import Any

from rest_framework import serializers

from arbiter.moments import BoundedDateTimeField
from decisions.models import Decision, LogVerification, ReplayCheck
from decisions.replays import MAX_SAMPLE
from governance.serializers import QueryParamsSerializer, StrictSerializer


class DecisionRequestSerializer(StrictSerializer):
    deployment = serializers.CharField(max_length=100)
    customer_id = serializers.CharField(max_length=200)
    features = serializers.JSONField()
    channel = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    def validate_features(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object of feature: value")
        return value


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField()
    text = serializers.CharField()
    feature = serializers.CharField()
    value = serializers.JSONField()
    contribution = serializers.FloatField()


class DecisionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="decision_id")
    deployment = serializers.CharField(source="deployment_name")
    action = serializers.SerializerMethodField()
    reasons = ReasonSerializer(many=True)
    explanation = serializers.JSONField()
    versions = serializers.JSONField()

    class Meta:
        model = Decision
        fields = (
            "id",
            "request_id",
            "customer_id",
            "deployment",
            "channel",
            "action",
            "value",
            "reasons",
            "explanation",
            "versions",
            "arm",
            "created_at",
        )

    def get_action(self, obj: Decision) -> dict[str, Any]:
        return {"key": obj.action_id, "attributes": obj.action}


class DecisionDetailSerializer(DecisionSerializer):
    """The whole logged record, for auditors."""

    features = serializers.JSONField()
    actions = serializers.JSONField()
    prices = serializers.JSONField()
    contributions = serializers.JSONField()

    class Meta(DecisionSerializer.Meta):
        fields = (
            *DecisionSerializer.Meta.fields,
            "features",
            "actions",
            "prices",
            "contributions",
            "latency_ms",
            "content_hash",
        )


class DecisionFilterSerializer(QueryParamsSerializer):
    customer_id = serializers.CharField(required=False)
    deployment = serializers.CharField(required=False)
    since = BoundedDateTimeField(required=False)
    until = BoundedDateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)
    format = serializers.ChoiceField(
        choices=["json", "csv"], required=False, help_text="csv: every decision selected"
    )


class ReplaySerializer(serializers.Serializer):
    matches = serializers.BooleanField()
    differences = serializers.ListField(child=serializers.JSONField())


class FeatureSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["numeric", "categorical"])
    required = serializers.BooleanField()
    min = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False)
    categories = serializers.ListField(child=serializers.CharField(), required=False)


class DeploymentSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    content_hash = serializers.CharField()
    strategy = serializers.JSONField()
    constraint_set = serializers.JSONField()
    arms = serializers.ListField(child=serializers.JSONField())
    features = FeatureSpecSerializer(many=True)
    actions = serializers.ListField(child=serializers.JSONField())


_built: dict[type[serializers.Serializer], serializers.Serializer] = {}
_built_lock = threading.Lock()


def represent(serializer_class: type[serializers.Serializer], instance: Any) -> dict[str, Any]:
    """``serializer_class(instance).data``, from fields built once per process.

    A ``ModelSerializer`` builds its fields anew for every instance (deep copies and model
    introspection): about 0.4 ms per decision answered, several times the cost of the
    representation itself. ``to_representation`` only reads the fields, so one bound
    instance serves every request and thread. Not for serializers whose fields read the
    request or other context.
    """
    shared = _built.get(serializer_class)
    if shared is None:
        with _built_lock:
            shared = _built.get(serializer_class)
            if shared is None:
                shared = serializer_class()
                shared.fields  # noqa: B018 (bind them now, not on first concurrent use)
                _built[serializer_class] = shared
    return shared.to_representation(instance)


class LogVerificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = LogVerification
        fields = (
            "id",
            "started_at",
            "seconds",
            "source",
            "requested_by",
            "ok",
            "blocks",
            "rows",
            "unsealed",
            "purged_blocks",
            "purged_rows",
            "skipped_blocks",
            "skipped_rows",
            "head_hash",
            "first_bad_block",
            "first_bad_row",
            "problems",
        )


class ReplayCheckRequestSerializer(StrictSerializer):
    size = serializers.IntegerField(
        min_value=1, max_value=MAX_SAMPLE, default=1000, help_text="decisions to draw"
    )
    seed = serializers.IntegerField(
        min_value=0,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        help_text="draw the decisions an earlier check drew (default: a new random seed)",
    )
    deployment = serializers.CharField(max_length=100, required=False, allow_blank=True)
    customer_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    run = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    since = BoundedDateTimeField(required=False, allow_null=True)
    until = BoundedDateTimeField(required=False, allow_null=True)


class ReplayCheckSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    replayed = serializers.IntegerField(read_only=True)
    ok = serializers.BooleanField(
        read_only=True, allow_null=True, help_text="every drawn decision identical; null until done"
    )

    class Meta:
        model = ReplayCheck
        fields = (
            "id",
            "status",
            "requested_by",
            "requested_at",
            "started_at",
            "finished_at",
            "sent_at",
            "attempts",
            "filters",
            "size",
            "seed",
            "population",
            "through_seq",
            "replayed",
            "identical",
            "differs",
            "not_replayed",
            "ok",
            "findings",
            "error",
        )


class VerificationQueuedSerializer(serializers.Serializer):
    queued = serializers.BooleanField()
    detail = serializers.CharField()
