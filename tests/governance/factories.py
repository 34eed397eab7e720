"""Build governed versions through the real services, in any lifecycle status."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from governance import services
from governance.models import Version, VersionStatus

PATH_TO = {
    VersionStatus.DRAFT: [],
    VersionStatus.SUBMITTED: ["submit"],
    VersionStatus.APPROVED: ["submit", "approve"],
    VersionStatus.REJECTED: ["submit", "reject"],
    VersionStatus.ACTIVE: ["submit", "approve", "activate"],
    VersionStatus.RETIRED: ["submit", "approve", "activate", "retire"],
}


def note_version(
    *,
    maker: AbstractBaseUser,
    checker: AbstractBaseUser,
    status: str = VersionStatus.DRAFT,
    name: str = "house-rules",
    text: str = "be kind",
) -> Version:
    version = services.version_create(actor=maker, kind="note", name=name, content={"text": text})
    for move in PATH_TO[status]:
        actor = maker if move == "submit" else checker
        comment = {"reject": "not yet", "approve": "looks right", "retire": "done"}.get(move, "")
        version = services.version_move(actor=actor, version=version, move=move, comment=comment)
    assert version.status == status
    return version
