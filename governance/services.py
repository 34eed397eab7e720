"""Writes of governance: drafting versions, moving them through the lifecycle, people and keys.

Every mutation is one function here, called alike by the REST API, the admin, management
commands and tasks, so a rule enforced here holds everywhere. Each locks what it changes
(order: Item, Version, ChainHead), checks the actor's role and the lifecycle table, stamps
who/when/why and writes the audit event in the same transaction.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from governance.artifacts import (
    StagedArtifact,
    artifact_commit,
    artifact_discard,
    artifact_open_verified,
    artifact_stage,
)
from governance.audit import audit_record
from governance.exceptions import (
    Conflict,
    ContentLocked,
    FourEyesViolation,
    NotFound,
    PermissionDenied,
    TransitionNotAllowed,
    ValidationFailed,
)
from governance.hashing import canonical_json, sha256_hex, version_hash
from governance.kinds import Kind, kind_get
from governance.lifecycle import AUTHOR_ROLES, TRANSITIONS, Move
from governance.models import (
    NAME_PATTERN,
    ApiKey,
    AuditAction,
    Item,
    Version,
    VersionStatus,
)
from governance.notifications import password_notice_on_commit, review_notice_on_commit
from governance.roles import (
    KEYLESS_ROLES,
    Role,
    forget_roles,
    require_role,
    roles_of,
    the_roles,
)
from governance.selectors import four_eyes_conflict
from governance.validation import BIDI_CONTROLS, bidi_controls_in

User = get_user_model()

# --- drafting -----------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ValidationFailed(
            f"{name!r} is not a valid name.",
            details={
                "name": [
                    "use 1-100 lower-case letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit"
                ]
            },
        )


def _check_json(content: Any) -> None:
    if not isinstance(content, dict):
        raise ValidationFailed(
            "The content must be a JSON object.", details={"content": ["must be an object"]}
        )
    try:
        text = canonical_json(content)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            "The content is not plain JSON (NaN, infinity or a non-JSON value).",
            details={"content": [str(exc)]},
        ) from exc
    limit = settings.VERSION_CONTENT_MAX_BYTES
    if len(text) > limit:
        raise ValidationFailed(
            f"The content is {len(text):,} bytes as JSON; a version holds at most "
            f"{limit:,} (a reviewer reads it whole).",
            details={"content": [f"larger than {limit:,} bytes"]},
        )


def direction_controls_refuse(content: Any = None, **texts: str | None) -> None:
    """Refuse a Unicode direction control in ``content`` or a note: it would make the
    text display in another order than it is stored, to a reviewer above all."""
    paths = bidi_controls_in(content, "") if content is not None else []
    paths += [name for name, text in texts.items() if text and not BIDI_CONTROLS.isdisjoint(text)]
    if paths:
        raise ValidationFailed(
            "The text holds a Unicode direction control character (U+202A to U+202E, U+2066 "
            "to U+2069), which makes it display in another order than it is stored; "
            "remove it. Right-to-left text needs none.",
            details={path: ["a Unicode direction control character; remove it"] for path in paths},
        )


def version_create(
    *,
    actor: AbstractBaseUser,
    kind: str,
    name: str,
    content: dict[str, Any],
    artifact: IO[bytes] | None = None,
    change_note: str = "",
    new_item: bool = False,
) -> Version:
    """Create the next draft version of item ``name`` (creating the item if new).

    ``new_item``: the author means a new item, so an existing one of that name is a
    ``Conflict`` (``item_exists``) rather than a new version of it.

    The kind's validator checks and normalises ``content`` (and the staged artifact, for
    kinds that have one) before anything is written; on any error nothing is stored.
    Locks the item row so concurrent drafts get distinct numbers. Raises
    ``PermissionDenied``, ``ValidationFailed``, ``NotFound`` (unknown kind).
    """
    version, _ = _version_create(
        actor=actor,
        kind=kind,
        name=name,
        content=content,
        artifact=artifact,
        change_note=change_note,
        new_item=new_item,
        reuse_identical_draft=False,
    )
    return version


def version_draft_save(
    *,
    actor: AbstractBaseUser,
    kind: str,
    name: str,
    content: dict[str, Any],
    change_note: str = "",
    new_item: bool = False,
) -> tuple[Version, bool]:
    """``version_create`` for a person at a form: the same draft sent again (the back
    button, a reload, a double click) is the draft already saved, not another version.

    Returns ``(version, saved)``: ``saved`` is False when the item's newest version is
    already a draft by ``actor`` with this content and change note, which is returned
    as it is. Decided under the item's row lock, so two sendings at once save one.
    """
    return _version_create(
        actor=actor,
        kind=kind,
        name=name,
        content=content,
        artifact=None,
        change_note=change_note,
        new_item=new_item,
        reuse_identical_draft=True,
    )


def _version_create(
    *,
    actor: AbstractBaseUser,
    kind: str,
    name: str,
    content: dict[str, Any],
    artifact: IO[bytes] | None,
    change_note: str,
    new_item: bool,
    reuse_identical_draft: bool,
) -> tuple[Version, bool]:
    spec = kind_get(kind)
    require_role(actor, AUTHOR_ROLES, action=f"create a {spec.label} version")
    _check_name(name)
    _check_json(content)
    _content_check(direction_controls_refuse, content, change_note=change_note)
    if spec.has_artifact and artifact is None:
        raise ValidationFailed(
            f"A {spec.label} version needs an artifact file.",
            details={"artifact": ["this field is required"]},
        )
    if not spec.has_artifact and artifact is not None:
        raise ValidationFailed(
            f"A {spec.label} version takes no artifact file.",
            details={"artifact": ["not allowed for this kind"]},
        )

    staged: StagedArtifact | None = artifact_stage(artifact) if artifact is not None else None
    try:
        normalised = _content_check(
            spec.validate, content, artifact=staged.path if staged else None
        )
        content_hash = version_hash(normalised, staged.sha256 if staged else None)
        with transaction.atomic():
            item, created = Item.objects.select_for_update().get_or_create(
                kind=spec.key, name=name, defaults={"created_by": actor}
            )
            if reuse_identical_draft and not created:
                newest = item.versions.order_by("-number").first()
                if (
                    newest is not None
                    and newest.status == VersionStatus.DRAFT
                    and newest.author_id == actor.pk
                    and newest.content_hash == content_hash
                    and newest.change_note == change_note
                    and (not new_item or newest.number == 1)
                ):
                    return newest, False
            if new_item and not created:
                raise Conflict(
                    f"There is already {spec.an_item} called {name!r}. Start a new draft "
                    "from its latest version instead, or choose another name.",
                    code="item_exists",
                    details={"name": [f"{spec.an_item} of this name exists"]},
                )
            last = item.versions.aggregate(last=Max("number"))["last"] or 0
            artifact_path = artifact_commit(staged, suffix=spec.artifact_suffix) if staged else ""
            version = Version.objects.create(
                item=item,
                number=last + 1,
                content=normalised,
                content_hash=content_hash,
                artifact_path=artifact_path,
                artifact_sha256=staged.sha256 if staged else "",
                artifact_size=staged.size if staged else None,
                change_note=change_note,
                author=actor,
            )
            version.contributors.add(actor)
            audit_record(
                actor=actor,
                action=AuditAction.CREATE,
                kind=spec.key,
                item_name=name,
                version_number=version.number,
                new_status=VersionStatus.DRAFT,
                content_hash=version.content_hash,
                comment=change_note,
                details={"new_item": created},
            )
    finally:
        if staged is not None:
            artifact_discard(staged)  # a no-op once committed (the file was moved)
    return version, True


def version_update(
    *,
    actor: AbstractBaseUser,
    version: Version,
    content: dict[str, Any],
    change_note: str | None = None,
) -> Version:
    """Replace the content of a draft. The actor joins its contributors (four eyes).

    Locks the version row; raises ``ContentLocked`` (409) once it was submitted: a change
    after that is a new version. The artifact of a model version cannot be replaced.
    """
    spec = kind_get(version.item.kind)
    require_role(actor, AUTHOR_ROLES, action=f"edit a {spec.label} version")
    _check_json(content)
    _content_check(direction_controls_refuse, content, change_note=change_note)
    with transaction.atomic():
        locked = Version.objects.select_for_update().select_related("item").get(pk=version.pk)
        _refuse_if_locked(locked)
        normalised = _validate_existing_artifact(spec, locked, content)
        locked.content = normalised
        locked.content_hash = version_hash(normalised, locked.artifact_sha256 or None)
        if change_note is not None:
            locked.change_note = change_note
        locked.save(update_fields=["content", "content_hash", "change_note", "updated_at"])
        locked.contributors.add(actor)
        audit_record(
            actor=actor,
            action=AuditAction.EDIT,
            kind=spec.key,
            item_name=locked.item.name,
            version_number=locked.number,
            old_status=locked.status,
            new_status=locked.status,
            content_hash=locked.content_hash,
            comment=locked.change_note,
        )
    return locked


def _refuse_if_locked(version: Version) -> None:
    if version.is_locked:
        raise ContentLocked(
            f"Version {version.number} of {version.item.name} is {version.status}; its "
            "content can no longer change. Create a new version instead.",
            details={"status": version.status},
        )


def _content_check(check: Callable[..., Any], content: Any, **kwargs: Any) -> Any:
    """``check(content, **kwargs)``, its problems' paths marked as inside the request's
    ``content`` for API clients (``content.actions[0].id``); ``artifact`` and the fields
    named in ``kwargs`` (``change_note``) stay themselves."""
    try:
        return check(content, **kwargs)
    except ValidationFailed as exc:
        exc.within("content", beside=("artifact", *kwargs))
        raise


def _validate_existing_artifact(spec: Kind, version: Version, content: dict[str, Any]) -> Any:
    if not spec.has_artifact:
        return _content_check(spec.validate, content, artifact=None)
    scratch = Path(settings.ARTIFACT_ROOT) / "staging" / f"check-{secrets.token_hex(8)}"
    try:
        path = artifact_open_verified(version.artifact_path, version.artifact_sha256, into=scratch)
        return _content_check(spec.validate, content, artifact=path)
    finally:
        scratch.unlink(missing_ok=True)


# --- lifecycle ----------------------------------------------------------------------


def _transition(
    *, actor: AbstractBaseUser, version: Version, move: Move, comment: str = ""
) -> Version:
    transition = TRANSITIONS[move]
    spec = kind_get(version.item.kind)
    require_role(actor, transition.roles, action=f"{move.value} a {spec.label} version")
    comment = (comment or "").strip()
    direction_controls_refuse(comment=comment)

    with transaction.atomic():
        # Lock the item first: activation touches the item's other versions.
        Item.objects.select_for_update().get(pk=version.item_id)
        locked = Version.objects.select_for_update().select_related("item").get(pk=version.pk)
        if locked.status not in transition.sources:
            raise TransitionNotAllowed(
                f"Cannot {move.value} version {locked.number} of {locked.item.name}: it is "
                f"{locked.status}, and {move.value} needs "
                f"{' or '.join(sorted(transition.sources))}.",
                details={"status": locked.status, "allowed_from": sorted(transition.sources)},
            )
        if transition.four_eyes:
            _check_four_eyes(actor, locked, move)
        if move == Move.SUBMIT:
            _check_no_open_review(locked)
        hook = {
            Move.SUBMIT: spec.before_submit,
            Move.APPROVE: spec.before_approve,
            Move.ACTIVATE: spec.before_activate,
            Move.RETIRE: spec.before_retire,
        }.get(move)
        if hook is not None:
            hook(locked)
        # Last: an author is told they may not review, and a strategy whose models are not
        # approved is refused, before anyone is asked for a reason.
        if transition.comment_required and not comment:
            raise ValidationFailed(
                f"A comment is required to {move.value}.",
                details={"comment": ["this field is required"]},
            )
        if move == Move.RETIRE and not comment:
            # A kill switch needs no second person, but the trail must say why; and a
            # retired version is gone for good, active or not.
            active = locked.status == VersionStatus.ACTIVE
            raise ValidationFailed(
                "Say why you retire it. "
                + (
                    spec.retire_active_warning(locked.item.name)
                    if active
                    else spec.retire_approved_warning(locked.item.name, locked.number)
                ),
                details={
                    "comment": [
                        f"a reason is required to retire {'the active' if active else 'a'} version"
                    ]
                },
            )

        now = timezone.now()
        old_status = locked.status
        if move == Move.ACTIVATE:
            _retire_active_sibling(actor=actor, version=locked, now=now)
        _stamp(locked, move=move, actor=actor, now=now, comment=comment)
        locked.status = transition.target
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError as exc:
            raise Conflict(
                f"Cannot {move.value} version {locked.number} of {locked.item.name}: another "
                "version of it is already in that state.",
            ) from exc
        audit_record(
            actor=actor,
            action=transition.audit_action,
            kind=spec.key,
            item_name=locked.item.name,
            version_number=locked.number,
            old_status=old_status,
            new_status=locked.status,
            content_hash=locked.content_hash,
            comment=comment,
        )
        review_notice_on_commit(locked, move)
    return locked


def _check_no_open_review(version: Version) -> None:
    open_review = (
        Version.objects.filter(item_id=version.item_id, status=VersionStatus.SUBMITTED)
        .exclude(pk=version.pk)
        .values_list("number", flat=True)
        .first()
    )
    if open_review is not None:
        raise Conflict(
            f"Version {open_review} of {version.item.name} is already under review; "
            "wait for its review before submitting another.",
            details={"under_review": open_review},
        )


def _check_four_eyes(actor: AbstractBaseUser, version: Version, move: Move) -> None:
    role = four_eyes_conflict(user=actor, version=version)
    if role is not None:
        raise FourEyesViolation(
            f"Four eyes: {actor.username} {role} version {version.number} of "
            f"{version.item.name} and so cannot {move.value} it; another checker must.",
            details={"reason": role},
        )


def _stamp(
    version: Version, *, move: Move, actor: AbstractBaseUser, now: Any, comment: str
) -> None:
    if move == Move.SUBMIT:
        version.submitted_by, version.submitted_at = actor, now
        if comment:
            version.change_note = comment
    elif move in (Move.APPROVE, Move.REJECT):
        version.reviewed_by, version.reviewed_at, version.review_comment = actor, now, comment
    elif move == Move.ACTIVATE:
        version.activated_by, version.activated_at = actor, now
    elif move == Move.RETIRE:
        version.retired_by, version.retired_at = actor, now


def _retire_active_sibling(*, actor: AbstractBaseUser, version: Version, now: Any) -> None:
    current = (
        Version.objects.select_for_update()
        .filter(item_id=version.item_id, status=VersionStatus.ACTIVE)
        .exclude(pk=version.pk)
        .first()
    )
    if current is None:
        return
    before_retire = kind_get(version.item.kind).before_retire
    if before_retire is not None:
        before_retire(current, replaced_by=version)
    current.status = VersionStatus.RETIRED
    current.retired_by, current.retired_at = actor, now
    current.save(update_fields=["status", "retired_by", "retired_at", "updated_at"])
    audit_record(
        actor=actor,
        action=AuditAction.RETIRE,
        kind=version.item.kind,
        item_name=version.item.name,
        version_number=current.number,
        old_status=VersionStatus.ACTIVE,
        new_status=VersionStatus.RETIRED,
        content_hash=current.content_hash,
        comment=f"replaced by version {version.number}",
    )


def version_submit(*, actor: AbstractBaseUser, version: Version, comment: str = "") -> Version:
    """Submit a draft for review (maker). Its content is frozen from here on.

    Raises ``Conflict`` when another version of the item is already under review.
    """
    return _transition(actor=actor, version=version, move=Move.SUBMIT, comment=comment)


def version_approve(*, actor: AbstractBaseUser, version: Version, comment: str = "") -> Version:
    """Approve a submitted version (checker; never one they wrote or submitted).

    Runs the kind's ``before_approve`` check (e.g. a strategy's models must be approved).
    Raises ``FourEyesViolation``, ``PermissionDenied``, ``TransitionNotAllowed``.
    """
    return _transition(actor=actor, version=version, move=Move.APPROVE, comment=comment)


def version_reject(*, actor: AbstractBaseUser, version: Version, comment: str) -> Version:
    """Reject a submitted version with a mandatory reason (checker, four eyes)."""
    return _transition(actor=actor, version=version, move=Move.REJECT, comment=comment)


def version_activate(*, actor: AbstractBaseUser, version: Version, comment: str = "") -> Version:
    """Make an approved version the item's active one, retiring the previous in one step."""
    return _transition(actor=actor, version=version, move=Move.ACTIVATE, comment=comment)


def version_retire(*, actor: AbstractBaseUser, version: Version, comment: str = "") -> Version:
    """Retire an approved or active version; it can never be active again."""
    return _transition(actor=actor, version=version, move=Move.RETIRE, comment=comment)


MOVES = {
    Move.SUBMIT: version_submit,
    Move.APPROVE: version_approve,
    Move.REJECT: version_reject,
    Move.ACTIVATE: version_activate,
    Move.RETIRE: version_retire,
}


def version_move(
    *, actor: AbstractBaseUser, version: Version, move: str, comment: str = ""
) -> Version:
    """Dispatch a move by name (used by the API and the admin)."""
    try:
        service = MOVES[Move(move)]
    except ValueError:
        raise NotFound(f"There is no move {move!r}.", details={"moves": list(MOVES)}) from None
    return service(actor=actor, version=version, comment=comment)


# --- people and keys ----------------------------------------------------------------


def user_create(
    *,
    actor: AbstractBaseUser | None,
    username: str,
    password: str,
    roles: Iterable[str],
    email: str = "",
) -> AbstractBaseUser:
    """Create a person or system account with roles; ``actor`` None means an operator's CLI.

    The password must pass Django's validators. Only the admin role may create users
    from code paths that have an actor.
    """
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="create users")
    roles = _known_roles(roles)
    if not roles:
        raise ValidationFailed(
            "Give at least one role.",
            details={"roles": [f"choose from {', '.join(Role.values)}"]},
        )
    if User.objects.filter(username=username).exists():
        raise Conflict(f"A user called {username!r} already exists.")
    candidate = User(username=username, email=email)
    _refuse_unencodable_password(password, field="password")
    try:
        candidate.full_clean(exclude=["password"])
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ValidationFailed(
            "; ".join(exc.messages),
            details=getattr(exc, "message_dict", {"password": exc.messages}),
        ) from exc
    with transaction.atomic():
        user = User.objects.create_user(
            username=username,
            email=email,
            password=password,
            is_staff=Role.ADMIN in roles,
        )
        user.groups.set(Group.objects.filter(name__in=roles))
        forget_roles(user)
        audit_record(
            actor=actor,
            action=AuditAction.USER_CREATE,
            item_name=username,
            details={"roles": roles},
        )
    return user


def _refuse_unencodable_password(password: str, *, field: str) -> None:
    # Lone surrogates (bytes that were not UTF-8, carried on by Python) cannot be hashed.
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        message = "The password is not valid UTF-8 text."
        raise ValidationFailed(message, details={field: [message]}) from None


def _known_roles(roles: Iterable[str]) -> list[str]:
    """``roles`` sorted without repeats; ``ValidationFailed`` naming any that is no role."""
    chosen = sorted(set(roles))
    unknown = [r for r in chosen if r not in Role.values]
    if unknown:
        raise ValidationFailed(
            f"Unknown role(s): {', '.join(unknown)}.",
            details={"roles": [f"choose from {', '.join(Role.values)}"]},
        )
    return chosen


def user_grant_roles(
    *, actor: AbstractBaseUser | None, user: AbstractBaseUser, roles: Iterable[str]
) -> None:
    """Add roles to an existing account (admin or operator CLI)."""
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="grant roles")
    roles = _known_roles(roles)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        added = sorted(set(roles) - set(locked.groups.values_list("name", flat=True)))
        if not added:
            return
        keyless = sorted(set(added) & KEYLESS_ROLES)
        live = list(
            ApiKey.objects.filter(user=locked, revoked_at=None)
            .exclude(expires_at__lte=timezone.now())
            .values_list("prefix", flat=True)
        )
        if keyless and live:
            raise ValidationFailed(
                f"{locked.username} has API keys in use ({', '.join(live)}), and API keys "
                f"cannot carry {the_roles(keyless)}: revoke the keys first (admin, "
                "API keys, Revoke), or give the role to an account without keys.",
                details={"roles": [f"{role}: the account has API keys" for role in keyless]},
            )
        locked.groups.add(*Group.objects.filter(name__in=added))
        if Role.ADMIN in added and not locked.is_staff:
            locked.is_staff = True  # the admin role uses the Django admin
            locked.save(update_fields=["is_staff"])
        forget_roles(user)
        audit_record(
            actor=actor,
            action=AuditAction.ROLE_GRANT,
            item_name=locked.username,
            details={"roles": added},
        )


def user_revoke_roles(
    *, actor: AbstractBaseUser | None, user: AbstractBaseUser, roles: Iterable[str]
) -> None:
    """Take roles from an account (admin or operator CLI). An account keeps at least one
    role: to stop someone signing in, deactivate them instead."""
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="revoke roles")
    roles = _known_roles(roles)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        held = set(locked.groups.values_list("name", flat=True))
        if not held - set(roles):
            raise ValidationFailed(
                f"{locked.username} would hold no role; deactivate the account instead.",
                details={"roles": ["an account keeps at least one role"]},
            )
        taken = sorted(held & set(roles))
        if not taken:
            return
        locked.groups.remove(*Group.objects.filter(name__in=taken))
        if Role.ADMIN in taken and locked.is_staff and not locked.is_superuser:
            locked.is_staff = False
            locked.save(update_fields=["is_staff"])
        forget_roles(user)
        audit_record(
            actor=actor,
            action=AuditAction.ROLE_REVOKE,
            item_name=locked.username,
            details={"roles": taken},
        )


def user_set_email(*, actor: AbstractBaseUser | None, user: AbstractBaseUser, email: str) -> None:
    """Change where an account's notices go (admin or operator CLI). An audit event says
    that it changed, not the address."""
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="change users' e-mail addresses")
    try:
        User._meta.get_field("email").clean(email, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), details={"email": exc.messages}) from exc
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.email == email:
            return
        locked.email = email
        locked.save(update_fields=["email"])
        audit_record(
            actor=actor,
            action=AuditAction.USER_UPDATE,
            item_name=locked.username,
            details={"changed": ["email"]},
        )
    user.email = email


def user_set_active(
    *, actor: AbstractBaseUser | None, user: AbstractBaseUser, active: bool
) -> bool:
    """Deactivate an account (someone left; a key's system retired) or reactivate it.

    A deactivated account cannot sign in, its open sign-ins end at their next request and
    its API keys answer 401; its history stays. Returns whether anything changed. An
    administrator cannot deactivate themselves (someone must be left to undo it).
    """
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="deactivate or reactivate users")
        if not active and actor.pk == user.pk:
            raise ValidationFailed(
                "You cannot deactivate your own account.",
                details={"user": ["your own account"]},
            )
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_active == active:
            return False
        locked.is_active = active
        locked.save(update_fields=["is_active"])
        forget_roles(user)
        audit_record(
            actor=actor,
            action=AuditAction.USER_REACTIVATE if active else AuditAction.USER_DEACTIVATE,
            item_name=locked.username,
        )
    user.is_active = active
    return True


def password_change(
    *,
    user: AbstractBaseUser,
    current_password: str,
    new_password: str,
    address: str | None = None,
) -> None:
    """A person changes their own password, proving the current one first.

    The new one must pass Django's validators and differ from the current one. The
    change is an audit event; the person gets a notice by e-mail (with ``address``, where
    the change came from) so that a change they did not make does not go unnoticed.
    Raises ``ValidationFailed`` with ``current_password`` or ``new_password`` details.
    """
    if not user.is_active or not user.has_usable_password():
        raise PermissionDenied("This account signs in without a password; it has none to change.")
    # Every problem at once, so that the person fixes them in one go.
    problems: dict[str, list[str]] = {}
    if not user.check_password(current_password):
        problems["current_password"] = ["That is not your current password."]
    if new_password == current_password:
        problems["new_password"] = ["Choose a password different from the current one."]
    else:
        try:
            validate_password(new_password, user=user)
        except DjangoValidationError as exc:
            problems["new_password"] = list(exc.messages)
    if problems:
        raise ValidationFailed(
            " ".join(message for messages in problems.values() for message in messages),
            details=problems,
        )
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        audit_record(actor=user, action=AuditAction.PASSWORD_CHANGE, item_name=user.username)
    password_notice_on_commit(user, address=address)


def password_reset(
    *, actor: AbstractBaseUser | None, user: AbstractBaseUser, new_password: str
) -> None:
    """Set the password of someone who lost theirs (admin, or an operator's CLI when
    ``actor`` is None). Their sign-ins end; it is an audit event and they are told by
    e-mail. They should change it on the pages at once (*Change password*)."""
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="reset passwords")
    _refuse_unencodable_password(new_password, field="new_password")
    try:
        validate_password(new_password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed(
            " ".join(exc.messages), details={"new_password": list(exc.messages)}
        ) from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        audit_record(actor=actor, action=AuditAction.PASSWORD_RESET, item_name=user.username)
    password_notice_on_commit(user, address=None, reset=True)


API_KEY_PREFIX_BYTES = 6
API_KEY_SECRET_BYTES = 32


def api_key_hash(secret: str) -> str:
    return sha256_hex(secret.encode("utf-8"))


def api_key_create(
    *,
    actor: AbstractBaseUser | None,
    user: AbstractBaseUser,
    name: str = "",
    days: int | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key for ``user``; returns the row and the key, which is never shown again.

    The key reads ``<prefix>.<secret>``; the prefix finds the row, the secret's SHA-256
    is compared in constant time. It expires after ``days`` (default ``API_KEY_DAYS``;
    0: never), so that keys are rotated: issue the new key, move the client to it, then
    revoke the old one. Raises ``ValidationFailed`` for a ``name`` the column cannot hold.
    """
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="create API keys")
    most = ApiKey._meta.get_field("name").max_length
    if len(name) > most:
        raise ValidationFailed(
            f"An API key's name is at most {most} characters; this one has {len(name)}.",
            details={"name": [f"at most {most} characters"]},
        )
    if "\x00" in name:  # PostgreSQL stores no NUL in text
        raise ValidationFailed(
            "An API key's name cannot contain a NUL character.",
            details={"name": ["no NUL characters"]},
        )
    if not user.is_active:
        raise ValidationFailed(
            f"{user.username} is deactivated.", details={"user": ["deactivated"]}
        )
    forget_roles(user)
    keyless = sorted(roles_of(user) & KEYLESS_ROLES)
    if keyless:
        raise ValidationFailed(
            f"{user.username} holds {the_roles(keyless)}, which API keys cannot carry: "
            "approving and administering are done signed in. Give the script or system an "
            "account of its own without them.",
            details={"user": [f"holds {', '.join(keyless)}, which API keys cannot carry"]},
        )
    days = settings.API_KEY_DAYS if days is None else days
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
        raise ValidationFailed(
            "An API key lasts a whole number of days from 1 to 3650, or 0 for never.",
            details={"days": ["a whole number from 0 to 3650"]},
        )
    expires_at = timezone.now() + timedelta(days=days) if days else None
    prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    secret = secrets.token_urlsafe(API_KEY_SECRET_BYTES)
    key = f"{prefix}.{secret}"
    with transaction.atomic():
        row = ApiKey.objects.create(
            user=user,
            name=name,
            prefix=prefix,
            key_hash=api_key_hash(key),
            created_by=actor,
            expires_at=expires_at,
        )
        audit_record(
            actor=actor,
            action=AuditAction.API_KEY_CREATE,
            item_name=user.username,
            details={
                "prefix": prefix,
                "name": name,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return row, key


def api_key_revoke(*, actor: AbstractBaseUser | None, key: ApiKey) -> ApiKey:
    """Revoke a key at once; requests that present it get 401 from then on."""
    if actor is not None:
        require_role(actor, {Role.ADMIN}, action="revoke API keys")
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            audit_record(
                actor=actor,
                action=AuditAction.API_KEY_REVOKE,
                item_name=locked.user.username,
                details={"prefix": locked.prefix},
            )
    return locked
