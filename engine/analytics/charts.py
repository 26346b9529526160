"""The equity chart: a PNG with the equity curve on top and the drawdown underneath.

Rendering uses ``matplotlib.figure.Figure`` with the Agg canvas directly, never pyplot (whose
global state is neither thread-safe nor needed), so it can run in a worker thread. Every text on
the image is passed in (``ChartLabels``), already translated; dates on the axis are numeric
(``2026-10-05``) so they read the same in every language. Long histories are reduced to at most
``max_points`` per series by min/max decimation, which keeps every peak and trough visible.
"""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from engine.analytics.data import ChartLabels
from engine.analytics.series import Curve, drawdown_series

WIDTH_PX = 1200
HEIGHT_PX = 800
DPI = 100
MAX_POINTS = 2000

_EQUITY_COLOR = "#1f6feb"
_PEAK_COLOR = "#8b949e"
_DRAWDOWN_COLOR = "#d1242f"
_DATE_FORMATS = ["%Y", "%m", "%d", "%H:%M", "%H:%M", "%H:%M:%S"]
_ZERO_FORMATS = ["", "%Y", "%Y-%m", "%m-%d", "%m-%d", "%H:%M"]
_OFFSET_FORMATS = ["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]
_EPOCH_DAYS = float(mdates.date2num(datetime(1970, 1, 1, tzinfo=UTC)))


def downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` samples: per bucket the first, min and max (in time order) and the last sample."""
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = [0, n - 1]
    for lo, hi in itertools.pairwise(edges.tolist()):
        if hi <= lo:
            continue
        chunk = y[lo:hi]
        keep.append(lo + int(np.argmin(chunk)))
        keep.append(lo + int(np.argmax(chunk)))
    idx = np.unique(np.array(keep))
    return x[idx], y[idx]


def _x(times: list[datetime]) -> np.ndarray:
    return np.fromiter((t.timestamp() for t in times), dtype=float, count=len(times)) / 86400.0 + _EPOCH_DAYS


def _floats(values: list[Decimal]) -> np.ndarray:
    return np.fromiter((float(v) for v in values), dtype=float, count=len(values))


def _new_figure() -> Figure:
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def render_empty(labels: ChartLabels) -> bytes:
    """The "no data yet" image."""
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title(labels.title, fontsize=14, parse_math=False)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#d0d7de")
    ax.text(
        0.5,
        0.5,
        labels.no_data,
        ha="center",
        va="center",
        fontsize=22,
        color="#57606a",
        transform=ax.transAxes,
        parse_math=False,
    )
    return _png(fig)


def render_chart(
    curve: Curve, labels: ChartLabels, *, end: datetime | None = None, max_points: int = MAX_POINTS
) -> bytes:
    """PNG bytes (``WIDTH_PX`` x ``HEIGHT_PX``) of ``curve`` and its drawdown, up to ``end``."""
    if len(curve) == 0:
        return render_empty(labels)
    times = list(curve.times)
    values = list(curve.equity if curve.has_capital else curve.pnl)
    amounts, percents = drawdown_series(curve)
    peaks = [v + d for v, d in zip(values, amounts, strict=True)]
    if curve.has_capital:
        under = [-(p if p is not None else Decimal(0)) * 100 for p in percents]
    else:
        under = [-a for a in amounts]
    if end is not None and end > times[-1]:  # nothing changed since the last sample: flat to the end
        times.append(end)
        for series in (values, peaks, under):
            series.append(series[-1])
    x = _x(times)
    step = None if curve.has_capital else "steps-post"

    fig = _new_figure()
    grid = fig.add_gridspec(
        2, 1, height_ratios=(3, 1), hspace=0.06, left=0.09, right=0.97, top=0.93, bottom=0.08
    )
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    top.set_title(labels.title, fontsize=14, parse_math=False)

    px, py = downsample(x, _floats(peaks), max_points)
    top.plot(
        px,
        py,
        color=_PEAK_COLOR,
        linewidth=0.8,
        linestyle="--",
        label=labels.peak,
        drawstyle=step or "default",
    )
    ex, ey = downsample(x, _floats(values), max_points)
    top.plot(
        ex,
        ey,
        color=_EQUITY_COLOR,
        linewidth=1.4,
        drawstyle=step or "default",
        marker="o" if len(ex) <= 2 else None,
    )
    top.set_ylabel(labels.equity if curve.has_capital else labels.pnl, parse_math=False)
    top.legend(loc="best", frameon=False)
    top.grid(True, alpha=0.3)
    top.tick_params(labelbottom=False)

    dx, dy = downsample(x, _floats(under), max_points)
    bottom.fill_between(
        dx, dy, 0, color=_DRAWDOWN_COLOR, alpha=0.35, linewidth=0, step="post" if step else None
    )
    bottom.plot(dx, dy, color=_DRAWDOWN_COLOR, linewidth=0.9, drawstyle=step or "default")
    bottom.set_ylabel(labels.drawdown_pct if curve.has_capital else labels.drawdown_amount, parse_math=False)
    bottom.grid(True, alpha=0.3)
    if float(np.min(dy)) == 0.0:
        bottom.set_ylim(-1, 0.05)

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(
            locator, formats=_DATE_FORMATS, zero_formats=_ZERO_FORMATS, offset_formats=_OFFSET_FORMATS
        )
    )
    if x[0] == x[-1]:
        bottom.set_xlim(x[0] - 0.5, x[0] + 0.5)
    return _png(fig)
