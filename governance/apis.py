"""REST endpoints of the registry and the audit trail. Thin: parse, call a service, serialize."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, renderers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from arbiter.csv_export import CSVErrorsAsJSON, CSVRenderer
from arbiter.openapi import conflict, unprocessable
from arbiter.pagination import Pages
from arbiter.parsers import JSONParser
from governance import selectors, services
from governance.audit import audit_chain_verify
from governance.exceptions import ValidationFailed
from governance.exports import audit_csv_filename, audit_csv_rows
from governance.kinds import kind_get_by_slug, kinds_all
from governance.lifecycle import (
    AUDIT_READER_ROLES,
    AUTHOR_ROLES,
    READER_ROLES,
    REGISTRY_READER_ROLES,
    Move,
)
from governance.roles import require_role, roles_of
from governance.serializers import (
    AuditEventSerializer,
    AuditFilterSerializer,
    ChainReportSerializer,
    ItemSerializer,
    MoveSerializer,
    PagesParamsSerializer,
    VersionCreateSerializer,
    VersionDetailSerializer,
    VersionSummarySerializer,
    VersionUpdateSerializer,
    VersionUploadSerializer,
    query_params_check,
)

KIND_PARAMETER = OpenApiParameter(
    "kind",
    str,
    OpenApiParameter.PATH,
    # Every registered kind (the monitoring app adds KPI targets, alert rules and report
    # recipients): the URLs are loaded after every app registered its kinds.
    enum=[kind.slug for kind in kinds_all()],
)


class HasRole(permissions.BasePermission):
    """Reads need one of the view's ``read_roles``. Writes need one of its ``write_roles``
    where it names them, checked before the body is read, so that a role that may not
    upload cannot make the server take in a large file; the services then check exactly
    (which kind, whose run)."""

    message = "Your roles do not allow this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        write_roles = getattr(view, "write_roles", None)
        if request.method not in permissions.SAFE_METHODS and write_roles is not None:
            action = getattr(view, "write_action", "do this")
            require_role(request.user, write_roles, action=action)  # 403 naming the roles
            return True
        return bool(roles_of(request.user) & getattr(view, "read_roles", READER_ROLES))


def content_length(request: Any) -> int:
    """The request's Content-Length; 0 when absent or not a number (as Django reads it)."""
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def refuse_body_over(request: Request, limit: int) -> None:
    """400 ``body_too_large`` before reading a body its Content-Length says is over
    ``limit`` bytes (an upload's limit, with room for the other form fields)."""
    if content_length(request) > limit:
        raise ValidationFailed(
            f"The request body is larger than {limit} bytes.",
            code="body_too_large",
            details={"body": [f"at most {limit} bytes"]},
        )


FORM_FIELDS_BYTES = 1024 * 1024  # the content JSON and other fields beside an upload


class RegistryApi(APIView):
    permission_classes = [permissions.IsAuthenticated, HasRole]
    read_roles = REGISTRY_READER_ROLES


@extend_schema(tags=["registry"], parameters=[KIND_PARAMETER])
class ItemListApi(RegistryApi):
    pagination_class = Pages

    @extend_schema(
        operation_id="registry_items_list",
        summary="Items of one kind with their versions",
        responses=ItemSerializer(many=True),
    )
    def get(self, request: Request, kind: str) -> Response:
        query_params_check(request, PagesParamsSerializer)
        items = selectors.item_list(kind=kind_get_by_slug(kind))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(ItemSerializer(page, many=True).data)


@extend_schema(tags=["registry"], parameters=[KIND_PARAMETER])
class VersionListApi(RegistryApi):
    parser_classes = [JSONParser, MultiPartParser]
    write_roles = AUTHOR_ROLES
    write_action = "write drafts"

    @extend_schema(
        operation_id="registry_versions_list",
        summary="Versions of an item",
        responses=VersionSummarySerializer(many=True),
    )
    def get(self, request: Request, kind: str, name: str) -> Response:
        item = selectors.item_get(kind=kind_get_by_slug(kind), name=name)
        versions = selectors.version_list(item=item)
        return Response(VersionSummarySerializer(versions, many=True).data)

    @extend_schema(
        operation_id="registry_version_create",
        summary="Create a draft version (models: multipart with the skops file)",
        request={
            "application/json": VersionCreateSerializer,
            "multipart/form-data": VersionUploadSerializer,
        },
        responses={
            201: VersionDetailSerializer,
            409: conflict("a version of the item is already under review"),
        },
    )
    def post(self, request: Request, kind: str, name: str) -> Response:
        spec = kind_get_by_slug(kind)
        refuse_body_over(request, settings.MODEL_ARTIFACT_MAX_BYTES + FORM_FIELDS_BYTES)
        if spec.has_artifact and not request.content_type.startswith("multipart/form-data"):
            # Read as JSON, the upload's form would say "content: Not a valid string".
            raise ValidationFailed(
                f"A {spec.label} version comes with its file: send multipart/form-data with "
                "artifact (the file), content (the JSON as text) and change_note.",
                details={"artifact": ["this field is required (multipart/form-data)"]},
            )
        if spec.has_artifact or "artifact" in request.FILES:
            form = VersionUploadSerializer(data=request.data)
        else:
            form = VersionCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        version = services.version_create(
            actor=request.user,
            kind=spec.key,
            name=name,
            content=data["content"],
            artifact=data["artifact"].file if "artifact" in data else None,
            change_note=data.get("change_note", ""),
        )
        version = selectors.version_get(kind=spec, name=name, number=version.number)
        return Response(VersionDetailSerializer(version).data, status=201)


@extend_schema(tags=["registry"], parameters=[KIND_PARAMETER])
class VersionDetailApi(RegistryApi):
    @extend_schema(
        operation_id="registry_version_retrieve",
        summary="One version with its content",
        responses=VersionDetailSerializer,
    )
    def get(self, request: Request, kind: str, name: str, number: int) -> Response:
        version = selectors.version_get(kind=kind_get_by_slug(kind), name=name, number=number)
        return Response(VersionDetailSerializer(version).data)

    @extend_schema(
        operation_id="registry_version_update",
        summary="Replace the content of a draft (409 once submitted)",
        request=VersionUpdateSerializer,
        responses={
            200: VersionDetailSerializer,
            409: conflict("the version is past draft, so its content is locked"),
        },
    )
    def patch(self, request: Request, kind: str, name: str, number: int) -> Response:
        spec = kind_get_by_slug(kind)
        version = selectors.version_get(kind=spec, name=name, number=number)
        form = VersionUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.version_update(
            actor=request.user,
            version=version,
            content=form.validated_data["content"],
            change_note=form.validated_data.get("change_note"),
        )
        version = selectors.version_get(kind=spec, name=name, number=number)
        return Response(VersionDetailSerializer(version).data)


@extend_schema(
    tags=["registry"],
    parameters=[
        KIND_PARAMETER,
        OpenApiParameter("move", str, OpenApiParameter.PATH, enum=list(Move.values)),
    ],
)
class VersionMoveApi(RegistryApi):
    @extend_schema(
        operation_id="registry_version_move",
        summary="Move a version through its lifecycle (reject needs a comment)",
        description=(
            "submit (maker), approve / reject (checker, never the version's author or "
            "submitter: 403 four_eyes), activate / retire (checker or admin). A move the "
            "lifecycle does not allow from the current status answers 409."
        ),
        request=MoveSerializer,
        responses={
            200: VersionDetailSerializer,
            409: conflict("no such move from the version's status, or another under review"),
            422: unprocessable(
                "submit: a version it uses is a draft, rejected, retired or missing "
                "(dependency_not_submitted); approve / activate: a version it uses is not "
                "approved (dependency_not_approved); submit / approve / activate: a KPI "
                "target set or alert rule set names no deployment (unknown_deployment), or "
                "an alert rule watches a model the deployment does not decide with "
                "(unknown_model), or a PSI rule a feature the model lacks (unknown_feature) "
                "or one the strategy sets (feature_set_by_strategy); retire: an active "
                "deployment decides with it "
                "(version_in_use)"
            ),
        },
    )
    def post(self, request: Request, kind: str, name: str, number: int, move: str) -> Response:
        spec = kind_get_by_slug(kind)
        version = selectors.version_get(kind=spec, name=name, number=number)
        form = MoveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.version_move(
            actor=request.user, version=version, move=move, comment=form.validated_data["comment"]
        )
        version = selectors.version_get(kind=spec, name=name, number=number)
        return Response(VersionDetailSerializer(version).data)


@extend_schema(tags=["audit"])
class AuditEventListApi(CSVErrorsAsJSON, APIView):
    pagination_class = Pages
    permission_classes = [permissions.IsAuthenticated, HasRole]
    read_roles = AUDIT_READER_ROLES
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    @extend_schema(
        operation_id="audit_events_list",
        summary="Audit events, newest first (CSV)",
        description=(
            "JSON pages, newest first. `?format=csv` (or `Accept: text/csv`) streams every "
            "event the filters select instead, oldest first, with every field its hash "
            "covers, the previous event's hash and its own, so that the file can be checked "
            "without Arbiter (docs/registry.md, *Audit trail export*); `limit` and "
            "`offset` do not apply to it."
        ),
        parameters=[AuditFilterSerializer],
        responses={
            200: OpenApiResponse(
                AuditEventSerializer(many=True), description="a page, or the CSV export"
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV export"),
        },
    )
    def get(self, request: Request) -> Any:
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data: dict[str, Any] = filters.validated_data
        chosen = {
            "kind": data.get("kind"),
            "item_name": data.get("item"),
            "actor": data.get("actor"),
            "action": data.get("action"),
            "since": data.get("since"),
            "until": data.get("until"),
        }
        events = selectors.audit_event_list(reader=request.user, **chosen)
        if request.accepted_renderer.format == "csv":
            response = StreamingHttpResponse(
                audit_csv_rows(events), content_type="text/csv; charset=utf-8"
            )
            name = audit_csv_filename(**chosen)
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)


@extend_schema(tags=["audit"])
class AuditVerifyApi(APIView):
    permission_classes = [permissions.IsAuthenticated, HasRole]
    read_roles = AUDIT_READER_ROLES

    @extend_schema(
        operation_id="audit_verify",
        summary="Verify the audit chain and sealed versions",
        responses=ChainReportSerializer,
    )
    def get(self, request: Request) -> Response:
        report = audit_chain_verify()
        return Response(
            ChainReportSerializer(
                {
                    "ok": report.ok,
                    "events": report.events,
                    "head_seq": report.head_seq,
                    "head_hash": report.head_hash,
                    "versions_checked": report.versions_checked,
                    "first_bad_event": report.first_bad_event,
                    "problems": report.problems,
                }
            ).data
        )
