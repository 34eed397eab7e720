"""Request and response shapes of the monitoring API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from arbiter.moments import BoundedDateField, BoundedDateTimeField
from governance.serializers import QueryParamsSerializer, StrictSerializer
from monitoring.models import Outcome, OutcomeEvent
from monitoring.services import MAX_BATCH


class OutcomeInSerializer(StrictSerializer):
    """One reported outcome (documentation of the item; items are checked by the service,
    so that one bad item in a batch is refused alone)."""

    decision_id = serializers.UUIDField(help_text="the id of the logged decision")
    event = serializers.ChoiceField(choices=OutcomeEvent.choices)
    amount = serializers.DecimalField(
        max_digits=16,
        decimal_places=2,
        min_value=0,
        max_value=Decimal("999999999999.99"),
        required=False,
        allow_null=True,
        coerce_to_string=False,
        help_text="USD, less than a trillion; required for paid, allowed for accepted and "
        "defaulted, else absent",
    )
    occurred_at = BoundedDateTimeField(
        help_text="when it happened, ISO 8601 with a time zone; not before the decision"
    )


class AnyItem(serializers.Field):
    """An item of a batch, taken as sent (null included): the service checks each item on
    its own, so that one bad item is refused alone and the rest are stored. (DRF's
    JSONField would refuse the whole batch for a null item or a number too large.)"""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        return (False, data) if data is None else super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class OutcomeBatchInSerializer(StrictSerializer):
    outcomes = serializers.ListField(
        child=AnyItem(),
        allow_empty=False,
        help_text=f"1 to {MAX_BATCH:,} outcomes, each shaped like a single outcome",
    )

    def validate_outcomes(self, value: list[Any]) -> list[Any]:
        if len(value) > MAX_BATCH:
            raise serializers.ValidationError(f"at most {MAX_BATCH} items; split the batch")
        return value


class OutcomeBatchDocSerializer(serializers.Serializer):
    outcomes = OutcomeInSerializer(many=True)


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="position in the batch, from 0")
    # Not a ChoiceField: an enum named after "status" would collide with the versions' one.
    status = serializers.CharField(help_text="created, duplicate or refused")
    code = serializers.CharField(
        help_text="refused: invalid, unknown_decision, not_your_decision, "
        "simulated_decision, before_decision; duplicate: duplicate; created: empty"
    )
    message = serializers.CharField()
    details = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="field-level problems of a refused item",
    )


class OutcomeReportSerializer(serializers.Serializer):
    batch_id = serializers.UUIDField(allow_null=True)
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    refused = serializers.IntegerField()
    items = ItemResultSerializer(many=True)


class OutcomeSerializer(serializers.ModelSerializer):
    decision_id = serializers.UUIDField(source="decision.decision_id")
    deployment = serializers.CharField(source="decision.deployment_name")
    amount = serializers.DecimalField(
        max_digits=16, decimal_places=2, allow_null=True, coerce_to_string=False
    )
    batch_id = serializers.UUIDField(source="batch.batch_id")

    class Meta:
        model = Outcome
        fields = (
            "id",
            "decision_id",
            "deployment",
            "event",
            "amount",
            "occurred_at",
            "recorded_at",
            "batch_id",
        )


class OutcomeFilterSerializer(QueryParamsSerializer):
    decision_id = serializers.UUIDField(required=False)
    deployment = serializers.CharField(required=False)
    event = serializers.ChoiceField(choices=OutcomeEvent.choices, required=False)
    since = BoundedDateTimeField(required=False, help_text="events at or after")
    until = BoundedDateTimeField(required=False, help_text="events before")
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)


class KpiFilterSerializer(QueryParamsSerializer):
    deployment = serializers.CharField(max_length=100)
    since = BoundedDateTimeField(
        required=False, help_text="decisions made at or after (default: 28 days before until)"
    )
    until = BoundedDateTimeField(required=False, help_text="decisions made before (now)")


class PointSerializer(serializers.Serializer):
    start = BoundedDateField(help_text="first day of the period (weeks start on Monday)")
    value = serializers.FloatField(allow_null=True)


class KpiSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    family = serializers.ChoiceField(choices=["financial", "operational", "customer"])
    unit = serializers.CharField()
    better = serializers.ChoiceField(choices=["higher", "lower"])
    description = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    target = serializers.FloatField(allow_null=True)
    direction = serializers.ChoiceField(choices=["at_least", "at_most"], allow_null=True)
    met = serializers.BooleanField(allow_null=True)
    daily = PointSerializer(many=True)
    weekly = PointSerializer(many=True)


class ActionRowSerializer(serializers.Serializer):
    action = serializers.CharField()
    decisions = serializers.IntegerField()
    expected_value = serializers.FloatField(allow_null=True)
    realised_value = serializers.FloatField(allow_null=True)
    profit = serializers.FloatField(allow_null=True)
    value_realisation = serializers.FloatField(allow_null=True)
    take_up_rate = serializers.FloatField(allow_null=True)
    default_rate = serializers.FloatField(allow_null=True)
    recovery_rate = serializers.FloatField(allow_null=True)


class ArmShareSerializer(serializers.Serializer):
    arm = serializers.CharField()
    decisions = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class ArmRateSerializer(serializers.Serializer):
    arm = serializers.CharField()
    successes = serializers.IntegerField()
    trials = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="95% Wilson score interval")
    high = serializers.FloatField(allow_null=True)


class ArmDifferenceSerializer(serializers.Serializer):
    arm = serializers.CharField()
    versus = serializers.CharField()
    difference = serializers.FloatField(allow_null=True, help_text="arm's rate minus versus's")
    low = serializers.FloatField(allow_null=True, help_text="95% Newcombe hybrid score interval")
    high = serializers.FloatField(allow_null=True)


class RateComparisonSerializer(serializers.Serializer):
    kpi = serializers.CharField()
    arms = ArmRateSerializer(many=True)
    differences = ArmDifferenceSerializer(many=True)


class ArmsSerializer(serializers.Serializer):
    shares = ArmShareSerializer(many=True)
    rates = RateComparisonSerializer(many=True)


class MethodsSerializer(serializers.Serializer):
    rate_interval = serializers.CharField()
    difference_interval = serializers.CharField()
    confidence = serializers.FloatField()
    percentiles = serializers.CharField()


class VersionRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


class KpiReportSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    since = BoundedDateTimeField()
    until = BoundedDateTimeField()
    decisions = serializers.IntegerField()
    outcomes = serializers.IntegerField()
    targets_version = VersionRefSerializer(allow_null=True)
    kpis = KpiSerializer(many=True)
    by_action = ActionRowSerializer(many=True)
    arms = ArmsSerializer()
    methods = MethodsSerializer()
