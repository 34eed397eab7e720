"""REST endpoints for downstream systems: deployments, decisions, replays."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, renderers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arbiter.csv_export import CSVErrorsAsJSON, CSVRenderer
from arbiter.metrics import DECISION_SECONDS, DECISIONS
from arbiter.openapi import conflict, unprocessable
from arbiter.pagination import Cursor
from decisions import replays, runtime, selectors, services
from decisions.deployments import CHAMPION
from decisions.exports import log_csv_filename, log_csv_rows
from decisions.models import LogVerification
from decisions.serializers import (
    DecisionDetailSerializer,
    DecisionFilterSerializer,
    DecisionRequestSerializer,
    DecisionSerializer,
    DeploymentSerializer,
    LogVerificationSerializer,
    ReplayCheckRequestSerializer,
    ReplayCheckSerializer,
    ReplaySerializer,
    VerificationQueuedSerializer,
    represent,
)
from governance.apis import content_length
from governance.exceptions import ValidationFailed
from governance.lifecycle import READER_ROLES
from governance.roles import require_role
from governance.serializers import CursorParamsSerializer, query_params_check


def _token_header(request: Request, name: str) -> str | None:
    """A header the log keeps (an id the client chose): printable ASCII, or a 400 naming
    it. A control character would be logged as it came, and anything beyond ASCII reaches
    the server as Latin-1 and would be logged garbled."""
    value = request.headers.get(name) or None
    if value is not None and not (value.isascii() and value.isprintable()):
        raise ValidationFailed(
            f"The {name} header holds a character other than printable ASCII.",
            details={name: ["printable ASCII characters only"]},
        )
    return value


class DecisionCursor(Cursor):
    ordering = "-seq"
    page_size = 50
    max_page_size = 500


@extend_schema(tags=["decisions"])
class DeploymentDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="deployment_retrieve",
        summary="What a client needs to call a deployment: feature schema and action catalog",
        responses=DeploymentSerializer,
    )
    def get(self, request: Request, name: str) -> Response:
        require_role(request.user, READER_ROLES, action="read deployments")
        version = runtime.active_deployment(name)
        champion = runtime.arm_runtime(CHAMPION, version.content)
        function = champion.function
        challengers = version.content.get("challengers", [])
        arms = [{"arm": CHAMPION, "share": None}] + [
            {"arm": a["arm"], "share": a["share"]} for a in challengers
        ]
        # A client cannot know its customer's arm in advance: it sends what any arm needs.
        features = runtime.deployment_features(version)
        data = {
            "name": name,
            "version": version.number,
            "content_hash": version.content_hash,
            "strategy": version.content["strategy"],
            "constraint_set": version.content["constraint_set"],
            "arms": arms,
            "features": list(features.values()),
            "actions": [
                {"key": key, "label": label, "attributes": function.action_attributes(i)}
                for i, (key, label) in enumerate(
                    zip(function.action_ids, function.action_labels, strict=True)
                )
            ],
        }
        return Response(DeploymentSerializer(data).data)


@extend_schema(tags=["decisions"])
class DecisionListApi(CSVErrorsAsJSON, APIView):
    pagination_class = DecisionCursor
    permission_classes = [permissions.IsAuthenticated]

    def get_renderers(self) -> list[Any]:
        # The CSV export is for reads only; deciding keeps plain JSON negotiation.
        if self.request is not None and self.request.method == "GET":
            return [renderers.JSONRenderer(), CSVRenderer()]
        return super().get_renderers()

    @extend_schema(
        operation_id="decision_create",
        summary="Decide for one customer (logged before the answer)",
        description=(
            "201 with the decision; with an `Idempotency-Key` header a repeat returns the "
            "same decision with 200 and logs nothing. 400 field errors for bad features, "
            "404 for an unknown or inactive deployment, 503 `decision_log_unavailable` when "
            "the log cannot be written and `deployment_unavailable` when a model file the "
            "deployment needs is missing or altered (no decision is made either way)."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "maxLength": 200},
                OpenApiParameter.HEADER,
                required=False,
                description="printable ASCII; the same key again returns the same decision",
            ),
            OpenApiParameter(
                "X-Request-ID",
                {"type": "string", "maxLength": 100},
                OpenApiParameter.HEADER,
                required=False,
                description="printable ASCII, logged with the decision (a new id if absent)",
            ),
        ],
        request=DecisionRequestSerializer,
        responses={
            201: DecisionSerializer,
            200: DecisionSerializer,
            409: conflict("the Idempotency-Key was used for a different request"),
            422: unprocessable("no action is eligible and the strategy allows no default"),
        },
    )
    def post(self, request: Request) -> Response:
        started = time.perf_counter()
        if content_length(request) > settings.DECISION_MAX_BODY_BYTES:
            raise ValidationFailed(
                f"The request body is larger than {settings.DECISION_MAX_BODY_BYTES} bytes.",
                code="body_too_large",
                details={"body": [f"at most {settings.DECISION_MAX_BODY_BYTES} bytes"]},
            )
        form = DecisionRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        key = _token_header(request, "Idempotency-Key")
        request_id = _token_header(request, "X-Request-ID")
        outcome = services.decision_make(
            actor=request.user,
            deployment=data["deployment"],
            customer_id=data["customer_id"],
            features=data["features"],
            channel=data["channel"],
            idempotency_key=key,
            request_id=request_id,
        )
        decision = outcome.decision
        DECISIONS.labels(
            decision.deployment_name, decision.arm, "created" if outcome.created else "repeated"
        ).inc()
        DECISION_SECONDS.labels(decision.deployment_name).observe(time.perf_counter() - started)
        return Response(
            represent(DecisionSerializer, decision), status=201 if outcome.created else 200
        )

    @extend_schema(
        operation_id="decision_list",
        summary="Logged decisions, newest first (cursor pagination; CSV)",
        description=(
            "JSON pages, newest first. `?format=csv` (or `Accept: text/csv`) streams every "
            "decision the filters select instead, oldest first: id, seq, time, customer, "
            "deployment, the deployment, strategy and constraint-set versions, arm, run, "
            "channel, action, value, up to four reason codes in rank order, the action's "
            "attributes and the features (JSON objects), and the content hash."
        ),
        parameters=[DecisionFilterSerializer],
        responses={
            200: OpenApiResponse(
                DecisionSerializer(many=True), description="a page, or the CSV export"
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV export"),
        },
    )
    def get(self, request: Request) -> Any:
        services.require_reader(request.user)
        filters = DecisionFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        decisions = selectors.decision_list(
            actor=request.user,
            customer_id=data.get("customer_id"),
            deployment=data.get("deployment"),
            since=data.get("since"),
            until=data.get("until"),
        )
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(
                log_csv_rows(decisions), content_type="text/csv; charset=utf-8"
            )
            name = log_csv_filename(
                deployment=data.get("deployment"),
                customer_id=data.get("customer_id"),
                since=data.get("since"),
                until=data.get("until"),
            )
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(decisions, request, view=self)
        return paginator.get_paginated_response(DecisionSerializer(page, many=True).data)


@extend_schema(tags=["decisions"])
class DecisionDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="decision_retrieve",
        summary="One logged decision with everything recorded about it",
        responses=DecisionDetailSerializer,
    )
    def get(self, request: Request, decision_id: str) -> Response:
        decision = selectors.decision_get(actor=request.user, decision_id=decision_id)
        return Response(represent(DecisionDetailSerializer, decision))


@extend_schema(tags=["decisions"])
class DecisionReplayApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="decision_replay",
        summary="Recompute a decision from its logged inputs and versions",
        request=None,
        responses={
            200: ReplaySerializer,
            409: conflict(
                "artifact_tampered: a model file the decision used no longer matches the "
                "hash sealed when it was approved"
            ),
        },
    )
    def post(self, request: Request, decision_id: str) -> Response:
        decision = selectors.decision_get(actor=request.user, decision_id=decision_id)
        replay = services.decision_replay(actor=request.user, decision=decision)
        return Response(
            ReplaySerializer({"matches": replay.matches, "differences": replay.differences}).data
        )


class VerificationCursor(Cursor):
    ordering = ("-started_at", "-id")
    page_size = 20
    max_page_size = 200


@extend_schema(tags=["decisions"])
class LogVerificationListApi(APIView):
    pagination_class = VerificationCursor
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="decision_log_verification_list",
        summary="Checks of the whole decision log, newest first (cursor pagination)",
        description=(
            "Each check beat's daily task, `manage.py verify_decisions` or a request here "
            "made: when, what it covered and, when the log did not verify, the first bad "
            "block and decision and every problem. Auditors, checkers and admins."
        ),
        responses=LogVerificationSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query_params_check(request, CursorParamsSerializer)
        checks = selectors.log_verification_list(actor=request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(checks, request, view=self)
        return paginator.get_paginated_response(LogVerificationSerializer(page, many=True).data)

    @extend_schema(
        operation_id="decision_log_verify",
        summary="Check the whole decision log now",
        description=(
            "Recomputes every decision's hash, every block's digest and the block chain. "
            "With a broker the check is queued (about 0.1 ms a decision) and the answer is "
            "202; its result is listed here when a worker is done. Without one it runs at "
            "once and the answer is 201 with the result. 503 `task_queue_unavailable` when "
            "the broker does not take it."
        ),
        request=None,
        responses={201: LogVerificationSerializer, 202: VerificationQueuedSerializer},
    )
    def post(self, request: Request) -> Response:
        record = services.decision_log_verify_request(
            actor=request.user, source=LogVerification.Source.API
        )
        if record is None:
            queued = {"queued": True, "detail": "The check is queued; list the checks later."}
            return Response(VerificationQueuedSerializer(queued).data, status=202)
        return Response(LogVerificationSerializer(record).data, status=201)


class ReplayCheckCursor(Cursor):
    ordering = ("-requested_at", "-id")
    page_size = 20
    max_page_size = 200


@extend_schema(tags=["decisions"])
class ReplayCheckListApi(APIView):
    pagination_class = ReplayCheckCursor
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="decision_replay_check_list",
        summary="Replays of random samples of the decision log, newest first (cursor pagination)",
        responses=ReplayCheckSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        checks = selectors.replay_check_list(actor=request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(checks, request, view=self)
        return paginator.get_paginated_response(ReplayCheckSerializer(page, many=True).data)

    @extend_schema(
        operation_id="decision_replay_check_create",
        summary="Replay a random sample of the logged decisions",
        description=(
            "Draws `size` decisions (at most 10,000) uniformly at random from those the "
            "filters select, with `seed` (given, or a new one, returned), and recomputes "
            "each from its logged inputs, versions and prices. A worker runs it (about "
            "500-900 decisions a second): the answer is 202 with the check, whose `status` "
            "goes queued, running, done (or failed); read it again at its URL. Without a "
            "broker it runs at once and the answer holds the result. The same seed over "
            "the same filters draws the same decisions again. Auditors, checkers and "
            "admins. 400 for filters that select no decision; 503 "
            "`task_queue_unavailable` when the broker does not take it."
        ),
        request=ReplayCheckRequestSerializer,
        responses={202: ReplayCheckSerializer},
    )
    def post(self, request: Request) -> Response:
        asked = ReplayCheckRequestSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        check = replays.replay_check_request(actor=request.user, **asked.validated_data)
        return Response(ReplayCheckSerializer(check).data, status=202)


@extend_schema(tags=["decisions"])
class ReplayCheckDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="decision_replay_check_retrieve",
        summary="One replay of a random sample: its progress, counts and findings",
        responses=ReplayCheckSerializer,
    )
    def get(self, request: Request, check_id: int) -> Response:
        check = selectors.replay_check_get(actor=request.user, check_id=check_id)
        return Response(ReplayCheckSerializer(check).data)
