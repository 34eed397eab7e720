"""REST endpoints of optimisation runs: start, follow, cancel, read decisions, publish prices."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, renderers, serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arbiter.csv_export import CSVErrorsAsJSON, CSVRenderer
from arbiter.openapi import conflict, unprocessable
from arbiter.pagination import Cursor
from arbiter.parsers import JSONParser, JSONRefused, json_loads
from decisions import optimisation
from decisions.exports import run_csv_rows
from decisions.models import OptimisationRun, RunStatus
from decisions.serializers import DecisionSerializer
from governance.apis import FORM_FIELDS_BYTES, HasRole, refuse_body_over
from governance.serializers import (
    CursorParamsSerializer,
    QueryParamsSerializer,
    StrictSerializer,
    query_params_check,
)


class VersionRefSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    version = serializers.IntegerField(min_value=1)


class SimulatedSerializer(StrictSerializer):
    customers = serializers.IntegerField(min_value=1, default=5_000)
    seed = serializers.IntegerField(min_value=0, max_value=2**32 - 1, default=1)


class RunCreateSerializer(StrictSerializer):
    deployment = serializers.CharField(max_length=100, required=False)
    strategy = VersionRefSerializer(required=False)
    constraint_set = VersionRefSerializer(required=False)
    simulated = SimulatedSerializer(required=False)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    time_limit_seconds = serializers.FloatField(min_value=1, required=False)
    log_decisions = serializers.BooleanField(default=True)


class RunUploadSerializer(StrictSerializer):
    """Multipart: the population file plus the same fields as form values."""

    population = serializers.FileField(help_text="CSV or Parquet: customer_id + features")
    deployment = serializers.CharField(max_length=100, required=False)
    strategy = serializers.CharField(
        required=False, help_text='JSON: {"name": ..., "version": ...}'
    )
    constraint_set = serializers.CharField(
        required=False, help_text='JSON: {"name": ..., "version": ...}'
    )
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    time_limit_seconds = serializers.FloatField(min_value=1, required=False)
    log_decisions = serializers.BooleanField(default=True)

    def _ref(self, value: str) -> dict[str, Any]:
        try:
            parsed = json_loads(value)
        except json.JSONDecodeError as exc:
            raise serializers.ValidationError(f"not valid JSON: {exc.msg}") from None
        except JSONRefused as exc:
            raise serializers.ValidationError(f"not valid here: {exc}") from None
        form = VersionRefSerializer(data=parsed)
        if not form.is_valid():
            raise serializers.ValidationError(form.errors)
        return dict(form.validated_data)

    def validate_strategy(self, value: str) -> dict[str, Any]:
        return self._ref(value)

    def validate_constraint_set(self, value: str) -> dict[str, Any]:
        return self._ref(value)


class LimitSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    sense = serializers.CharField()
    bound = serializers.FloatField()
    used = serializers.FloatField()
    slack = serializers.FloatField()
    utilisation = serializers.FloatField(allow_null=True)
    price = serializers.FloatField()
    binding = serializers.BooleanField()


class RunSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    strategy = serializers.SerializerMethodField()
    constraint_set = serializers.SerializerMethodField()
    limits = LimitSerializer(many=True)
    prices = serializers.DictField(child=serializers.FloatField())
    published_version = serializers.SerializerMethodField()
    waiting = serializers.BooleanField(
        read_only=True,
        help_text="queued, and no worker has taken it OPTIMISATION_QUEUED_RESEND_SECONDS "
        "after it was created (no worker free or running, or the broker lost the "
        "message): its task is sent again",
    )
    stalled = serializers.BooleanField(
        read_only=True,
        help_text="running, but its worker has not been heard from for "
        "OPTIMISATION_HEARTBEAT_STALE_SECONDS: it is started again within a minute",
    )

    class Meta:
        model = OptimisationRun
        fields = (
            "id",
            "status",
            "phase",
            "progress",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "description",
            "deployment_name",
            "strategy",
            "constraint_set",
            "population",
            "customers",
            "time_limit_seconds",
            "log_decisions",
            "attempts",
            "sent_at",
            "waiting",
            "heartbeat_at",
            "stalled",
            "cancel_requested",
            "solver_status",
            "objective",
            "bound",
            "gap",
            "limits",
            "prices",
            "kpis",
            "phase_seconds",
            "execution",
            "decisions_logged",
            "error",
            "error_details",
            "published_version",
        )

    def _ref(self, version: Any) -> dict[str, Any]:
        return {"name": version.item.name, "version": version.number}

    def get_strategy(self, run: OptimisationRun) -> dict[str, Any]:
        return self._ref(run.strategy_version)

    def get_constraint_set(self, run: OptimisationRun) -> dict[str, Any]:
        return self._ref(run.constraint_set_version)

    def get_published_version(self, run: OptimisationRun) -> dict[str, Any] | None:
        version = run.published_version
        if version is None:
            return None
        return {"name": version.item.name, "version": version.number, "status": version.status}

    def to_representation(self, run: OptimisationRun) -> dict[str, Any]:
        data = super().to_representation(run)
        population = dict(run.population)
        population.pop("path", None)  # where the server keeps it is not the client's business
        data["population"] = population
        return data


class RunFilterSerializer(QueryParamsSerializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    deployment = serializers.CharField(max_length=100, required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=200)


class PublishSerializer(StrictSerializer):
    comment = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class PublishedSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    content_hash = serializers.CharField()
    prices = serializers.DictField(child=serializers.FloatField())


class RunCursor(Cursor):
    ordering = "-id"
    page_size = 20
    max_page_size = 200


class RunDecisionParamsSerializer(CursorParamsSerializer):
    format = serializers.ChoiceField(choices=["json", "csv"], required=False)


class RunDecisionCursor(Cursor):
    ordering = "seq"
    page_size = 100
    max_page_size = 1000


@extend_schema(tags=["optimisation"])
class RunListApi(APIView):
    pagination_class = RunCursor
    permission_classes = [permissions.IsAuthenticated, HasRole]
    read_roles = optimisation.READER_ROLES
    write_roles = optimisation.CREATOR_ROLES
    write_action = "start optimisation runs"
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        operation_id="optimisation_run_create",
        summary="Start an optimisation run on a deployment (or versions) and a population",
        description=(
            "JSON with `simulated` (customers, seed) for a simulated population of the "
            "strategy's use case, or multipart with a `population` CSV or Parquet file "
            "(a `customer_id` column and one column per feature). 201 with the queued run; "
            "with no broker configured the run has already finished when this returns. "
            "A population with missing columns or bad values fails the run naming rows "
            "and columns, and logs no decision. 503 `task_queue_unavailable` when the "
            "broker does not take the run: the run is marked failed, saying so."
        ),
        request={
            "application/json": RunCreateSerializer,
            "multipart/form-data": RunUploadSerializer,
        },
        responses={201: RunSerializer},
    )
    def post(self, request: Request) -> Response:
        refuse_body_over(request, settings.OPTIMISATION_POPULATION_MAX_BYTES + FORM_FIELDS_BYTES)
        upload = "population" in request.FILES
        form = (RunUploadSerializer if upload else RunCreateSerializer)(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        population = data.get("population")
        run = optimisation.optimisation_run_create(
            actor=request.user,
            deployment=data.get("deployment") or None,
            strategy=data.get("strategy"),
            constraint_set=data.get("constraint_set"),
            population_file=population.file if population is not None else None,
            population_filename=population.name if population is not None else "",
            simulated=dict(data["simulated"]) if "simulated" in data else None,
            description=data.get("description", ""),
            time_limit_seconds=data.get("time_limit_seconds"),
            log_decisions=data["log_decisions"],
        )
        # With no broker the task ran in-process when the transaction committed.
        run = optimisation.optimisation_run_get(actor=request.user, run_id=run.pk)
        return Response(RunSerializer(run).data, status=201)

    @extend_schema(
        operation_id="optimisation_run_list",
        summary="Optimisation runs, newest first (cursor pagination)",
        parameters=[RunFilterSerializer],
        responses=RunSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = RunFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = optimisation.optimisation_run_list(
            actor=request.user,
            status=filters.validated_data.get("status"),
            deployment=filters.validated_data.get("deployment"),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(RunSerializer(page, many=True).data)


@extend_schema(tags=["optimisation"])
class RunDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="optimisation_run_retrieve",
        summary="A run's status, phase, progress and, when finished, its results",
        responses=RunSerializer,
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
        return Response(RunSerializer(run).data)


@extend_schema(tags=["optimisation"])
class RunCancelApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="optimisation_run_cancel",
        summary="Cancel a queued run, or stop a running one at its next step",
        request=None,
        responses={200: RunSerializer, 409: conflict("the run has already finished")},
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
        optimisation.optimisation_run_cancel(actor=request.user, run=run)
        run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
        return Response(RunSerializer(run).data)


@extend_schema(tags=["optimisation"])
class RunPublishApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="optimisation_run_publish_prices",
        summary="Propose the run's prices for its deployment (a submitted version to review)",
        request=PublishSerializer,
        responses={
            201: PublishedSerializer,
            409: conflict("a version of the deployment is already under review"),
            422: unprocessable("the run did not succeed, or its deployment changed since"),
        },
    )
    def post(self, request: Request, run_id: int) -> Response:
        form = PublishSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
        version = optimisation.optimisation_prices_publish(
            actor=request.user, run=run, comment=form.validated_data.get("comment", "")
        )
        return Response(
            PublishedSerializer(
                {
                    "name": version.item.name,
                    "version": version.number,
                    "status": version.status,
                    "content_hash": version.content_hash,
                    "prices": version.content.get("prices", {}),
                }
            ).data,
            status=201,
        )


@extend_schema(tags=["optimisation"])
class RunDecisionsApi(CSVErrorsAsJSON, APIView):
    pagination_class = RunDecisionCursor
    permission_classes = [permissions.IsAuthenticated]
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="optimisation_run_decisions",
        summary="A succeeded run's decisions in population order (cursor pagination; CSV)",
        description=(
            "JSON pages by default; `?format=csv` (or `Accept: text/csv`) streams every "
            "decision as CSV: id, customer, action, value, price-adjusted score, reason "
            "codes, time and the action's attributes. Checkers, auditors and admins only, as "
            "for the decision log (403 otherwise). 409 while the run has not succeeded."
        ),
        parameters=[
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": RunDecisionCursor.max_page_size},
                required=False,
                description="decisions per page (JSON); the CSV export holds every one",
            ),
        ],
        responses={
            200: OpenApiResponse(
                DecisionSerializer(many=True), description="a page, or the CSV export"
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV export"),
            409: conflict("the run did not succeed, or was a simulation that logged nothing"),
        },
    )
    def get(self, request: Request, run_id: int) -> Any:
        query_params_check(request, RunDecisionParamsSerializer)
        run = optimisation.optimisation_run_get(actor=request.user, run_id=run_id)
        decisions = optimisation.optimisation_run_decisions(actor=request.user, run=run)
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(
                run_csv_rows(decisions.order_by("seq")), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = (
                f'attachment; filename="optimisation-run-{run.pk}-decisions.csv"'
            )
            return response
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(decisions, request, view=self)
        return paginator.get_paginated_response(DecisionSerializer(page, many=True).data)
