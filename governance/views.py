"""The reviewer pages: dashboard, review queue, registry, version page, drafts, audit trail.

Thin like the REST views: read with selectors, write with the services (so four eyes, the
lifecycle table and the audit chain hold exactly as over the API), and turn a service's
``DomainError`` into a message on the page. Forms post and redirect (post/redirect/get),
except a draft the service refused, which is shown again with its errors and the text as
typed. No page needs JavaScript.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.password_validation import password_validators_help_texts
from django.contrib.auth.signals import user_login_failed
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.text import capfirst
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance import selectors, services
from governance.audit import audit_chain_verify
from governance.content_diff import content_changes
from governance.exceptions import DomainError, NotFound, ValidationFailed
from governance.forms import (
    AuditFilterForm,
    DraftForm,
    MoveForm,
    NewItemForm,
    PasswordChangeForm,
    pretty_json,
)
from governance.kinds import Kind, kind_get, kind_get_by_slug, kinds_all
from governance.lifecycle import AUDIT_READER_ROLES, AUTHOR_ROLES, TRANSITIONS, Move, moves_open_to
from governance.models import AuditAction, Version, VersionStatus
from governance.presentation import content_sections
from governance.roles import Role, has_role, roles_of
from governance.sign_in import client_address, lockout_response
from governance.ui_access import UI_ROLES, ui_page
from governance.ui_extensions import dashboard_panels_for, version_panels_for

DASHBOARD_OLDEST = 5
AUDIT_PAGE_SIZE = 100


def version_url(version: Version) -> str:
    return reverse(
        "ui:version-detail",
        kwargs={
            "slug": kind_get(version.item.kind).slug,
            "name": version.item.name,
            "number": version.number,
        },
    )


def _age(when: Any) -> str:
    return timesince(when, timezone.now(), depth=1) if when else ""


def _queue_rows(versions: list[Version], user: Any) -> list[dict[str, Any]]:
    rows = []
    for version in versions:
        rows.append(
            {
                "version": version,
                "kind": kind_get(version.item.kind),
                "url": version_url(version),
                "age": _age(version.submitted_at),
                "yours": version.author_id == user.pk
                or version.submitted_by_id == user.pk
                or any(c.pk == user.pk for c in version.contributors.all()),
            }
        )
    return rows


@require_GET
@ui_page(roles=UI_ROLES, action="use the reviewer pages")
def dashboard(request: HttpRequest) -> HttpResponse:
    queue = selectors.version_review_queue().prefetch_related("contributors")
    drafts, reviewed = [], []
    if has_role(request.user, Role.MAKER):
        drafts = [
            {"version": v, "kind": kind_get(v.item.kind), "url": version_url(v)}
            for v in selectors.version_drafts_of(user=request.user)
        ]
        reviewed = [
            {"version": v, "kind": kind_get(v.item.kind), "url": version_url(v)}
            for v in selectors.version_reviews_of(user=request.user)[:DASHBOARD_OLDEST]
        ]
    return render(
        request,
        "governance/dashboard.html",
        {
            "pending_count": queue.count(),
            "oldest": _queue_rows(list(queue[:DASHBOARD_OLDEST]), request.user),
            "drafts": drafts,
            "reviewed": reviewed,
            "panels": dashboard_panels_for(request),
            "can_review": has_role(request.user, *TRANSITIONS[Move.APPROVE].roles),
            "can_draft": has_role(request.user, *AUTHOR_ROLES),
            "can_audit": has_role(request.user, *AUDIT_READER_ROLES),
            "can_administer": has_role(request.user, Role.ADMIN),
            "kinds": kinds_all(),
        },
    )


@require_GET
@ui_page(roles=UI_ROLES, action="see the review queue")
def review_queue(request: HttpRequest) -> HttpResponse:
    queue = selectors.version_review_queue().prefetch_related("contributors")
    return render(
        request,
        "governance/review_queue.html",
        {
            "rows": _queue_rows(list(queue), request.user),
            "can_review": has_role(request.user, *TRANSITIONS[Move.APPROVE].roles),
        },
    )


@require_GET
@ui_page(roles=UI_ROLES, action="browse the registry")
def registry_index(request: HttpRequest) -> HttpResponse:
    return render(request, "governance/registry_index.html", {"kinds": kinds_all()})


def _can_draft(user: Any, kind: Kind) -> bool:
    # Files (model artifacts) are uploaded through the API or the CLI, not typed here.
    return has_role(user, *AUTHOR_ROLES) and not kind.has_artifact


@require_GET
@ui_page(roles=UI_ROLES, action="browse the registry")
def registry_browse(request: HttpRequest, slug: str) -> HttpResponse:
    kind = kind_get_by_slug(slug)
    items = []
    for item in selectors.item_list(kind=kind):
        versions = list(item.versions.all())
        items.append(
            {
                "item": item,
                "versions": [{"version": v, "url": version_url(v)} for v in versions],
                "latest": versions[-1] if versions else None,
            }
        )
    return render(
        request,
        "governance/registry_browse.html",
        {"kind": kind, "items": items, "can_draft": _can_draft(request.user, kind)},
    )


def move_buttons_for(user: Any, version: Version) -> dict[str, Any]:
    """The moves the version page offers ``user`` (used by other apps' version panels)."""
    return _move_buttons(user, version)


def _move_buttons(user: Any, version: Version) -> dict[str, Any]:
    """What the version page offers this user: review (approve/reject), other moves, and
    the four-eyes note when the user holds the role but wrote or submitted the version."""
    moves = moves_open_to(roles_of(user), version.status)
    review = [m for m in moves if TRANSITIONS[m].four_eyes]
    conflict = selectors.four_eyes_conflict(user=user, version=version) if review else None
    others = [m for m in moves if not TRANSITIONS[m].four_eyes]
    retire_warning = ""
    if Move.RETIRE in others:
        # Its own form: what stops (or what cannot come back), a reason required, and a
        # confirmation. Retired is final.
        others.remove(Move.RETIRE)
        kind = kind_get(version.item.kind)
        retire_warning = (
            kind.retire_active_warning(version.item.name)
            if version.status == VersionStatus.ACTIVE
            else kind.retire_approved_warning(version.item.name, version.number)
        )
    activate_warning = _activate_warning(version) if Move.ACTIVATE in others else ""
    if activate_warning:
        # Activating retires the active version for good (and, for a deployment, switches
        # live decisions at once): its own form, saying so, with a tick to confirm.
        others.remove(Move.ACTIVATE)
    return {
        "review_moves": [] if conflict else review,
        "four_eyes": conflict,
        "other_moves": others,
        "retire_warning": retire_warning,
        "activate_warning": activate_warning,
    }


def _activate_warning(version: Version) -> str:
    """What activating ``version`` would do to the item's active version, in words; empty
    when no other version is active (nothing is retired)."""
    active = selectors.version_active_number(version=version)
    if active is None:
        return ""
    return kind_get(version.item.kind).activate_replacing_warning(
        version.item.name, version.number, active
    )


@require_GET
@ui_page(roles=UI_ROLES, action="read the registry")
def version_detail(request: HttpRequest, slug: str, name: str, number: int) -> HttpResponse:
    kind = kind_get_by_slug(slug)
    version = selectors.version_get(kind=kind, name=name, number=number)
    baseline = selectors.version_diff_base(version=version)
    base = baseline.version if baseline is not None else None
    changes = content_changes(kind, base.content, version.content) if base is not None else None
    siblings = [
        {"version": v, "url": version_url(v)} for v in selectors.version_list(item=version.item)
    ]
    typed = typed_comment_pop(request, version)
    buttons = _move_buttons(request.user, version)
    retire_typed = typed.get("move") == Move.RETIRE and bool(buttons["retire_warning"])
    activate_typed = typed.get("move") == Move.ACTIVATE and bool(buttons["activate_warning"])
    return render(
        request,
        "governance/version_detail.html",
        {
            "kind": kind,
            "version": version,
            "contributors": list(version.contributors.all()),
            "sections": content_sections(kind, version.content),
            "base": base,
            "baseline": baseline,
            "base_url": version_url(base) if base is not None else "",
            "changes": changes,
            "trail": list(selectors.version_audit_trail(version=version)),
            "siblings": siblings,
            "raw_json": pretty_json(version.content),
            "can_edit": version.status == VersionStatus.DRAFT and _can_draft(request.user, kind),
            "can_copy": _can_draft(request.user, kind),
            "panels": version_panels_for(request, version),
            "typed_comment": "" if retire_typed or activate_typed else typed.get("comment", ""),
            "typed_retire_comment": typed.get("comment", "") if retire_typed else "",
            "typed_activate_comment": typed.get("comment", "") if activate_typed else "",
            **buttons,
        },
    )


def _typed_comment_key(version: Version) -> str:
    return f"move-comment-{version.pk}"


def _keep_typed_comment(request: HttpRequest, version: Version) -> None:
    """A refused move's comment, for the version page to give back: a checker's reason
    is often paragraphs, and the refusal (four eyes, a dependency) is no reason to lose it."""
    comment = request.POST.get("comment", "")
    if comment.strip():
        request.session[_typed_comment_key(version)] = {
            "move": request.POST.get("move", "")[:20],
            "comment": comment[:20_000],
        }


@require_POST
@ui_page(roles=UI_ROLES, action="move versions through their lifecycle")
def version_move(request: HttpRequest, slug: str, name: str, number: int) -> HttpResponse:
    kind = kind_get_by_slug(slug)
    version = selectors.version_get(kind=kind, name=name, number=number)
    here = version_url(version)
    # A version reviewed on another version's page (submitted together) returns there.
    back = request.POST.get("next", "")
    if not back or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = here
    # On another version's page, a refusal says which version it is about.
    about = "" if back == here else f"{capfirst(kind.label)} {name} v{number}: "
    form = MoveForm(request.POST)
    if not form.is_valid():
        _keep_typed_comment(request, version)
        if "move" in form.errors:
            messages.error(request, f"{about}Choose one of the buttons to move this version.")
        else:  # the comment: too long, or a character a form cannot hold
            problems = " ".join(form.errors.get("comment", []))
            messages.error(request, f"{about}The comment was not accepted: {problems}")
        return redirect(back)
    move = Move(form.cleaned_data["move"])
    if move == Move.ACTIVATE and request.POST.get("confirm") != "yes":
        # A safeguard of the page, not a rule of the service: the API's explicit POST to
        # the activate move is its own confirmation. Asked again here, not from what the
        # page showed: another version may have gone active since.
        warning = _activate_warning(version)
        if warning:
            _keep_typed_comment(request, version)
            messages.error(
                request,
                f"{about}Nothing was activated: tick “I understand the active version will "
                f"be retired” to confirm. {warning}",
            )
            return redirect(back)
    try:
        moved = services.version_move(
            actor=request.user, version=version, move=move, comment=form.cleaned_data["comment"]
        )
    except DomainError as exc:
        _keep_typed_comment(request, version)
        messages.error(request, f"{about}{exc.message}")
    else:
        messages.success(
            request,
            f"{move.label}: {kind.label} {name} v{number} is now "
            f"{VersionStatus(moved.status).label.lower()}.",
        )
    return redirect(back)


def typed_comment_pop(request: HttpRequest, version: Version) -> dict[str, str]:
    """The move and comment of a refused move on ``version`` (once), for the form that
    offers its moves to show the comment again; ``{}`` when there is none."""
    return request.session.pop(_typed_comment_key(version), None) or {}


def _field_errors(details: Any) -> list[tuple[str, str]]:
    """A ValidationFailed's details as (field path, message) pairs, in the service's order."""
    if isinstance(details, dict):
        pairs = []
        for path, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                pairs.append((str(path), str(problem)))
        return pairs
    if isinstance(details, list):
        return [("content", str(problem)) for problem in details]
    return []


def _draft_page(
    request: HttpRequest,
    *,
    kind: Kind,
    name: str,
    form: DraftForm,
    heading: str,
    action_url: str,
    cancel_url: str,
    source: Version | None = None,
    source_why: str = "",
    error: DomainError | None = None,
    new_item: bool = False,
) -> HttpResponse:
    named = isinstance(error, ValidationFailed) or getattr(error, "code", "") == "item_exists"
    field_errors = _field_errors(error.details) if named else []
    for field in ("name", "content"):
        field_errors += [(field, str(e)) for e in form.errors.get(field, [])]
    failed = bool(error) or bool(form.errors)
    # After a refusal the heading says what happened; the list below says each problem once.
    if not failed:
        pass
    elif isinstance(error, ValidationFailed) and field_errors:
        count = len(field_errors)
        heading = (
            f"The {kind.item_noun} was not saved: "
            f"{'one problem' if count == 1 else f'{count} problems'} to correct below."
        )
    elif error is not None:
        heading = error.message
    elif form.errors.get("content"):
        heading = "The content could not be read."
    else:
        heading = f"The {kind.item_noun} was not saved: correct the name."
    return render(
        request,
        "governance/draft_form.html",
        {
            "kind": kind,
            "name": name,
            "form": form,
            "heading": heading,
            "action_url": action_url,
            "cancel_url": cancel_url,
            "source": source,
            "source_url": version_url(source) if source else "",
            "source_why": source_why,
            "source_note": _SOURCE_NOTES.get(source.status, "") if source else "",
            "error": error,
            "field_errors": field_errors,
            "error_heading": heading if failed else "",
            "name_invalid": any(path == "name" for path, _ in field_errors),
            "content_invalid": any(path != "name" for path, _ in field_errors)
            or (bool(error) and not field_errors),
            "new_item": new_item,
        },
        status=(error.status if error is not None else 400) if failed else 200,
    )


# Content no checker has approved: a draft started from it says so, since its diff will
# be read against what runs, not against this.
_SOURCE_NOTES = {
    VersionStatus.REJECTED: "A checker rejected this content; it is not what runs.",
    VersionStatus.DRAFT: "No checker has reviewed this content; it is not what runs.",
    VersionStatus.SUBMITTED: "This content is still in review; it is not what runs.",
}


def _draft_start(item: Any) -> tuple[Version | None, str]:
    start = selectors.version_start_point(item=item)
    return (start.version, start.why) if start is not None else (None, "")


def _draft_kind(slug: str) -> Kind:
    kind = kind_get_by_slug(slug)
    if kind.has_artifact:
        raise NotFound(
            f"{kind.label.capitalize()} versions carry a file and are registered through the "
            "API or the command line, not typed here."
        )
    return kind


def _draft_saved(request: HttpRequest, version: Version, saved: bool) -> HttpResponse:
    """To the draft, saying whether it was saved now or is the same as one saved before
    (the form sent again: the back button, a reload, a double click)."""
    if saved:
        if version.number == 1:
            text = f"{capfirst(kind_get(version.item.kind).item_noun)} {version.item.name} "
            text += "created as draft v1."
        else:
            text = f"Draft v{version.number} created."
        messages.success(request, f"{text} Submit it for review when it is ready.")
    else:
        messages.info(
            request,
            f"Nothing new was saved: this is the same as your draft v{version.number}, "
            "saved before. Here it is.",
        )
    return redirect(version_url(version))


@require_http_methods(["GET", "POST"])
@ui_page(roles=AUTHOR_ROLES, action="write drafts")
def item_create(request: HttpRequest, slug: str) -> HttpResponse:
    """A new item of a kind, named here, with its first draft. The content starts from the
    kind's example, or with ``?from=NAME`` from another item of the kind (a new strategy
    written from an existing one): from what decides live for it, as a new draft would
    (``selectors.version_start_point``), never its rejected or unreviewed newest."""
    kind = _draft_kind(slug)
    source, source_why = None, ""
    from_name = request.GET.get("from", "")
    if from_name:
        source, source_why = _draft_start(selectors.item_get(kind=kind, name=from_name))
    elif kind.example is None:
        # No example that could stand alone (a strategy names its models, a deployment
        # its versions): start from the newest active one of the kind, if any.
        source = (
            Version.objects.select_related("item")
            .filter(item__kind=kind.key, status=VersionStatus.ACTIVE)
            .order_by("-id")
            .first()
        )
        source_why = f"the newest active {kind.item_noun}"
    page = {
        "kind": kind,
        "name": "",
        "heading": f"New {kind.item_noun}",
        "action_url": request.get_full_path(),
        "cancel_url": reverse("ui:registry", args=[slug]),
        "source": source,
        "source_why": source_why,
        "new_item": True,
    }
    if request.method == "GET":
        example = kind.example() if kind.example else {}
        content = source.content if source is not None else example
        form = NewItemForm(initial={"content": pretty_json(content)})
        return _draft_page(request, form=form, **page)
    form = NewItemForm(request.POST)
    if not form.is_valid():
        return _draft_page(request, form=form, **page)
    try:
        version, saved = services.version_draft_save(
            actor=request.user,
            kind=kind.key,
            name=form.cleaned_data["name"],
            content=form.cleaned_data["content"],
            change_note=form.cleaned_data["change_note"],
            new_item=True,
        )
    except DomainError as exc:
        return _draft_page(request, form=form, error=exc, **page)
    return _draft_saved(request, version, saved)


@require_http_methods(["GET", "POST"])
@ui_page(roles=AUTHOR_ROLES, action="write drafts")
def draft_create(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """A new draft of an existing item, starting from what decides live for it
    (``selectors.version_start_point``), or from version N with ``?from=N``, whatever its
    status (the page states it)."""
    kind = _draft_kind(slug)
    item = selectors.item_get(kind=kind, name=name)
    source_number = request.GET.get("from", "")
    if source_number.isascii() and source_number.isdigit():
        source = selectors.version_get(kind=kind, name=name, number=int(source_number))
        source_why = "the version asked for"
    else:
        source, source_why = _draft_start(item)
    action_url = request.get_full_path()
    cancel_url = version_url(source) if source else reverse("ui:registry", args=[slug])
    heading = f"New draft of {kind.label} {name}"
    if request.method == "GET":
        form = DraftForm(initial={"content": pretty_json(source.content) if source else "{}"})
        return _draft_page(
            request,
            kind=kind,
            name=name,
            form=form,
            heading=heading,
            action_url=action_url,
            cancel_url=cancel_url,
            source=source,
            source_why=source_why,
        )
    form = DraftForm(request.POST)
    if form.is_valid():
        try:
            version, saved = services.version_draft_save(
                actor=request.user,
                kind=kind.key,
                name=name,
                content=form.cleaned_data["content"],
                change_note=form.cleaned_data["change_note"],
            )
        except DomainError as exc:
            return _draft_page(
                request,
                kind=kind,
                name=name,
                form=form,
                heading=heading,
                action_url=action_url,
                cancel_url=cancel_url,
                source=source,
                source_why=source_why,
                error=exc,
            )
        return _draft_saved(request, version, saved)
    return _draft_page(
        request,
        kind=kind,
        name=name,
        form=form,
        heading=heading,
        action_url=action_url,
        cancel_url=cancel_url,
        source=source,
        source_why=source_why,
    )


@require_http_methods(["GET", "POST"])
@ui_page(roles=AUTHOR_ROLES, action="write drafts")
def draft_edit(request: HttpRequest, slug: str, name: str, number: int) -> HttpResponse:
    kind = _draft_kind(slug)
    version = selectors.version_get(kind=kind, name=name, number=number)
    if version.is_locked:
        messages.error(
            request,
            f"Version {number} of {name} is {version.status}: its content can no longer "
            "change. Create a new version instead.",
        )
        return redirect(version_url(version))
    page = {
        "kind": kind,
        "name": name,
        "heading": f"Edit draft v{number} of {kind.label} {name}",
        "action_url": request.get_full_path(),
        "cancel_url": version_url(version),
    }
    if request.method == "GET":
        form = DraftForm(
            initial={"content": pretty_json(version.content), "change_note": version.change_note}
        )
        return _draft_page(request, form=form, **page)
    form = DraftForm(request.POST)
    if not form.is_valid():
        return _draft_page(request, form=form, **page)
    try:
        services.version_update(
            actor=request.user,
            version=version,
            content=form.cleaned_data["content"],
            change_note=form.cleaned_data["change_note"],
        )
    except DomainError as exc:
        return _draft_page(request, form=form, error=exc, **page)
    messages.success(request, f"Draft v{number} saved.")
    return redirect(version_url(version))


def _event_rows(events: Any) -> list[dict[str, Any]]:
    rows = []
    for event in events:
        url, slug, kind_label = "", "", event.kind
        if event.kind:
            try:
                kind = kind_get(event.kind)
            except NotFound:
                pass
            else:
                slug, kind_label = kind.slug, kind.label
        if event.kind and event.item_name and event.version_number and slug:
            url = reverse(
                "ui:version-detail",
                kwargs={"slug": slug, "name": event.item_name, "number": event.version_number},
            )
        rows.append(
            {
                "event": event,
                "url": url,
                "kind_label": kind_label,
                "action": AuditAction(event.action).label
                if event.action in AuditAction.values
                else event.action,
            }
        )
    return rows


@require_GET
@ui_page(roles=AUDIT_READER_ROLES, action="read the audit trail")
def audit_trail(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_bound and not form.is_valid():
        # No list and no download until the filter reads right: dropping the filter would
        # show (and offer as CSV) every event as if it were the selection.
        return render(
            request,
            "governance/audit_trail.html",
            {"form": form, "filter_invalid": True, "report": audit_chain_verify(artifacts=False)},
        )
    if form.is_bound:
        since, until = form.time_range()
        filters = {
            "kind": form.cleaned_data["kind"] or None,
            "item_name": form.cleaned_data["item"] or None,
            "actor": form.cleaned_data["actor"] or None,
            "action": form.cleaned_data["action"] or None,
            "since": since,
            "until": until,
        }
    events = selectors.audit_event_list(reader=request.user, **filters)
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "governance/audit_trail.html",
        {
            "form": form,
            "page": page,
            "rows": _event_rows(page.object_list),
            "query": query.urlencode(),
            # Every event and every sealed version's content, on each view; model files
            # (up to MODEL_ARTIFACT_MAX_BYTES each) are re-hashed by the daily check, the
            # API's verify and manage.py verify_audit, not by every page view.
            "report": audit_chain_verify(artifacts=False),
            "csv_url": _audit_csv_url(filters),
        },
    )


def _audit_csv_url(filters: dict[str, Any]) -> str:
    """The API's CSV of every event the page's filters select."""
    names = {"kind": "kind", "item_name": "item", "actor": "actor", "action": "action"}
    params = {names[k]: v for k, v in filters.items() if k in names and v}
    for bound in ("since", "until"):
        if filters.get(bound):
            params[bound] = filters[bound].isoformat()
    return reverse("governance:audit-events") + "?" + urlencode({**params, "format": "csv"})


@require_http_methods(["GET", "POST"])
@ui_page(roles=UI_ROLES, action="change your password")
def password_change(request: HttpRequest) -> HttpResponse:
    """A person changes their own password; this sign-in stays, the others end.

    A wrong current password counts as a failed sign-in (django-axes): after
    ``LOGIN_FAILURE_LIMIT`` of them, from sign-ins or from here, this sign-in ends and the
    user name is locked out from this address, so a session left open cannot be used to
    guess the password.
    """
    from axes.handlers.proxy import AxesProxyHandler

    credentials = {"username": request.user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        logout(request)
        return lockout_response(request, credentials=credentials)
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.password_change(
                user=request.user,
                current_password=form.cleaned_data["current_password"],
                new_password=form.cleaned_data["new_password"],
                address=client_address(request),
            )
        except ValidationFailed as exc:
            for field, problem in _field_errors(exc.details):
                form.add_error(field if field in form.fields else None, problem)
            if "current_password" in (exc.details or {}):
                user_login_failed.send(sender=__name__, credentials=credentials, request=request)
                if getattr(request, "axes_locked_out", False):
                    logout(request)  # AxesMiddleware answers with the lockout page
        else:
            update_session_auth_hash(request, request.user)
            messages.success(
                request,
                "Your password has been changed. Your other sign-ins have ended; API keys "
                "are not affected.",
            )
            return redirect("ui:dashboard")
    return render(
        request,
        "registration/password_change_form.html",
        {"form": form, "rules": password_validators_help_texts()},
        status=400 if form.errors else 200,
    )
