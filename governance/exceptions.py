"""Domain errors of governance. Each carries a stable ``code`` and an HTTP ``status``.

Services raise these and never DRF exceptions; ``arbiter.api_errors`` turns them into
``{"error": {"code", "message", "details"}}`` with the status given here, and the admin
and management commands show ``message``. Other apps subclass ``DomainError``.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the caller can act on: a stable code, a sentence, optional details."""

    code: str = "error"
    status: int = 400

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details if details is not None else {}
        # The fields of ``details`` as paths of the request body, where they differ: a
        # registry version's content problems are ``content.<path>`` to an API client,
        # which the reviewer pages (whose field *is* the content) show as ``<path>``.
        self.request_details: Any = None
        if code is not None:
            self.code = code

    def within(self, field: str, *, beside: tuple[str, ...] = ()) -> DomainError:
        """Say that ``details``' paths lie inside request field ``field`` (``beside``: the
        paths that are other fields of the request, left as they are). Returns self."""
        if isinstance(self.details, dict):
            self.request_details = {
                path if path in beside or path == field else f"{field}.{path}": problems
                for path, problems in self.details.items()
            }
        return self

    def field_problems(self) -> list[tuple[str, str]]:
        """The field messages of ``details`` as ``(field, "message; message")`` pairs, for
        a command that lists them under its sentence. Other details (``{"under_review": 1}``)
        are data for API clients, already said in the message, and are left out."""
        if not isinstance(self.details, dict):
            return []
        return [
            (str(field), "; ".join(map(str, problems)))
            for field, problems in self.details.items()
            if isinstance(problems, list | tuple) and problems
        ]


class ValidationFailed(DomainError):
    """Input is malformed; ``details`` maps field paths to lists of messages."""

    code = "invalid"
    status = 400


class NotFound(DomainError):
    code = "not_found"
    status = 404


class PermissionDenied(DomainError):
    """The actor lacks the role the action needs."""

    code = "permission_denied"
    status = 403


class FourEyesViolation(PermissionDenied):
    """A reviewer tried to approve or reject a version they wrote or submitted."""

    code = "four_eyes"
    status = 403


class TransitionNotAllowed(DomainError):
    """The lifecycle table has no such move from the version's current status."""

    code = "invalid_transition"
    status = 409


class ContentLocked(DomainError):
    """The content of a version past draft cannot change; a change is a new version."""

    code = "content_locked"
    status = 409


class Conflict(DomainError):
    """The request clashes with the current state (another version under review, ...)."""

    code = "conflict"
    status = 409


class PreconditionFailed(DomainError):
    """A governed move needs something else to be true first (a dependency approved, ...)."""

    code = "precondition_failed"
    status = 422
