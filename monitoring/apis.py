"""REST endpoints of monitoring: outcomes in from downstream systems, KPIs out."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import exceptions, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arbiter.metrics import bearer_token, monitor_token_matches
from arbiter.openapi import not_found
from arbiter.pagination import Cursor
from governance.exceptions import ValidationFailed
from monitoring import selectors, services
from monitoring.serializers import (
    KpiFilterSerializer,
    KpiReportSerializer,
    OutcomeBatchDocSerializer,
    OutcomeBatchInSerializer,
    OutcomeFilterSerializer,
    OutcomeInSerializer,
    OutcomeReportSerializer,
    OutcomeSerializer,
)


class OutcomeCursor(Cursor):
    ordering = "-id"
    page_size = 50
    max_page_size = 500


@extend_schema(tags=["monitoring"])
class OutcomeListApi(APIView):
    pagination_class = OutcomeCursor
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="outcome_create",
        summary="Report outcomes of decisions: one, or a batch of up to 10,000",
        description=(
            'Send one outcome, or `{"outcomes": [...]}`. Every item is checked on its own '
            "and reported: `created`, `duplicate` (the same decision, event and time is "
            "already recorded: ignored) or `refused` with a code (`invalid`, "
            "`unknown_decision`, `not_your_decision`, `simulated_decision`, "
            "`before_decision`) and field-level "
            "details. The items that pass are stored together or not at all. 201 when "
            "anything was stored, else 200. A single outcome that is refused answers with "
            "the error body instead: 400 (fields, a decision of a run on simulated "
            "customers, or before the decision), 403 (another "
            "client's decision), 404 (unknown decision). API clients report on the "
            "decisions they made; admins on any."
        ),
        request=PolymorphicProxySerializer(
            component_name="OutcomePost",
            serializers=[OutcomeInSerializer, OutcomeBatchDocSerializer],
            resource_type_field_name=None,
        ),
        responses={201: OutcomeReportSerializer, 200: OutcomeReportSerializer},
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed(
                'Send one outcome as an object, or a batch as {"outcomes": [...]}.',
                details={"non_field_errors": ["must be a JSON object"]},
            )
        if "outcomes" in data:
            form = OutcomeBatchInSerializer(data=data)
            form.is_valid(raise_exception=True)
            report = services.outcome_batch_record(
                actor=request.user, items=form.validated_data["outcomes"]
            )
        else:
            report = services.outcome_record(actor=request.user, item=data)
        return Response(
            OutcomeReportSerializer(asdict(report)).data,
            status=201 if report.created else 200,
        )

    @extend_schema(
        operation_id="outcome_list",
        summary="Reported outcomes, newest first (cursor pagination)",
        parameters=[OutcomeFilterSerializer],
        responses={200: OutcomeSerializer(many=True), 404: not_found("the decision named")},
    )
    def get(self, request: Request) -> Response:
        filters = OutcomeFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        outcomes = selectors.outcome_list(
            actor=request.user,
            decision_id=str(data["decision_id"]) if data.get("decision_id") else None,
            deployment=data.get("deployment"),
            event=data.get("event"),
            since=data.get("since"),
            until=data.get("until"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(outcomes, request, view=self)
        return paginator.get_paginated_response(OutcomeSerializer(page, many=True).data)


@extend_schema(tags=["monitoring"])
class KpiReportApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="kpi_report",
        summary="A deployment's KPIs with targets, trends and the champion/challenger table",
        description=(
            "KPIs of the decisions made in [since, until) and every outcome reported on "
            "them so far. Rates come with 95% Wilson score intervals per arm, and each "
            "challenger's difference from the champion with a Newcombe hybrid score "
            "interval. Targets are the deployment's active `kpi_targets` version. "
            "Readers: makers, checkers, auditors, admins."
        ),
        parameters=[KpiFilterSerializer],
        responses={
            200: KpiReportSerializer,
            404: not_found("the deployment named"),
        },
    )
    def get(self, request: Request) -> Response:
        filters = KpiFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        report = selectors.kpi_report(
            actor=request.user,
            deployment=data["deployment"],
            since=data.get("since"),
            until=data.get("until"),
        )
        return Response(KpiReportSerializer(report).data)


class StatusCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=["ok", "warning", "failing"])
    message = serializers.CharField()


class StatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["ok", "warning", "failing"], help_text="the worst state of the checks"
    )
    checked_at = serializers.DateTimeField()
    checks = StatusCheckSerializer(many=True)


class SignedInOrMonitor(permissions.BasePermission):
    """Signed in (the service checks the role), or sending ``Authorization: Bearer
    <METRICS_TOKEN>`` as Prometheus does for /metrics; a wrong token is a 401."""

    def has_permission(self, request: Request, view: Any) -> bool:
        given = bearer_token(request)
        if given is not None and not request.user.is_authenticated:
            if not monitor_token_matches(given):
                raise exceptions.AuthenticationFailed("That is not the monitoring token.")
            return True
        return bool(request.user and request.user.is_authenticated)


@extend_schema(tags=["monitoring"])
class StatusApi(APIView):
    permission_classes = [SignedInOrMonitor]

    @extend_schema(
        operation_id="status",
        summary="Whether every part of the installation is working (manage.py status)",
        description=(
            "Checks the database, task queue, workers, beat, artifact storage, the active "
            "deployments' model files, the decision log's last verification, optimisation "
            "runs and API keys, each `ok`, `warning` or `failing` with a sentence. Answers "
            "200 when nothing is failing and 503 (with the same body) when something is, so "
            "that an HTTP monitor can poll it. Takes about 2 s (the workers' ping). "
            "Administrators, or a monitor sending `Authorization: Bearer <METRICS_TOKEN>`."
        ),
        responses={200: StatusSerializer, 503: StatusSerializer},
    )
    def get(self, request: Request) -> Response:
        from monitoring.status import FAILING, status_report

        report = status_report(actor=request.user, monitor_token=bearer_token(request))
        return Response(report, status=503 if report["state"] == FAILING else 200)
