"""The simulated terminal looks like the MetaTrader5 package: names, shapes, errors, symbols, feed."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import mt5sim
from mt5sim import control, feed
from mt5sim.specs import market_open
from tests.support.mt5 import LOGIN, PASSWORD, SERVER

NY = ZoneInfo("America/New_York")


@pytest.fixture
def session(account: int) -> object:
    assert mt5sim.initialize(login=account, password=PASSWORD, server=SERVER)
    yield mt5sim
    mt5sim.shutdown()


def test_constants_have_the_real_values() -> None:
    assert (mt5sim.TRADE_ACTION_DEAL, mt5sim.TRADE_ACTION_PENDING, mt5sim.TRADE_ACTION_REMOVE) == (1, 5, 8)
    assert (mt5sim.ORDER_TYPE_BUY_LIMIT, mt5sim.ORDER_TYPE_SELL_STOP) == (2, 5)
    assert (mt5sim.ORDER_FILLING_FOK, mt5sim.ORDER_FILLING_IOC, mt5sim.ORDER_FILLING_RETURN) == (0, 1, 2)
    assert (mt5sim.ORDER_TIME_GTC, mt5sim.ORDER_TIME_SPECIFIED) == (0, 2)
    assert (mt5sim.TRADE_RETCODE_REQUOTE, mt5sim.TRADE_RETCODE_DONE, mt5sim.TRADE_RETCODE_NO_MONEY) == (
        10004,
        10009,
        10019,
    )
    assert (mt5sim.DEAL_ENTRY_OUT, mt5sim.DEAL_REASON_SL, mt5sim.DEAL_REASON_TP) == (1, 4, 5)
    assert (mt5sim.POSITION_TYPE_SELL, mt5sim.RES_E_INTERNAL_FAIL_TIMEOUT) == (1, -10005)
    assert not hasattr(mt5sim, "SYMBOL_FILLING_FOK")  # the real package does not export it either
    assert mt5sim.MULTI_ACCOUNT is True


def test_records_have_the_real_field_order(session: object) -> None:
    info = mt5sim.account_info()
    assert info._fields[:12] == (
        "login", "trade_mode", "leverage", "limit_orders", "margin_so_mode", "trade_allowed",
        "trade_expert", "margin_mode", "currency_digits", "fifo_close", "balance", "credit",
    )  # fmt: skip
    assert info._fields[-4:] == ("name", "server", "currency", "company")
    assert (info.login, info.balance, info.margin_mode, info.currency) == (LOGIN, 10000.0, 2, "USD")
    sym = mt5sim.symbol_info("EURUSD")
    assert len(sym._fields) == 96 and sym._fields[:4] == ("custom", "chart_mode", "select", "visible")
    assert sym._fields[-3:] == ("name", "page", "path")
    tick = mt5sim.symbol_info_tick("EURUSD")
    assert tick._fields == ("time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real")
    assert isinstance(tick.bid, float)
    assert mt5sim.terminal_info()._fields[:3] == ("community_account", "community_connection", "connected")
    assert list(mt5sim.records.TradeDeal._fields[:6]) == [
        "ticket",
        "order",
        "time",
        "time_msc",
        "type",
        "entry",
    ]
    assert mt5sim.records.OrderSendResult._fields == (
        "retcode", "deal", "order", "volume", "price", "bid", "ask", "comment", "request_id",
        "retcode_external", "request",
    )  # fmt: skip
    assert mt5sim.records.TradePosition._fields[6:9] == ("magic", "identifier", "reason")


def test_login_and_errors(account: int) -> None:
    mt5sim.shutdown()
    assert mt5sim.account_info() is None
    assert mt5sim.last_error() == (-10004, "No IPC connection")
    assert not mt5sim.initialize(login=account, password="nope", server=SERVER)
    assert mt5sim.last_error()[0] == -6
    assert not mt5sim.initialize(login=account, password=PASSWORD, server="Other-Server")
    assert mt5sim.initialize()  # connected, not logged in
    assert mt5sim.symbol_info_tick("EURUSD") is not None  # market data works without an account
    assert mt5sim.account_info() is None
    assert mt5sim.login(account, password=PASSWORD, server=SERVER)
    assert mt5sim.account_info().login == account
    assert mt5sim.symbol_info("NOPE") is None and mt5sim.last_error()[0] == -4
    mt5sim.shutdown()


def test_comment_length_and_argument_types_are_checked_like_the_real_library(session: object) -> None:
    base = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "type_filling": 1, "magic": 1}
    assert mt5sim.order_send({**base, "comment": "x" * 32}) is None
    assert mt5sim.last_error() == (-2, 'Invalid "comment" argument')
    assert mt5sim.order_send({**base, "volume": Decimal("0.1")}) is None
    assert mt5sim.last_error() == (-2, 'Invalid "volume" argument')
    assert mt5sim.order_send({**base, "colour": "red"}) is None
    result = mt5sim.order_send({**base, "comment": "x" * 31})
    assert result.retcode == 10009
    [pos] = mt5sim.positions_get()
    assert (pos.comment, pos.magic) == ("x" * 31, 1)
    assert mt5sim.history_deals_get(ticket=result.order)[0].comment == "x" * 31


def test_default_symbols_are_realistic(session: object) -> None:
    eur, jpy, gold = (mt5sim.symbol_info(s) for s in ("EURUSD", "USDJPY", "XAUUSD"))
    assert (eur.digits, eur.point, eur.trade_contract_size, eur.filling_mode) == (5, 1e-05, 100000.0, 3)
    assert (jpy.digits, jpy.currency_profit) == (3, "JPY")
    assert (gold.digits, gold.trade_exemode, gold.filling_mode) == (2, 1, 1)
    assert eur.trade_stops_level == 10 and eur.trade_freeze_level == 5
    assert abs(jpy.trade_tick_value - 100 / mt5sim.symbol_info_tick("USDJPY").ask) < 1e-9
    assert not mt5sim.symbol_info("BTCUSD").select
    assert mt5sim.symbol_info_tick("BTCUSD") is None  # not in Market Watch
    assert (
        mt5sim.order_send(
            {"action": 1, "symbol": "BTCUSD", "volume": 0.01, "type": 0, "type_filling": 1}
        ).retcode
        == 10021
    )
    assert mt5sim.symbol_select("BTCUSD", True)
    btc, idx = mt5sim.symbol_info("BTCUSD"), mt5sim.symbol_info("US500")
    assert (btc.select, btc.volume_step, btc.trade_contract_size) == (True, 0.01, 1.0)
    assert (idx.trade_tick_size, idx.volume_min, idx.volume_step) == (0.25, 0.1, 0.1)
    assert mt5sim.symbols_total() == 6
    assert [s.name for s in mt5sim.symbols_get("*USD*,!XAU*,!US500,!BTC*")] == ["EURUSD", "GBPUSD", "USDJPY"]


def test_order_check_passes_with_retcode_zero_and_done(session: object) -> None:
    control.set_price("EURUSD", "1.10000", "1.10008")
    ok = mt5sim.order_check({"action": 1, "symbol": "EURUSD", "volume": 1.0, "type": 0, "type_filling": 0})
    assert (ok.retcode, ok.comment) == (0, "Done")
    assert ok.margin == pytest.approx(1100.0, abs=0.01)  # 100000 EUR / 100 at 1.10
    bad = mt5sim.order_check({"action": 1, "symbol": "EURUSD", "volume": 1.005, "type": 0, "type_filling": 0})
    assert bad.retcode == 10014
    assert mt5sim.positions_get() == ()


@pytest.mark.parametrize(
    ("local", "session_kind", "is_open"),
    [
        (datetime(2026, 5, 8, 16, 59, tzinfo=NY), "fx", True),  # Friday
        (datetime(2026, 5, 8, 17, 0, tzinfo=NY), "fx", False),
        (datetime(2026, 5, 9, 12, 0, tzinfo=NY), "fx", False),  # Saturday
        (datetime(2026, 5, 10, 16, 59, tzinfo=NY), "fx", False),  # Sunday
        (datetime(2026, 5, 10, 17, 0, tzinfo=NY), "fx", True),
        (datetime(2026, 5, 12, 17, 30, tzinfo=NY), "fx", True),  # Tuesday
        (datetime(2026, 5, 12, 17, 30, tzinfo=NY), "index", False),  # daily break
        (datetime(2026, 5, 12, 18, 0, tzinfo=NY), "index", True),
        (datetime(2026, 5, 9, 12, 0, tzinfo=NY), "crypto", True),
        (datetime(2026, 1, 9, 22, 30, tzinfo=UTC), "fx", False),  # 17:30 New York in winter (UTC-5)
    ],
)
def test_market_hours(local: datetime, session_kind: str, is_open: bool) -> None:
    assert market_open(session_kind, local) is is_open


def test_market_closed_retcode_and_the_ignore_switch(session: object) -> None:
    control.ignore_market_hours(False)
    control.set_time(datetime(2026, 5, 9, 12, 0, tzinfo=NY))
    mt5sim.symbol_select("BTCUSD")
    eur = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "type_filling": 1}
    assert mt5sim.order_send(eur).retcode == 10018
    assert mt5sim.order_send({**eur, "symbol": "BTCUSD"}).retcode == 10009  # crypto trades at weekends
    control.ignore_market_hours(True)
    assert mt5sim.order_send(eur).retcode == 10009


def test_feed_is_deterministic_on_grid_and_moves() -> None:
    at = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
    bid, ask = feed.quote("EURUSD", at, seed=7)
    assert (bid, ask) == feed.quote("EURUSD", at, seed=7)
    assert ask - bid == Decimal("0.00008") and bid.as_tuple().exponent == -5
    assert feed.quote("EURUSD", at, seed=8) != (bid, ask)
    later = [feed.quote("EURUSD", at + timedelta(seconds=s), seed=7)[0] for s in range(0, 600, 30)]
    assert len(set(later)) > 5
    assert all(abs(b / Decimal("1.085") - 1) < Decimal("0.02") for b in later)
    idx_bid, idx_ask = feed.quote("US500", at, seed=7)
    assert idx_bid % Decimal("0.25") == 0 and idx_ask - idx_bid == Decimal("0.50")
    with pytest.raises(ValueError, match="timezone-aware"):
        feed.quote("EURUSD", datetime(2026, 5, 6, 12, 0))
    code = (
        "from datetime import datetime, UTC; from mt5sim import feed; "
        "print(feed.quote('EURUSD', datetime(2026, 5, 6, 12, 0, tzinfo=UTC), seed=7))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert out.stdout.strip() == repr((bid, ask))


def test_terminal_prices_follow_the_feed_until_pushed(session: object) -> None:
    control.set_time(datetime(2026, 5, 6, 12, 0, tzinfo=UTC))
    tick = mt5sim.symbol_info_tick("EURUSD")
    assert (Decimal(str(tick.bid)), Decimal(str(tick.ask))) == feed.quote(
        "EURUSD", datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
    )
    control.set_price("EURUSD", "1.23456", hold=False)
    assert mt5sim.symbol_info_tick("EURUSD").bid == 1.23456
    control.advance_time(3600)
    moved = Decimal(str(mt5sim.symbol_info_tick("EURUSD").bid))
    assert moved != Decimal("1.23456") and abs(moved - Decimal("1.23456")) < Decimal("0.01")
    control.clear_price("EURUSD")
    assert control.quote("EURUSD") == feed.quote("EURUSD", control.now())
