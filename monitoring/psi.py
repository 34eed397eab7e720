"""The population stability index (PSI), binned the way credit risk teams read it.

``PSI = sum over bins of (a - e) * ln(a / e)``, where ``e`` is the bin's share of the
reference sample and ``a`` its share of the current window. Bins:

* numeric values: the **deciles of the reference** (the 10th, ..., 90th percentiles as
  interior edges, so ten bins holding a tenth of the reference each; tied percentiles
  merge, so a feature with few distinct values gets fewer bins). A value equal to an edge
  falls in the lower bin; the outer bins are open, so current values outside the
  reference's range still count;
* categorical values: **each category is a bin** (categories seen on either side);
* a missing value is a bin of its own.

A bin empty on one side would make the logarithm infinite; both shares are floored at
``EPSILON`` (0.0001) first, so one empty bin adds a large but finite amount.

Bands: below 0.1 stable, 0.1 to 0.25 watch, above 0.25 act. No Django, no pandas: arrays
in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EPSILON = 1e-4
DECILES = tuple(q / 10 for q in range(1, 10))
WATCH_FROM = 0.1
ACT_ABOVE = 0.25
MISSING = "(missing)"


@dataclass(frozen=True)
class PsiResult:
    value: float
    bins: list[dict[str, Any]]
    """Each bin: ``label``, ``reference`` share, ``current`` share (before the floor)."""


def psi_band(value: float | None) -> str:
    """``stable`` (< 0.1), ``watch`` (0.1 to 0.25) or ``act`` (> 0.25); ``no_data`` for None."""
    if value is None or math.isnan(value):
        return "no_data"
    if value > ACT_ABOVE:
        return "act"
    if value >= WATCH_FROM:
        return "watch"
    return "stable"


def psi_from_shares(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI of two share vectors over the same bins, each share floored at ``EPSILON``."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, dtype=np.float64)


def numeric_psi(reference: Sequence[Any], current: Sequence[Any]) -> PsiResult:
    """PSI of a numeric feature over the reference's deciles (plus a missing bin if any)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref_missing, cur_missing = np.isnan(ref), np.isnan(cur)
    ref_present, cur_present = ref[~ref_missing], cur[~cur_missing]
    if ref_present.size:
        edges = np.unique(np.quantile(ref_present, DECILES))
    else:
        edges = np.array([], dtype=np.float64)
    bins = len(edges) + 1
    # side="left": a value equal to an edge belongs to the bin that edge closes.
    ref_counts = np.bincount(np.searchsorted(edges, ref_present, side="left"), minlength=bins)
    cur_counts = np.bincount(np.searchsorted(edges, cur_present, side="left"), minlength=bins)
    labels = []
    for i in range(bins):
        low = f"{edges[i - 1]:.6g}" if i > 0 else "-inf"
        high = f"{edges[i]:.6g}" if i < len(edges) else "inf"
        labels.append(f"({low}, {high}]")
    if ref_missing.any() or cur_missing.any():
        ref_counts = np.append(ref_counts, ref_missing.sum())
        cur_counts = np.append(cur_counts, cur_missing.sum())
        labels.append(MISSING)
    return _result(labels, ref_counts, cur_counts)


def categorical_psi(reference: Sequence[Any], current: Sequence[Any]) -> PsiResult:
    """PSI of a categorical feature, one bin per category (and one for missing values)."""

    def key(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING
        return str(value)

    ref_keys = [key(v) for v in reference]
    cur_keys = [key(v) for v in current]
    labels = sorted(set(ref_keys) | set(cur_keys))
    index = {label: i for i, label in enumerate(labels)}
    ref_counts = np.bincount([index[k] for k in ref_keys], minlength=len(labels))
    cur_counts = np.bincount([index[k] for k in cur_keys], minlength=len(labels))
    return _result(labels, ref_counts, cur_counts)


def _result(labels: list[str], ref_counts: np.ndarray, cur_counts: np.ndarray) -> PsiResult:
    expected, actual = _shares(ref_counts), _shares(cur_counts)
    return PsiResult(
        value=psi_from_shares(expected, actual),
        bins=[
            {"label": label, "reference": round(float(e), 6), "current": round(float(a), 6)}
            for label, e, a in zip(labels, expected, actual, strict=True)
        ],
    )
