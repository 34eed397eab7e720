"""Loading scikit-learn models from skops files, trusting only an explicit allow-list.

A model file never goes through pickle. skops lists the types it does not trust by
default; every one of them must come from scikit-learn, NumPy or SciPy, and none from
the I/O corners of NumPy (a FunctionTransformer pointed at ``numpy.load`` would read
files at predict time). Anything else (``posix.system``, a custom class) is refused
before loading. Loads of stored versions copy the file and check its SHA-256 first.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any

import skops.io as sio

from decisions.exceptions import UntrustedArtifact
from governance.artifacts import artifact_open_verified
from governance.models import Version

ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
DENIED_PREFIXES = (
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.tofile",
    "numpy.memmap",
    "numpy.lib.npyio",
    "numpy.lib.format",
    "numpy.ctypeslib",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "numpy.genfromtxt",
    "numpy.loadtxt",
    "numpy.savetxt",
    "scipy.io",
    "sklearn.datasets",
    "sklearn.utils._testing",
)


def untrusted_types(path: Path) -> list[str]:
    """The types in a skops file that skops does not trust by default."""
    try:
        return list(sio.get_untrusted_types(file=path))
    except zipfile.BadZipFile:
        raise UntrustedArtifact(
            "The artifact is not a skops file (pickle and joblib files are refused).",
            details={"artifact": ["not a skops file (a zip archive with a schema)"]},
        ) from None
    except Exception as exc:  # a damaged or hand-made archive; report, never load
        raise UntrustedArtifact(
            "The artifact is not a readable skops file.",
            details={"artifact": [f"unreadable skops file: {type(exc).__name__}"]},
        ) from None


def type_allowed(name: str) -> bool:
    return name.startswith(ALLOWED_PREFIXES) and not name.startswith(DENIED_PREFIXES)


def estimator_load(path: Path) -> Any:
    """Load an estimator from a skops file after checking every untrusted type it names."""
    types = untrusted_types(path)
    refused = sorted(t for t in types if not type_allowed(t))
    if refused:
        raise UntrustedArtifact(
            "The artifact holds types outside the allow-list (scikit-learn, NumPy, SciPy): "
            + ", ".join(refused),
            details={"artifact": [f"untrusted type {t}" for t in refused]},
        )
    try:
        return sio.load(path, trusted=types)
    except Exception as exc:
        raise UntrustedArtifact(
            "The skops file could not be loaded.",
            details={"artifact": [f"load failed: {type(exc).__name__}: {exc}"]},
        ) from None


def model_version_load(version: Version) -> Any:
    """The estimator of a stored model version, refused if its file's hash changed."""
    return model_artifact_load(version.artifact_path, version.artifact_sha256)


def model_artifact_load(artifact_path: str, artifact_sha256: str) -> Any:
    """The estimator stored at ``artifact_path`` (under the artifact root), refused unless
    the file's SHA-256 is ``artifact_sha256``."""
    with tempfile.TemporaryDirectory(prefix="arbiter-model-") as scratch:
        path = artifact_open_verified(
            artifact_path, artifact_sha256, into=Path(scratch) / "model.skops"
        )
        return estimator_load(path)
