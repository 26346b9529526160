"""The equity chart: a real PNG for empty, one-trade and long histories; off the loop; cached."""

from __future__ import annotations

import asyncio
import gc
import io
import threading
import time
from datetime import timedelta
from decimal import Decimal as D

import numpy as np
import pytest
from PIL import Image

from engine.analytics.charts import HEIGHT_PX, WIDTH_PX, ChartLabels, downsample, render_chart, render_empty
from engine.analytics.data import Scope
from engine.analytics.metrics import build_curve
from engine.analytics.period import parse_period
from engine.analytics.series import equity_curve, pnl_curve
from engine.analytics.service import AnalyticsService, chart_png
from tests.support.analytics import Seeder, at, data, trade

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EN = ChartLabels(
    "Account 1: last 30 days (UTC)",
    "Equity",
    "Cumulative P&L",
    "Drawdown (%)",
    "Drawdown",
    "Peak",
    "No data yet",
)
ES = ChartLabels(
    "Cuenta 1: últimos 30 días (UTC)",
    "Capital",
    "Resultado acumulado",
    "Drawdown (%)",
    "Drawdown",
    "Máximo",
    "Aún no hay datos",
)


def decode(png: bytes) -> Image.Image:
    assert png.startswith(PNG_MAGIC)
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    assert image.size == (WIDTH_PX, HEIGHT_PX)
    return image


def long_series(n: int = 50_000) -> list[tuple]:
    rng = np.random.default_rng(7)
    steps = np.round(rng.normal(0, 3, n), 2)
    values = 10_000 + np.cumsum(steps)
    return [(at(1) + timedelta(minutes=i), D(f"{v:.2f}")) for i, v in enumerate(values)]


def test_empty_history_is_a_no_data_image():
    png = render_chart(equity_curve({}), EN)
    image = decode(png)
    assert 5_000 < len(png) < 500_000
    assert png == render_empty(EN)
    # Almost all white, with some dark text in the middle.
    pixels = np.asarray(image.convert("L"))
    assert (pixels < 128).mean() < 0.02 and (pixels[300:500, 300:900] < 128).any()


def test_one_trade():
    curve = pnl_curve([trade("25", "-1", opened=at(1, 2), closed=at(1, 9))], at(1))
    png = render_chart(curve, EN, end=at(2))
    decode(png)
    assert 20_000 < len(png) < 500_000


def test_one_equity_point():
    png = render_chart(equity_curve({1: [(at(1), D(1000))]}), EN)
    decode(png)
    assert 20_000 < len(png) < 500_000


def test_long_history_is_downsampled_and_sane():
    curve = equity_curve({1: long_series()})
    started = time.perf_counter()
    png = render_chart(curve, EN, end=at(40))
    assert time.perf_counter() - started < 5
    decode(png)
    assert 20_000 < len(png) < 500_000


def test_labels_change_the_image():
    curve = equity_curve({1: [(at(1), D(1000)), (at(2), D(900)), (at(3), D(1100))]})
    assert render_chart(curve, EN) != render_chart(curve, ES)
    assert render_chart(curve, EN) == render_chart(curve, EN)  # deterministic, so cacheable


def test_dollar_signs_in_titles_are_not_mathtext():
    labels = ChartLabels("$5 $ strategy_x^2 {", "E", "P", "D", "D", "P", "$no data$")
    decode(render_chart(equity_curve({1: [(at(1), D(1))]}), labels))
    decode(render_empty(labels))


def test_downsample_keeps_extremes_and_ends():
    x = np.arange(50_000, dtype=float)
    y = np.sin(x / 700) * 100 + np.random.default_rng(1).normal(0, 5, x.size)
    y[12_345] = -1_000
    y[40_000] = 1_000
    dx, dy = downsample(x, y, 2000)
    assert len(dx) <= 2000
    assert dy.min() == -1_000 and dy.max() == 1_000
    assert dx[0] == 0 and dx[-1] == 49_999
    assert np.all(np.diff(dx) > 0)
    short_x, short_y = downsample(x[:100], y[:100], 2000)
    assert np.array_equal(short_x, x[:100]) and np.array_equal(short_y, y[:100])


async def test_rendering_does_not_block_the_event_loop(sqlite_db):
    s = Seeder(sqlite_db)
    account = await s.account(None)
    await s.bulk_equity(account, long_series())
    service = AnalyticsService(sqlite_db)
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker():
        interval = 0.005
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(interval)
            lags.append(time.perf_counter() - before - interval)

    # A full collection of this test process's heap (pandas, matplotlib, hypothesis...) pauses every
    # thread for ~50 ms whoever triggers it; freeze what exists so the measure is of the render.
    gc.collect()
    gc.freeze()
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    try:
        png = await service.chart(Scope(account_id=account), parse_period("all", at(40)), EN)
    finally:
        took = time.perf_counter() - started
        stop.set()
        await task
        gc.unfreeze()
        service.close()
    decode(png)
    assert len(lags) > 10
    assert took > 0.15, "the render should take longer than the lag we tolerate"
    # on the loop, one lag would be about the whole render; off it, lags stay small (relative to the
    # render, since a loaded machine stretches both)
    assert max(lags) < max(0.1, took / 2), f"loop lag {max(lags):.3f}s while rendering for {took:.3f}s"


async def test_render_runs_on_a_worker_thread(sqlite_db):
    seen: list[str] = []
    import engine.analytics.service as service_module

    original = service_module.render_chart

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    service_module.render_chart = spy
    service = AnalyticsService(sqlite_db)
    try:
        await service.chart(Scope(), parse_period("7d", at(10)), EN)
    finally:
        service_module.render_chart = original
        service.close()
    assert seen and seen[0].startswith("analytics") and seen[0] != threading.main_thread().name


async def test_cache_until_new_data(db):
    s = Seeder(db)
    account = await s.account(None)
    await s.equity(account, [(at(1), "1000"), (at(2), "950")])
    service = AnalyticsService(db)
    scope, period = Scope(account_id=account), parse_period("2026-03", at(20))
    try:
        first = await service.chart(scope, period, EN)
        again = await service.chart(scope, period, EN)
        assert again == first and service.renders == 1
        # Another language is another image.
        spanish = await service.chart(scope, period, ES)
        assert spanish != first and service.renders == 2
        # A new equity point: a fresh render, with a different picture.
        await s.equity(account, [(at(3), "1200")])
        newer = await service.chart(scope, period, EN)
        assert service.renders == 3 and newer != first
        assert await service.chart(scope, period, EN) == newer and service.renders == 3
        # A newly closed position changes a trade-based chart.
        trade_scope = Scope(instrument="EURUSD")
        await service.chart(trade_scope, period, EN)
        await s.position(account, profit="5", opened=at(4), closed=at(4, 2))
        await service.chart(trade_scope, period, EN)
        assert service.renders == 5
    finally:
        service.close()


async def test_concurrent_requests_share_one_render(sqlite_db):
    s = Seeder(sqlite_db)
    account = await s.account(None)
    await s.equity(account, [(at(1), "1000"), (at(2), "1100")])
    service = AnalyticsService(sqlite_db)
    try:
        period = parse_period("2026-03", at(20))
        results = await asyncio.gather(*(service.chart(Scope(), period, EN) for _ in range(5)))
    finally:
        service.close()
    assert service.renders == 1 and len(set(results)) == 1


async def test_cache_is_bounded(sqlite_db):
    service = AnalyticsService(sqlite_db, cache_size=2)
    try:
        for spec in ("2026-01", "2026-02", "2026-03"):
            await service.chart(Scope(), parse_period(spec, at(20)), EN)
        await service.chart(Scope(), parse_period("2026-01", at(20)), EN)  # evicted: rendered again
    finally:
        service.close()
    assert service.renders == 4


async def test_a_failed_render_is_not_cached(sqlite_db, monkeypatch):
    import engine.analytics.service as service_module

    service = AnalyticsService(sqlite_db)
    calls = 0
    original = service_module.chart_png

    def flaky(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(service_module, "chart_png", flaky)
    period = parse_period("7d", at(10))
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            await service.chart(Scope(), period, EN)
        decode(await service.chart(Scope(), period, EN))
    finally:
        service.close()
    assert service.renders == 1


def test_chart_png_for_a_trade_based_scope():
    loaded = data([trade("10", opened=at(1), closed=at(1, 4)), trade("-4", opened=at(2), closed=at(2, 1))])
    period = parse_period("2026-03", at(20))
    png = chart_png(loaded, period, EN, equity_based=False)
    decode(png)
    assert len(build_curve(loaded, at(1), equity_based=False)) == 3


async def test_a_cancelled_render_does_not_strand_the_others(sqlite_db, monkeypatch):
    import engine.analytics.service as service_module

    original = service_module.chart_png
    started = threading.Event()

    def slow(*args, **kwargs):
        started.set()
        time.sleep(0.2)
        return original(*args, **kwargs)

    monkeypatch.setattr(service_module, "chart_png", slow)
    service = AnalyticsService(sqlite_db)
    period = parse_period("7d", at(10))
    try:
        leader = asyncio.create_task(service.chart(Scope(), period, EN))
        while not started.is_set():
            await asyncio.sleep(0.01)
        follower = asyncio.create_task(service.chart(Scope(), period, EN))
        await asyncio.sleep(0.01)
        leader.cancel()
        decode(await follower)
        with pytest.raises(asyncio.CancelledError):
            await leader
    finally:
        service.close()
    assert service.renders == 1


def test_starting_the_product_loads_no_chart_code():
    """numpy and matplotlib (about 80 MB of every instance) load with the first chart, not at start."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, tradebot.runtime, bot.app; print(sorted({'numpy', 'matplotlib'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
