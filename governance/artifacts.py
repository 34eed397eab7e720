"""Content-addressed storage of version artifacts (model files) under ``ARTIFACT_ROOT``.

Uploads are first staged (hashed while copied, size-capped), validated by the kind, then
moved to ``sha256/<2 hex>/<digest><suffix>``. Equal files share one path, so a staged file
moved in a transaction that later rolls back leaves at worst an unreferenced copy.
Every read goes through ``artifact_open_verified``, which refuses a file whose digest
no longer matches the one sealed in the version.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

from governance.exceptions import DomainError, ValidationFailed

CHUNK = 1024 * 1024
logger = logging.getLogger(__name__)


class ArtifactIntegrityError(DomainError):
    """A stored artifact is missing or its digest no longer matches the sealed one."""

    code = "artifact_tampered"
    status = 409


class ArtifactStorageUnavailable(DomainError):
    """The artifact storage could not take a file (not writable, or gone)."""

    code = "artifact_storage_unavailable"
    status = 503


class ArtifactStorageFull(ArtifactStorageUnavailable):
    """The artifact storage has no space (or quota) left for the file."""

    code = "artifact_storage_full"
    status = 507


def _storage_error(exc: OSError) -> ArtifactStorageUnavailable:
    """The refusal for an ``OSError`` from the storage; nothing of the file was kept."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        kind, reason = ArtifactStorageFull, "is full"
    else:
        kind, reason = ArtifactStorageUnavailable, f"could not be written ({exc.strerror or exc})"
    return kind(
        f"The server's file storage {reason}, so the file was not stored and nothing was "
        "created. Tell an administrator (ARTIFACT_ROOT), then send it again."
    )


@dataclass(frozen=True)
class StagedArtifact:
    path: Path
    sha256: str
    size: int


def _root() -> Path:
    return Path(settings.ARTIFACT_ROOT)


def _private(path: Path, *, exclusive: bool = False) -> IO[bytes]:
    """``path`` opened for writing, readable by this user only (0600, whatever the umask):
    staged uploads and working copies hold models and customers' data."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    handle = os.fdopen(os.open(path, flags, 0o600), "wb")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC
    return handle


def artifact_stage(
    source: IO[bytes],
    *,
    max_bytes: int | None = None,
    field: str = "artifact",
    noun: str = "artifact file",
) -> StagedArtifact:
    """Copy an uploaded stream to a private staging file, hashing it on the way.
    ``field`` and ``noun`` name the upload in a refusal (``population``, ``population
    file``)."""
    limit = max_bytes if max_bytes is not None else settings.MODEL_ARTIFACT_MAX_BYTES
    staging = _root() / "staging"
    try:
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.error("could not create %s: %s", staging, exc)
        raise _storage_error(exc) from None
    target = staging / uuid.uuid4().hex
    digest = hashlib.sha256()
    size = 0
    try:
        with _private(target, exclusive=True) as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ValidationFailed(
                        f"The {noun} is larger than the limit of {limit:,} bytes.",
                        details={field: [f"larger than {limit:,} bytes"]},
                    )
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        target.unlink(missing_ok=True)
        logger.error("could not stage an upload under %s: %s", staging, exc)
        raise _storage_error(exc) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if size == 0:
        target.unlink(missing_ok=True)
        raise ValidationFailed(f"The {noun} is empty.", details={field: ["the file is empty"]})
    return StagedArtifact(path=target, sha256=digest.hexdigest(), size=size)


def artifact_discard(staged: StagedArtifact) -> None:
    staged.path.unlink(missing_ok=True)


def artifact_commit(staged: StagedArtifact, *, suffix: str = "") -> str:
    """Move a staged file to its content address; returns the path relative to the root."""
    relative = Path("sha256") / staged.sha256[:2] / f"{staged.sha256}{suffix}"
    final = _root() / relative
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and _file_sha256(final) == staged.sha256:
            staged.path.unlink(missing_ok=True)
        else:
            os.replace(staged.path, final)
            os.chmod(final, 0o440)
    except OSError as exc:
        staged.path.unlink(missing_ok=True)
        logger.error("could not store %s: %s", final, exc)
        raise _storage_error(exc) from None
    return relative.as_posix()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_problem(relative_path: str, expected_sha256: str) -> str | None:
    """A sentence saying what is wrong with a stored artifact, or None when it is intact."""
    path = _root() / relative_path
    if not path.is_file():
        return f"artifact {relative_path} is missing"
    actual = _file_sha256(path)
    if actual != expected_sha256:
        return (
            f"artifact {relative_path} has SHA-256 {actual[:12]}…, "
            f"but {expected_sha256[:12]}… was sealed"
        )
    return None


def artifact_open_verified(relative_path: str, expected_sha256: str, *, into: Path) -> Path:
    """Copy a stored artifact to ``into`` and check its digest on the copy.

    Checking the copy (not the original, then reading it again) leaves no window in which
    the file could be swapped between the check and the load.
    """
    source = _root() / relative_path
    if not source.is_file():
        raise ArtifactIntegrityError(f"The artifact {relative_path} is missing.")
    into.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as original, _private(into) as copy:
        shutil.copyfileobj(original, copy, CHUNK)
    actual = _file_sha256(into)
    if actual != expected_sha256:
        into.unlink(missing_ok=True)
        raise ArtifactIntegrityError(
            "The artifact's SHA-256 does not match the sealed hash; refusing to load it.",
            details={"expected": expected_sha256, "actual": actual},
        )
    return into
