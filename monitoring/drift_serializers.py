"""Request and response shapes of the drift endpoints."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.serializers import QueryParamsSerializer
from monitoring.models import DriftReport, DriftStatus

_STATUSES = ", ".join(DriftStatus.values)


class DriftFilterSerializer(QueryParamsSerializer):
    model = serializers.CharField(required=False, max_length=100, help_text="model name")
    version = serializers.IntegerField(required=False, min_value=1, help_text="model version")
    status = serializers.ChoiceField(
        choices=DriftStatus.choices,
        required=False,
        error_messages={"invalid_choice": f"must be one of {_STATUSES}"},
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500)
    offset = serializers.IntegerField(required=False, min_value=0)


class DriftBinSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="the bin: an interval, a category or (missing)")
    reference = serializers.FloatField(help_text="share of the reference sample")
    current = serializers.FloatField(help_text="share of the window")


class DriftTestSerializer(serializers.Serializer):
    test = serializers.CharField(allow_null=True, help_text="the test Evidently chose")
    statistic = serializers.FloatField(allow_null=True, help_text="p-value or distance")
    threshold = serializers.FloatField(allow_null=True)
    drifted = serializers.BooleanField(help_text="Evidently's verdict for the column")
    psi = serializers.FloatField(allow_null=True, help_text="population stability index")
    psi_band = serializers.CharField(help_text="stable (< 0.1), watch (0.1-0.25), act (> 0.25)")
    psi_bins = DriftBinSerializer(many=True)


class DriftFeatureSerializer(DriftTestSerializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="numeric or categorical")


class DriftScoreSerializer(DriftTestSerializer):
    reference_rows = serializers.IntegerField(help_text="reference rows scored")
    current_rows = serializers.IntegerField(help_text="window rows scored")
    reference_mean = serializers.FloatField(allow_null=True)
    current_mean = serializers.FloatField(allow_null=True)


class DriftReportSummarySerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_version.item.name")
    version = serializers.IntegerField(source="model_version.number")
    model_content_hash = serializers.CharField(source="model_version.content_hash")
    status = serializers.ChoiceField(choices=DriftStatus.choices)
    html_available = serializers.SerializerMethodField(
        help_text="whether Evidently's HTML report is stored (shown on the reviewer page)"
    )

    class Meta:
        model = DriftReport
        fields = [
            "id",
            "model",
            "version",
            "model_content_hash",
            "window_start",
            "window_end",
            "status",
            "decisions_in_window",
            "current_rows",
            "reference_rows",
            "sampled",
            "sample_limit",
            "share_drifted",
            "drifted_features",
            "dataset_drift",
            "psi_score",
            "psi_max",
            "html_available",
            "created_at",
        ]

    @extend_schema_field(serializers.BooleanField())
    def get_html_available(self, report: DriftReport) -> bool:
        return bool(report.html_path)


class DriftReportSerializer(DriftReportSummarySerializer):
    features = serializers.SerializerMethodField()
    score = serializers.SerializerMethodField()
    parameters = serializers.JSONField(help_text="PSI binning, sample seed, Evidently version")

    class Meta(DriftReportSummarySerializer.Meta):
        fields = [*DriftReportSummarySerializer.Meta.fields, "features", "score", "parameters"]

    @extend_schema_field(DriftFeatureSerializer(many=True))
    def get_features(self, report: DriftReport) -> list[dict[str, Any]]:
        return DriftFeatureSerializer(report.features, many=True).data

    @extend_schema_field(DriftScoreSerializer(allow_null=True))
    def get_score(self, report: DriftReport) -> dict[str, Any] | None:
        if not report.score:
            return None
        return DriftScoreSerializer(report.score).data
