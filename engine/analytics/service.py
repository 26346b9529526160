"""``AnalyticsService``: what the bot's /stats and /export handlers and the daily job call.

Data is loaded on the event loop (streamed, in chunks); the CPU work (curves, metrics, the
chart) runs on a worker thread so the loop keeps serving updates. Charts are cached per (scope,
period window, labels) together with a *data marker* (the newest equity point id and the closed
positions' count and latest close): the marker is read before the data, so a cached image is
never older than the marker says, and any new point or close renders a fresh one.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from engine.analytics.data import ChartLabels, Scope, ScopeData, Trade
from engine.analytics.export import ExportFile, export_filename, trades_to_csv
from engine.analytics.metrics import PerformanceMetrics, build_curve, compute_metrics, effective_start
from engine.analytics.period import Period
from engine.analytics.queries import data_marker, load_account_owners, load_scope_data, load_trades
from engine.analytics.series import Curve
from engine.analytics.summary import DailyReport, build_daily_report, day_bounds
from engine.store.db import Database, utcnow

T = TypeVar("T")


def render_chart(curve: Curve, labels: ChartLabels, *, end: datetime | None = None) -> bytes:
    """``engine.analytics.charts.render_chart``, loaded with the first chart: matplotlib and numpy
    hold tens of MiB that a process which never draws a chart should not carry."""
    from engine.analytics import charts

    return charts.render_chart(curve, labels, end=end)


def period_curve(
    data: ScopeData, period: Period, *, equity_based: bool, capital: Decimal | None = None
) -> Curve:
    """The curve the chart draws, as data (synchronous: call it off the event loop)."""
    start = effective_start(data, period.start, period.end)
    return build_curve(data, start, equity_based=equity_based, capital=capital)


def chart_png(
    data: ScopeData,
    period: Period,
    labels: ChartLabels,
    *,
    equity_based: bool,
    capital: Decimal | None = None,
) -> bytes:
    """Build the curve for ``data`` and render it (synchronous: call it off the event loop)."""
    curve = period_curve(data, period, equity_based=equity_based, capital=capital)
    return render_chart(curve, labels, end=period.end)


class AnalyticsService:
    def __init__(
        self,
        db: Database,
        *,
        executor: Executor | None = None,
        cache_size: int = 32,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=2, thread_name_prefix="analytics")
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._inflight: dict[Hashable, asyncio.Future[bytes]] = {}
        self._clock = clock
        self.renders = 0  # charts actually rendered (cache misses), for metrics and tests

    async def _off_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def load(self, scope: Scope, period: Period) -> ScopeData:
        return await load_scope_data(self._db, scope, period.start, period.end)

    async def metrics(
        self, scope: Scope, period: Period, *, capital: Decimal | None = None
    ) -> PerformanceMetrics:
        data = await self.load(scope, period)
        return await self._off_loop(
            compute_metrics,
            data,
            start=period.start,
            end=period.end,
            equity_based=scope.equity_based,
            capital=capital,
        )

    async def chart(
        self, scope: Scope, period: Period, labels: ChartLabels, *, capital: Decimal | None = None
    ) -> bytes:
        """The PNG for ``scope`` and ``period``: from the cache unless new data has arrived."""
        marker = await data_marker(self._db, scope)
        key = (scope, period.cache_key(), labels, capital, marker)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        while (pending := self._inflight.get(key)) is not None:  # being rendered: share it
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # the caller rendering it was cancelled: render it here instead
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            data = await self.load(scope, period)
            png = await self._off_loop(
                chart_png, data, period, labels, equity_based=scope.equity_based, capital=capital
            )
            self.renders += 1
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: nobody else may be waiting
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(png)
        self._cache[key] = png
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return png

    async def curve(self, scope: Scope, period: Period, *, capital: Decimal | None = None) -> Curve:
        """The equity (or cumulative P&L) curve of ``scope`` over ``period``, as the chart draws it
        (the Mini App draws it itself, in the subscriber's theme)."""
        data = await self.load(scope, period)
        return await self._off_loop(
            period_curve, data, period, equity_based=scope.equity_based, capital=capital
        )

    async def trades(self, scope: Scope, period: Period) -> list[Trade]:
        """The trades of ``scope`` closed in ``period``, oldest first."""
        return await load_trades(self._db, scope, period.start, period.end)

    async def export_csv(self, scope: Scope, period: Period) -> ExportFile:
        """The CSV of the trades of ``scope`` closed in ``period`` (see ``engine.analytics.export``)."""
        trades = await load_trades(self._db, scope, period.start, period.end)
        body = await self._off_loop(trades_to_csv, trades)
        return ExportFile(export_filename(scope.slug(), period.spec), body, len(trades))

    async def daily_report(self, day: date) -> DailyReport:
        """The summary of one UTC day (up to now, if the day has not ended yet)."""
        start, end = day_bounds(day)
        end = min(end, self._clock())
        data = await load_scope_data(self._db, Scope(), start, end)
        owners = await load_account_owners(self._db)
        return await self._off_loop(build_daily_report, data, owners, day, end)

    def close(self) -> None:
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
