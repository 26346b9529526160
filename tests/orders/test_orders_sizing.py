"""Order sizing, rounding and volume limits, with numbers worked out by hand."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from engine.brokers.base import FillingMode, OrderType, Side
from engine.execution.orders import (
    OrderRules,
    RefusalCode,
    round_to_step,
)
from engine.risk.market_hours import parse_market_hours
from tests.support.orders import SATURDAY, account, build, built, refused, signal
from tests.support.symbols import BTCUSD, EURUSD, US500, USDJPY, XAUUSD, with_spec

BUY, SELL = Side.BUY, Side.SELL
LIMIT, STOP = OrderType.LIMIT, OrderType.STOP


# --- sizing -------------------------------------------------------------------------------------


def test_eurusd_buy_market_at_ask_sizes_half_a_lot() -> None:
    # ask 1.10012, SL 1.09812 -> 200 points; 10000 * 1% / (200 * 1.0) = 0.5 lots.
    order = built(build(signal(BUY, "1.09812", "1.10400")))
    req = order.request
    assert (req.side, req.order_type, req.symbol) == (BUY, OrderType.MARKET, "EURUSD")
    assert req.price == D("1.10012")
    assert req.volume == D("0.5")
    assert (req.sl, req.tp) == (D("1.09812"), D("1.10400"))
    assert req.expires_at is None
    assert req.client_order_id == "appr-1"
    assert req.filling is FillingMode.FOK
    assert req.deviation_points == 10
    assert order.stop_distance_points == 200
    assert order.stop_distance_ticks == 200
    assert order.tp_distance_points == 388
    assert order.risk_budget == 100
    assert order.risk_amount == 100
    assert order.rr == D("1.94")
    assert order.capped_by is None


def test_sell_market_prices_at_bid() -> None:
    # bid 1.10000, SL 1.10250 -> 250 points -> 100 / 250 = 0.4 lots; TP 500 points -> R:R 2.
    order = built(build(signal(SELL, "1.10250", "1.09500")))
    assert order.request.price == D("1.10000")
    assert order.request.volume == D("0.4")
    assert order.stop_distance_points == 250
    assert order.rr == 2
    assert order.risk_amount == 100


def test_volume_is_floored_to_the_step() -> None:
    # 300 points: 100 / 300 = 0.333.. -> 0.33 lots, risking 99.
    order = built(build(signal(BUY, "1.09712", "1.10600")))
    assert order.request.volume == D("0.33")
    assert order.risk_amount == D("99")


def test_gold_two_digits() -> None:
    # 10.00 below ask = 1000 ticks of 1.0 -> 1000 per lot; 50000 * 2% = 1000 -> 1 lot. R:R exactly 1.5.
    sig = signal(BUY, "2340.25", "2365.25", risk="2")
    order = built(build(sig, spec=XAUUSD, bid="2349.75", ask="2350.25", acct=account("50000")))
    assert order.request.volume == 1
    assert order.stop_distance_ticks == 1000
    assert order.rr == D("1.5")
    assert order.risk_amount == 1000


def test_index_tick_size_differs_from_point() -> None:
    # tick 0.25, point 0.01. SL 4980.10 rounds up (toward the price) to 4980.25: 20.00 below the ask
    # = 80 ticks = 2000 points; 80 * 0.25 = 20 per lot; 100 / 20 = 5 lots. TP 5040.30 -> 5040.25.
    order = built(build(signal(BUY, "4980.10", "5040.30"), spec=US500, bid="5000.00", ask="5000.25"))
    req = order.request
    assert (req.sl, req.tp, req.price) == (D("4980.25"), D("5040.25"), D("5000.25"))
    assert order.stop_distance_ticks == 80
    assert order.stop_distance_points == 2000
    assert req.volume == 5
    assert order.rr == 2
    assert order.risk_amount == 100


def test_index_stops_level_in_points_not_ticks() -> None:
    spec = with_spec(US500, stops_level=50)  # 0.50
    result = refused(build(signal(BUY, "4999.75", "5010.00"), spec=spec, bid="5000.00", ask="5000.25"))
    assert result.code is RefusalCode.MIN_STOP_DISTANCE
    assert result.details["distance_points"] == "25"
    assert result.details["required_points"] == "50"


def test_jpy_three_digits() -> None:
    # sell at bid 156.500, SL 157.000 = 500 ticks * 0.64 = 320 per lot; 100 / 320 = 0.3125 -> 0.31.
    sig = signal(SELL, "157.000", "155.500")
    order = built(build(sig, spec=USDJPY, bid="156.500", ask="156.512"))
    assert order.request.volume == D("0.31")
    assert order.risk_amount == D("99.2")
    assert order.rr == 2


def test_crypto_uses_the_only_filling_mode_it_allows() -> None:
    rules = OrderRules(market_hours=parse_market_hours("BTCUSD=24/7"))
    sig = signal(BUY, "59000.00", "62000.00")
    order = built(build(sig, spec=BTCUSD, bid="59990.00", ask="60000.00", rules=rules, now=SATURDAY))
    # 1000.00 = 100000 ticks * 0.01 = 1000 per lot; 100 / 1000 = 0.1 lot.
    assert order.request.volume == D("0.1")
    assert order.request.filling is FillingMode.IOC


# --- rounding -------------------------------------------------------------------------------------


def test_buy_levels_round_toward_the_price() -> None:
    order = built(build(signal(BUY, "1.098125", "1.104009")))
    assert (order.request.sl, order.request.tp) == (D("1.09813"), D("1.10400"))


def test_sell_levels_round_toward_the_price() -> None:
    order = built(build(signal(SELL, "1.102507", "1.094993")))
    assert (order.request.sl, order.request.tp) == (D("1.10250"), D("1.09500"))


@pytest.mark.parametrize(("entry", "expected"), [("1.095005", "1.09501"), ("1.095004", "1.09500")])
def test_pending_entry_rounds_to_nearest_tick(entry: str, expected: str) -> None:
    order = built(build(signal(BUY, "1.09000", "1.11000", order_type=LIMIT, entry=entry)))
    assert order.request.price == D(expected)


def test_off_grid_quotes_round_to_the_worse_price() -> None:
    buy = built(build(signal(BUY, "1.09812", "1.10400"), bid="1.100009", ask="1.100121"))
    assert buy.request.price == D("1.10013")
    sell = built(build(signal(SELL, "1.10250", "1.09500"), bid="1.100009", ask="1.100121"))
    assert sell.request.price == D("1.10000")


def test_round_to_step() -> None:
    assert round_to_step(D("1.23"), D("0.25"), "nearest") == D("1.25")
    assert round_to_step(D("1.125"), D("0.25"), "nearest") == D("1.25")  # half up
    assert round_to_step(D("1.1249"), D("0.25"), "nearest") == D("1.00")
    assert round_to_step(D("1.01"), D("0.25"), "up") == D("1.25")
    assert round_to_step(D("1.24"), D("0.25"), "down") == D("1.00")
    assert round_to_step(D("1.25"), D("0.25"), "up") == D("1.25")


# --- volume limits --------------------------------------------------------------------------------


def test_volume_below_minimum_is_refused_not_bumped() -> None:
    # 199 * 1% = 1.99; 200 points -> 0.00995 lots < 0.01 (0.01 would risk 2.00).
    result = refused(build(signal(BUY, "1.09812", "1.10400"), acct=account("199")))
    assert result.code is RefusalCode.VOLUME_BELOW_MIN
    assert "0.01" in result.message and "2.00" in result.message
    assert result.details["risk_budget"] == "1.99"


def test_smallest_volume_when_budget_allows() -> None:
    order = built(build(signal(BUY, "1.09812", "1.10400"), acct=account("399")))
    assert order.request.volume == D("0.01")
    assert order.risk_amount == 2


def test_account_max_volume_caps_down() -> None:
    order = built(build(signal(BUY, "1.09812", "1.10400"), rules=OrderRules(max_volume=D("0.3"))))
    assert order.request.volume == D("0.3")
    assert order.capped_by == "max_volume"
    assert order.risk_amount == 60


def test_symbol_volume_max_caps_down() -> None:
    spec = with_spec(EURUSD, volume_max=D("0.2"))
    order = built(build(signal(BUY, "1.09812", "1.10400"), spec=spec, rules=OrderRules(max_volume=D("0.3"))))
    assert (order.request.volume, order.capped_by) == (D("0.2"), "volume_max")


def test_max_volume_is_floored_to_the_step() -> None:
    order = built(build(signal(BUY, "1.09812", "1.10400"), rules=OrderRules(max_volume=D("0.019"))))
    assert order.request.volume == D("0.01")


def test_max_volume_below_the_minimum_is_refused() -> None:
    result = refused(build(signal(BUY, "1.09812", "1.10400"), rules=OrderRules(max_volume=D("0.005"))))
    assert result.code is RefusalCode.MAX_VOLUME
    assert result.details["limit_name"] == "max_volume"
