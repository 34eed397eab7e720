"""REST endpoints of drift reports: the list, and one report's summary with its features."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arbiter.pagination import Pages
from monitoring import drift_selectors
from monitoring.drift_serializers import (
    DriftFilterSerializer,
    DriftReportSerializer,
    DriftReportSummarySerializer,
)


class DriftPagination(Pages):
    default_limit = 50


@extend_schema(tags=["monitoring"])
class DriftReportListApi(APIView):
    pagination_class = DriftPagination
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="drift_report_list",
        summary="Drift reports per model version and window, newest window first",
        description=(
            "One report per model version and window (daily by default): the share of "
            "drifted features (Evidently's data-drift preset), the population stability "
            "index of the model's score and the largest PSI of any customer input or the "
            "score (inputs the strategy sets are shown, not counted), the status (stable "
            "< 0.1, watch 0.1-0.25, act > 0.25 on the largest PSI), and "
            "the sample sizes (`sampled` when the window had more decisions than were "
            "compared). Readers: makers, checkers, auditors, admins."
        ),
        parameters=[DriftFilterSerializer],
        responses=DriftReportSummarySerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = DriftFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        reports = drift_selectors.drift_report_list(
            actor=request.user,
            model=data.get("model"),
            version=data.get("version"),
            status=data.get("status"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(reports, request, view=self)
        return paginator.get_paginated_response(DriftReportSummarySerializer(page, many=True).data)


@extend_schema(tags=["monitoring"])
class DriftReportDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="drift_report_get",
        summary="One drift report: per feature the test, statistic, drift flag and PSI",
        description=(
            "The summary of the list plus, per feature, the test Evidently chose, its "
            "statistic (a p-value or a distance) and threshold, its drift verdict, the PSI "
            "with its band and bins; the same for the model's score (prediction drift, "
            "with the mean score on each side); and the parameters (PSI binning, sampling "
            "seed, Evidently version). Evidently's HTML report is on the reviewer page."
        ),
        responses=DriftReportSerializer,
    )
    def get(self, request: Request, report_id: int) -> Response:
        report = drift_selectors.drift_report_get(actor=request.user, report_id=report_id)
        return Response(DriftReportSerializer(report).data)
