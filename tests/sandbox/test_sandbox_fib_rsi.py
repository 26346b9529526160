"""Issue 15: the sandbox runs the built-in Fib-RSI strategy on the simulated terminal's accelerated
bars: a setup it finds is stored as a signal of the producer ``strategy-fib-rsi`` and reaches a
subscriber's chat; its high and low are bars the terminal serves; paper accounts price from the
same terminal; the demo producer keeps to the other instruments, and the page and the banner say
which signal came from which."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

import mt5sim
from engine.store.models import Producer, Signal
from sandbox.config import SandboxError, SandboxOptions, sandbox_settings
from sandbox.mt5 import DATA_LOGIN
from sandbox.strategy import demo_instruments
from tests.support.ports import free_port
from tests.support.waiting import eventually
from tradebot.sandbox import Sandbox

BEN = 7000101
SYMBOLS = {"XAUUSD", "EURUSD"}
# A deadline, not a wait. At 0.5 s a bar the seeded series gives the first setup after a median
# of 10 s and at most about 100 s from any start (bench/sandbox_setups.py); the rest is slack for
# a loaded two-core machine, where a stalled poll can let a setup pass unposted.
FIRST_SETUP_DEADLINE = 300.0
NOTE = re.compile(
    r"Fib-RSI H1 (long|short): high (\S+) \((\d{4}-\d\d-\d\d \d\d:\d\d)\), low (\S+) \((\d{4}-\d\d-\d\d \d\d:\d\d)\) UTC"
)


async def fib_rsi_signals(sandbox: Sandbox) -> list[Signal]:
    assert sandbox.runtime is not None
    async with sandbox.runtime.engine.db.session() as session:
        found = await session.scalars(
            select(Signal)
            .join(Producer, Producer.id == Signal.producer_id)
            .where(Producer.name == "strategy-fib-rsi")
            .order_by(Signal.received_at)
        )
        return list(found.all())


def terminal_bar(sandbox: Sandbox, symbol: str, label: str) -> Any:
    """The closed H1 bar the simulated terminal serves at ``label`` (its open time, UTC)."""
    assert sandbox.terminal is not None
    login, password, server = sandbox.terminal.data_login
    assert mt5sim.initialize(str(sandbox.options.mt5sim_path), login=login, password=password, server=server)
    try:
        rates = mt5sim.copy_rates_from_pos(symbol, mt5sim.TIMEFRAME_H1, 1, 2000)
    finally:
        mt5sim.shutdown()
    wanted = int(datetime.strptime(label, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp())
    (row,) = [r for r in rates if int(r["time"]) == wanted]
    return row


async def test_the_sandbox_shows_fib_rsi_signals_from_the_terminals_bars(tmp_path: Path) -> None:
    options = SandboxOptions(
        broker="paper", port=free_port(), data_dir=tmp_path / "data",
        signal_every=(600.0, 600.0), first_signal_after=600.0, bar_seconds=0.5,
    )  # fmt: skip
    sandbox = Sandbox(options, configure_logging=False)
    await sandbox.start()
    try:
        assert sandbox.runtime is not None and sandbox.client is not None and sandbox.producer is not None
        settings = sandbox.runtime.settings
        assert settings.strategies == "fib-rsi:XAUUSD,EURUSD" and settings.mt5_login == DATA_LOGIN
        assert settings.strategy_poll_seconds == Decimal("0.125")  # four polls a bar
        market = sandbox.runtime.engine.paper_market
        assert not market.simulated and "MT5Sim-Demo" in market.description  # priced by the terminal
        assert not SYMBOLS & set(sandbox.producer.instruments)  # the demo keeps to the others
        assert "Fib-RSI:        XAUUSD, EURUSD" in sandbox.banner()
        assert "producer strategy-fib-rsi" in sandbox.banner()
        assert "Demo signals:   GBPUSD, USDJPY, US500, BTCUSD" in sandbox.banner()

        async def posted() -> list[Signal]:
            return await fib_rsi_signals(sandbox)

        signal = (await eventually(posted, FIRST_SETUP_DEADLINE, interval=0.25))[0]
        assert signal.instrument in SYMBOLS and signal.strategy == "fib-rsi"
        assert signal.order_type == "limit" and signal.external_id is not None
        assert re.fullmatch(
            rf"{signal.instrument}_H1_(long|short)_\d{{4}}-\d\d-\d\dT\d\d:\d\dZ", signal.external_id
        )

        # the setup's high and low are bars the terminal serves, and its stop follows from them as
        # the reference says (a setup is only posted at a bar closed after start: on a real-time
        # clock that could take hours; the accelerated one closes a bar every half second)
        assert signal.note is not None
        match = NOTE.search(signal.note)
        assert match, signal.note
        direction, high, high_at, low, low_at = match.groups()
        bar = await asyncio.to_thread(terminal_bar, sandbox, signal.instrument, high_at)
        assert bar["high"] == float(high)
        bar = await asyncio.to_thread(terminal_bar, sandbox, signal.instrument, low_at)
        assert bar["low"] == float(low)
        span = Decimal(high) - Decimal(low)
        stop = (
            Decimal(high) + Decimal("0.27") * span
            if direction == "short"
            else Decimal(low) - Decimal("0.27") * span
        )
        tick = Decimal("0.01") if signal.instrument == "XAUUSD" else Decimal("0.00001")
        assert abs(signal.sl - stop) < tick

        # it reaches a subscriber's chat
        async def in_bens_chat() -> list[dict[str, Any]]:
            assert sandbox.client is not None
            chat = await sandbox.client.messages(BEN)
            return [m for m in chat if "Strategy: fib-rsi" in m["text"] and signal.instrument in m["text"]]

        message = (await eventually(in_bens_chat, 30.0))[0]
        assert "Fib-RSI H1" in message["text"]

        # the page says where it came from
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{options.port}/sandbox/api/portfolio") as resp,
        ):
            shown = (await resp.json())["signals"]
        row = next(s for s in shown if s["id"] == signal.id)
        assert row["producer"] == "strategy-fib-rsi" and row["source"] == "Fib-RSI"
        assert row["strategy"] == "fib-rsi"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{options.port}/sandbox/api/world") as resp,
        ):
            world = await resp.json()
        assert world["producers"]["fib_rsi"] == {
            "producer": "strategy-fib-rsi",
            "symbols": ["XAUUSD", "EURUSD"],
            "bar_seconds": 0.5,
        }
        assert world["producers"]["demo"]["instruments"] == ["GBPUSD", "USDJPY", "US500", "BTCUSD"]
    finally:
        await sandbox.stop()


@pytest.mark.parametrize("seconds", [0.1, 0.0, 3601.0])
def test_a_bar_speed_out_of_range_is_refused(seconds: float) -> None:
    with pytest.raises(SandboxError, match="--bar-seconds"):
        SandboxOptions(bar_seconds=seconds)


@pytest.mark.parametrize(
    ("instruments", "strategies", "demo"),
    [
        ("GBPUSD,XAUUSD,BTCUSD", "fib-rsi:XAUUSD", ["GBPUSD", "BTCUSD"]),
        ("GBPUSD,USDJPY", "", ["GBPUSD", "USDJPY"]),  # no Fib-RSI symbol allowed: no strategy
    ],
)
def test_fib_rsi_keeps_to_the_allowed_instruments_and_the_demo_takes_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instruments: str, strategies: str, demo: list[str]
) -> None:
    monkeypatch.setenv("INSTRUMENTS", instruments)
    settings = sandbox_settings(
        SandboxOptions(data_dir=tmp_path / "data", bar_seconds=2.0),
        secret_key="k" * 64,
        bot_token="123:" + "a" * 35,
        telegram_api_url="http://127.0.0.1:1",
        admin_id=1,
        ops_chat_id=-1,
        data_login=(DATA_LOGIN, "data-password", "MT5Sim-Demo"),
    )
    assert settings.strategies == strategies
    assert settings.strategy_poll_seconds == Decimal("0.5") and settings.strategy_history_bars == 300
    assert (settings.mt5_login, settings.mt5_server) == (DATA_LOGIN, "MT5Sim-Demo")
    assert demo_instruments(settings.instruments) == demo


async def test_with_only_fib_rsi_instruments_there_is_no_demo_producer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTRUMENTS", "XAUUSD,EURUSD")
    options = SandboxOptions(port=free_port(), data_dir=tmp_path / "data", first_signal_after=0.2)
    sandbox = Sandbox(options, configure_logging=False)
    await sandbox.start()
    try:
        assert sandbox.producer is None and sandbox.demo_instruments == []
        assert sandbox.runtime is not None and sandbox.runtime.settings.strategies == "fib-rsi:XAUUSD,EURUSD"
        assert "Fib-RSI:" in sandbox.banner() and "Demo signals" not in sandbox.banner()
    finally:
        await sandbox.stop()
