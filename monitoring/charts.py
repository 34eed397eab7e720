"""Trend charts of KPIs as PNG images, for the monitoring pages and the executive e-mail.

Drawn with matplotlib's object API on the Agg canvas, imported on first use: no pyplot,
so no global figure state and no GUI backend, which keeps it safe in web threads and
Celery workers alike. Each chart comes with ``trend_description``, the sentence a screen
reader (or a mail client that blocks images) gets instead; the pages also list the
figures in a table.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.cache import cache

from monitoring.kpis import KPIS

# The same picture is drawn again after this long at most (new outcomes change the data,
# and so the key, anyway).
CHART_CACHE_SECONDS = 600

INK = "#1f3a5f"
TARGET = "#b00020"
GRID = "#c8ccd2"


@dataclass(frozen=True)
class TrendPoint:
    start: date
    value: float | None


def format_kpi(key: str, value: float | None) -> str:
    """A KPI value as people read it: rates in percent, money with thousands separators."""
    if value is None:
        return "—"
    unit = KPIS[key].unit if key in KPIS else "ratio"
    if unit == "rate":
        return f"{100 * value:.1f}%"
    if unit == "money":
        return f"{value:,.2f}"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "hours":
        return f"{value:,.1f} h"
    if unit == "minutes":
        return f"{value:,.1f} min"
    return f"{value:,.3f}"


def points_from_series(series: Sequence[dict[str, Any]]) -> list[TrendPoint]:
    """``kpi_report``'s ``daily``/``weekly`` list as points."""
    return [TrendPoint(p["start"], p["value"]) for p in series]


def trend_description(
    key: str, points: Sequence[TrendPoint], *, target: float | None = None
) -> str:
    """The chart in one sentence: first and last measured values, range, target."""
    label = KPIS[key].label if key in KPIS else key
    measured = [p for p in points if p.value is not None]
    if not measured:
        return f"{label}: nothing measured in the period."
    if len(measured) == 1:
        only = measured[0]
        value = format_kpi(key, only.value)
        text = f"{label}: measured on one day only, {value} on {only.start:%d %b}"
        return text + (f"; target {format_kpi(key, target)}." if target is not None else ".")
    low = min(measured, key=lambda p: p.value)  # type: ignore[arg-type,return-value]
    high = max(measured, key=lambda p: p.value)  # type: ignore[arg-type,return-value]
    first, last = measured[0], measured[-1]
    text = (
        f"{label} by day: {format_kpi(key, first.value)} on {first.start:%d %b}, "
        f"{format_kpi(key, last.value)} on {last.start:%d %b}; lowest "
        f"{format_kpi(key, low.value)} ({low.start:%d %b}), highest "
        f"{format_kpi(key, high.value)} ({high.start:%d %b})"
    )
    if target is not None:
        text += f"; target {format_kpi(key, target)}"
    return text + "."


def trend_png(
    key: str,
    points: Sequence[TrendPoint],
    *,
    target: float | None = None,
    width_px: int = 560,
    height_px: int = 220,
) -> bytes:
    """A line chart of ``points`` (gaps where nothing was measured) with the target as a
    dashed line; PNG bytes at 2x resolution for sharp rendering on high-density screens.

    Drawing one takes about 0.15 s (matplotlib lays out every tick label), and a
    deployment's page shows six: the same figures drawn for the last few minutes come
    from the cache (``CHART_CACHE_SECONDS``), keyed by everything the picture shows."""
    shown = repr(
        (key, [(p.start.isoformat(), p.value) for p in points], target, width_px, height_px)
    )
    cache_key = "trend-png:" + hashlib.sha256(shown.encode()).hexdigest()
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    png = _draw_trend(key, points, target=target, width_px=width_px, height_px=height_px)
    cache.set(cache_key, png, CHART_CACHE_SECONDS)
    return png


def _draw_trend(
    key: str,
    points: Sequence[TrendPoint],
    *,
    target: float | None,
    width_px: int,
    height_px: int,
) -> bytes:
    figure = trend_figure(key, points, target=target, width_px=width_px, height_px=height_px)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi * 2)
    return buffer.getvalue()


def trend_figure(
    key: str,
    points: Sequence[TrendPoint],
    *,
    target: float | None = None,
    width_px: int = 560,
    height_px: int = 220,
) -> Any:
    """The matplotlib ``Figure`` ``trend_png`` renders (on its own Agg canvas)."""
    # Imported here: matplotlib takes a while to load and only chart requests need it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    xs = [p.start for p in points]
    ys = [p.value if p.value is not None else float("nan") for p in points]
    unit = KPIS[key].unit if key in KPIS else "ratio"
    scale = 100.0 if unit == "rate" else 1.0
    axes.plot(xs, [y * scale for y in ys], color=INK, marker="o", markersize=3, linewidth=1.8)
    if target is not None:
        axes.axhline(target * scale, color=TARGET, linestyle="--", linewidth=1.2, label="target")
        axes.legend(loc="best", fontsize=8, frameon=False)
    axes.set_title(KPIS[key].label if key in KPIS else key, fontsize=10, loc="left")
    if unit == "rate":
        axes.set_ylabel("%", fontsize=8)
    axes.grid(True, color=GRID, linewidth=0.6)
    axes.tick_params(labelsize=7)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    if xs:
        # The whole period on the axis, even where nothing was measured (NaN values do not
        # count for matplotlib's autoscaling), and half a day beyond the first and last
        # days so their points are drawn whole. As datetimes: a date plus 12 hours is the
        # same date.
        half_day = timedelta(hours=12)
        first, last = (datetime.combine(d, time()) for d in (xs[0], xs[-1]))
        axes.set_xlim(first - half_day, last + half_day)
        figure.autofmt_xdate(rotation=0, ha="center")
        step = max(1, len(xs) // 6)
        axes.set_xticks(xs[::step])
        axes.set_xticklabels([f"{d:%d %b}" for d in xs[::step]])
    figure.tight_layout()
    return figure
