"""Loading scikit-learn models from skops files, trusting only an explicit allow-list.

A model file never goes through pickle. skops lists the types it does not trust by
default; every one of them must be in ``EXTRA_TRUSTED_TYPES``, an exact list of plain
data types and pure functions. Anything else (``posix.system``, ``numpy.load``, a SciPy
distribution, a custom class) is refused before loading. Loads of stored versions copy
the file and check its SHA-256 first.
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

# Beyond what skops trusts by default (scikit-learn's estimators and transformers, NumPy
# arrays, ufuncs and random states, SciPy's sparse matrices), exactly these types, each
# plain data or a pure function, met in fitted scikit-learn models. A prefix rule
# ("anything from scipy.") would let in classes that run code when they are loaded: SciPy's
# distributions ``exec`` a string from the file in ``__setstate__``. A model that needs
# another type is refused, naming it; widening this list is a reviewed code change.
EXTRA_TRUSTED_TYPES = frozenset(
    {
        "builtins.object",  # the dtype of text columns
        "numpy.dtype",
        "numpy.clip",
        "numpy.round",
        "numpy.nan_to_num",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "scipy.interpolate._bsplines.BSpline",  # SplineTransformer's splines
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
    }
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
    return name in EXTRA_TRUSTED_TYPES


def estimator_load(path: Path) -> Any:
    """Load an estimator from a skops file after checking every untrusted type it names."""
    types = untrusted_types(path)
    refused = sorted(t for t in types if not type_allowed(t))
    if refused:
        raise UntrustedArtifact(
            "The artifact holds types outside the allow-list (skops' defaults and "
            "decisions.model_artifacts.EXTRA_TRUSTED_TYPES): " + ", ".join(refused),
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
