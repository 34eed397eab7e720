"""Staged uploads and working copies of artifacts hold models and customers' data: only
the server's own user reads them, whatever the umask."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from governance.artifacts import artifact_commit, artifact_open_verified, artifact_stage


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_staged_and_copied_files_are_private(settings, tmp_path):
    settings.ARTIFACT_ROOT = str(tmp_path / "artifacts")
    old = os.umask(0o022)
    try:
        staged = artifact_stage(io.BytesIO(b"customer_id,income\nc1,100\n"))
        assert mode(staged.path) == 0o600
        stored = artifact_commit(staged, suffix=".csv")
        copy = artifact_open_verified(stored, staged.sha256, into=tmp_path / "work" / "copy.csv")
        assert mode(copy) == 0o600
        assert copy.read_bytes() == b"customer_id,income\nc1,100\n"
    finally:
        os.umask(old)
