"""Canonical JSON and the SHA-256 digests that seal versions and audit events."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64


# One encoder for every call: ``json.dumps`` with options builds a new one each time, which
# costs more than encoding a small value (the decision log encodes ten values a row).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8, no NaN or infinities."""
    return _CANONICAL.encode(value).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_hash(content: Any, artifact_sha256: str | None) -> str:
    """The content hash of a version: its JSON content and its artifact's digest."""
    return sha256_hex(
        canonical_json({"artifact_sha256": artifact_sha256 or None, "content": content})
    )
