"""The checks that refuse an order (placement, levels, distances, account, inputs, hours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from engine.brokers.base import FillingMode, OrderType, Side
from engine.execution.orders import (
    OrderRules,
    RefusalCode,
    SignalParams,
    build_order,
    choose_filling,
)
from engine.risk.market_hours import parse_market_hours
from tests.support.orders import SATURDAY, WEDNESDAY, account, build, built, refused, signal, tick
from tests.support.symbols import EURUSD, USDJPY, with_spec

BUY, SELL = Side.BUY, Side.SELL
LIMIT, STOP = OrderType.LIMIT, OrderType.STOP


# --- pending orders -------------------------------------------------------------------------------


def test_limit_order_uses_entry_and_expires_after_100_hours() -> None:
    order = built(build(signal(BUY, "1.09300", "1.10000", order_type=LIMIT, entry="1.09500")))
    req = order.request
    assert (req.order_type, req.price) == (LIMIT, D("1.09500"))
    assert req.expires_at == WEDNESDAY + timedelta(hours=100)
    assert req.volume == D("0.5")  # 200 points from the entry, not from the ask
    assert order.rr == D("2.5")


def test_expiry_follows_the_setting_and_is_utc() -> None:
    rules = OrderRules(order_expiry_hours=24)
    now = datetime(2024, 6, 5, 14, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    sig = signal(SELL, "1.10100", "1.09500", order_type=STOP, entry="1.09900")
    order = built(build(sig, rules=rules, now=now))
    assert order.request.expires_at == datetime(2024, 6, 6, 14, 0, tzinfo=UTC)
    assert order.request.expires_at.tzinfo is UTC


def _pending(side: Side, order_type: OrderType, entry: str) -> SignalParams:
    e = D(entry)
    sl, tp = (e - D("0.00200"), e + D("0.00400")) if side is BUY else (e + D("0.00200"), e - D("0.00400"))
    return signal(side, str(sl), str(tp), order_type=order_type, entry=entry)


@pytest.mark.parametrize(
    ("side", "order_type", "entry", "ok"),
    [
        (BUY, LIMIT, "1.09900", True),
        (BUY, LIMIT, "1.10012", False),  # at the ask
        (BUY, LIMIT, "1.10100", False),
        (BUY, STOP, "1.10100", True),
        (BUY, STOP, "1.10012", False),
        (BUY, STOP, "1.10006", False),  # inside the spread: below the ask
        (SELL, LIMIT, "1.10100", True),
        (SELL, LIMIT, "1.10000", False),  # at the bid
        (SELL, LIMIT, "1.09900", False),
        (SELL, STOP, "1.09900", True),
        (SELL, STOP, "1.10000", False),
        (SELL, STOP, "1.10006", False),  # above the bid
    ],
)
def test_pending_entry_must_be_on_the_right_side(
    side: Side, order_type: OrderType, entry: str, ok: bool
) -> None:
    result = build(_pending(side, order_type, entry))
    if ok:
        assert built(result).request.price == D(entry)
    else:
        refusal = refused(result)
        assert refusal.code is RefusalCode.ENTRY_WRONG_SIDE
        assert entry in refusal.message


def test_pending_entry_respects_stops_level() -> None:
    spec = with_spec(EURUSD, stops_level=20)
    too_close = refused(build(_pending(BUY, LIMIT, "1.09995"), spec=spec))  # 17 points below the ask
    assert too_close.code is RefusalCode.ENTRY_TOO_CLOSE
    assert too_close.details["distance_points"] == "17"
    assert built(build(_pending(BUY, LIMIT, "1.09992"), spec=spec)).request.price == D("1.09992")


def test_pending_entry_must_be_outside_the_freeze_level() -> None:
    spec = with_spec(EURUSD, freeze_level=17)
    assert refused(build(_pending(BUY, LIMIT, "1.09995"), spec=spec)).code is RefusalCode.ENTRY_TOO_CLOSE
    assert built(build(_pending(BUY, LIMIT, "1.09994"), spec=spec)).request.volume > 0


# --- levels and distances -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "sl", "tp", "leg"),
    [
        (BUY, "1.10100", "1.10400", "stop loss"),  # above the ask
        (BUY, "1.10005", "1.10400", "stop loss"),  # inside the spread: above the bid it closes at
        (BUY, "1.09812", "1.10010", "take profit"),  # below the ask
        (SELL, "1.10010", "1.09500", "stop loss"),  # below the ask it closes at
        (SELL, "1.10250", "1.10005", "take profit"),  # above the bid
    ],
)
def test_levels_on_the_wrong_side_are_refused(side: Side, sl: str, tp: str, leg: str) -> None:
    result = refused(build(signal(side, sl, tp)))
    assert result.code is RefusalCode.INVALID_LEVELS
    assert result.details["leg"] == leg


def test_stop_that_rounds_onto_the_entry_is_refused() -> None:
    sig = signal(BUY, "1.0949999", "1.10000", order_type=LIMIT, entry="1.09500")
    assert refused(build(sig, rules=OrderRules(min_stop_points=0))).code is RefusalCode.INVALID_LEVELS


def test_min_stop_points_measured_from_the_bid_for_a_buy() -> None:
    too_close = refused(build(signal(BUY, "1.09996", "1.10400")))  # 4 points below the bid
    assert too_close.code is RefusalCode.MIN_STOP_DISTANCE
    assert (too_close.details["distance_points"], too_close.details["required_points"]) == ("4", "5")
    assert "MIN_STOP_POINTS=5" in too_close.message
    order = built(build(signal(BUY, "1.09995", "1.10400")))  # exactly 5 points
    assert order.stop_distance_points == 17  # the risk is measured from the ask
    assert order.request.volume == D("5.88")  # 100 / 17 = 5.882..


def test_min_stop_distance_for_a_sell_is_from_the_ask() -> None:
    result = refused(build(signal(SELL, "1.10016", "1.09000")))  # 4 points above the ask
    assert result.code is RefusalCode.MIN_STOP_DISTANCE


def test_symbol_stops_level_wins_when_larger() -> None:
    spec = with_spec(EURUSD, stops_level=30)
    result = refused(build(signal(BUY, "1.09971", "1.10400"), spec=spec))
    assert result.code is RefusalCode.MIN_STOP_DISTANCE
    assert result.details["required_points"] == "30"
    assert built(build(signal(BUY, "1.09970", "1.10400"), spec=spec)).request.sl == D("1.09970")


def test_stop_inside_the_freeze_level_is_refused() -> None:
    spec = with_spec(EURUSD, freeze_level=40)
    assert refused(build(signal(BUY, "1.09960", "1.10400"), spec=spec)).code is RefusalCode.MIN_STOP_DISTANCE
    assert built(build(signal(BUY, "1.09959", "1.10400"), spec=spec)).request.sl == D("1.09959")


def test_pending_stop_distance_is_from_the_entry() -> None:
    sig = signal(BUY, "1.09496", "1.10000", order_type=LIMIT, entry="1.09500")
    assert refused(build(sig)).code is RefusalCode.MIN_STOP_DISTANCE


def test_take_profit_distance() -> None:
    rules = OrderRules(min_rr=D(0))
    too_close = refused(build(signal(BUY, "1.09812", "1.10016"), rules=rules))  # 4 points above the ask
    assert too_close.code is RefusalCode.MIN_TP_DISTANCE
    assert built(build(signal(BUY, "1.09812", "1.10017"), rules=rules)).request.tp == D("1.10017")


def test_min_rr_counts_the_spread() -> None:
    # risk 200 points from the ask; TP 299 points above the ask -> 1.495 < 1.5 (from the bid it would pass).
    result = refused(build(signal(BUY, "1.09812", "1.10311")))
    assert result.code is RefusalCode.MIN_RR
    assert "1.49" in result.message and "MIN_RR is 1.5" in result.message
    assert result.details["reward_points"] == "299"
    assert built(build(signal(BUY, "1.09812", "1.10312"))).rr == D("1.5")


def test_min_rr_setting() -> None:
    sig = signal(BUY, "1.09812", "1.10412")  # R:R 2
    assert refused(build(sig, rules=OrderRules(min_rr=D("2.5")))).code is RefusalCode.MIN_RR
    assert built(build(sig, rules=OrderRules(min_rr=D(2)))).rr == 2


# --- account, symbol, inputs ----------------------------------------------------------------------


def test_no_equity() -> None:
    assert refused(build(signal(), acct=account("0"))).code is RefusalCode.INSUFFICIENT_EQUITY


def test_no_free_margin() -> None:
    result = refused(build(signal(), acct=account("10000", free_margin="0")))
    assert result.code is RefusalCode.INSUFFICIENT_MARGIN


def test_symbol_not_tradable() -> None:
    result = refused(build(signal(), spec=with_spec(EURUSD, trade_allowed=False)))
    assert result.code is RefusalCode.SYMBOL_NOT_TRADABLE
    assert "EURUSD" in result.message


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ({FillingMode.FOK, FillingMode.IOC, FillingMode.RETURN}, FillingMode.FOK),
        ({FillingMode.IOC, FillingMode.RETURN}, FillingMode.IOC),
        ({FillingMode.RETURN}, FillingMode.RETURN),
        (set(), None),
    ],
)
def test_filling_preference(allowed: set[FillingMode], expected: FillingMode | None) -> None:
    assert choose_filling(frozenset(allowed)) is expected


def test_no_filling_mode() -> None:
    result = refused(build(signal(), spec=with_spec(EURUSD, filling_modes=frozenset())))
    assert result.code is RefusalCode.NO_FILLING_MODE


@pytest.mark.parametrize(
    "sig",
    [
        signal(BUY, "1.09300", "1.10000", order_type=LIMIT),  # no entry
        signal(BUY, "NaN", "1.10400"),
        signal(BUY, "-1", "1.10400"),
        signal(BUY, "1.09812", "Infinity"),
        signal(BUY, "1.09812", "1.10400", risk="0"),
        signal(BUY, "1.09812", "1.10400", risk="101"),
        signal(BUY, "1.09300", "1.10000", order_type=LIMIT, entry="0"),
    ],
)
def test_invalid_signal(sig: SignalParams) -> None:
    assert refused(build(sig)).code is RefusalCode.INVALID_SIGNAL


@pytest.mark.parametrize(
    "changes",
    [
        {"tick_value": D(0)},
        {"tick_size": D(0)},
        {"volume_step": D("-0.01")},
        {"volume_max": D("0.001")},
        {"stops_level": -1},
    ],
)
def test_broken_symbol_spec(changes: dict[str, object]) -> None:
    result = refused(build(signal(), spec=with_spec(EURUSD, **changes)))
    assert result.code is RefusalCode.SYMBOL_SPEC_INVALID


@pytest.mark.parametrize(("bid", "ask"), [("0", "1.10012"), ("1.10020", "1.10012"), ("NaN", "1.1")])
def test_no_usable_price(bid: str, ask: str) -> None:
    assert refused(build(signal(), bid=bid, ask=ask)).code is RefusalCode.NO_PRICE


# --- market hours -----------------------------------------------------------------------------------


def test_market_order_refused_while_closed() -> None:
    result = refused(build(signal(), now=SATURDAY))
    assert result.code is RefusalCode.MARKET_CLOSED
    assert result.details["opens_at"] == "2024-06-09T21:00:00+00:00"  # Sunday 17:00 EDT
    assert "America/New_York" in result.message


def test_market_closed_is_checked_before_sizing() -> None:
    assert refused(build(signal(), acct=account("1"), now=SATURDAY)).code is RefusalCode.MARKET_CLOSED


def test_pending_orders_are_gated_unless_allowed() -> None:
    sig = signal(BUY, "1.09300", "1.10000", order_type=LIMIT, entry="1.09500")
    assert refused(build(sig, now=SATURDAY)).code is RefusalCode.MARKET_CLOSED
    order = built(build(sig, now=SATURDAY, rules=OrderRules(pending_when_closed=True)))
    assert order.request.expires_at == SATURDAY + timedelta(hours=100)
    market = refused(build(signal(), now=SATURDAY, rules=OrderRules(pending_when_closed=True)))
    assert market.code is RefusalCode.MARKET_CLOSED


def test_symbol_override_opens_the_weekend() -> None:
    rules = OrderRules(market_hours=parse_market_hours("EURUSD=24/7"))
    assert built(build(signal(), rules=rules, now=SATURDAY)).request.volume == D("0.5")


# --- programming errors -----------------------------------------------------------------------------


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build(signal(), now=datetime(2024, 6, 5, 12))


def test_tick_for_another_symbol_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="tick is for USDJPY"):
        build_order(
            client_order_id="a",
            signal=signal(),
            account=account(),
            spec=EURUSD,
            tick=tick(USDJPY, "156.500", "156.512"),
            rules=OrderRules(),
            now=WEDNESDAY,
        )


def test_client_order_id_is_required() -> None:
    with pytest.raises(ValueError, match="client_order_id"):
        build_order(
            client_order_id="",
            signal=signal(),
            account=account(),
            spec=EURUSD,
            tick=tick(EURUSD, "1.10000", "1.10012"),
            rules=OrderRules(),
            now=WEDNESDAY,
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_rr": D(-1)},
        {"min_stop_points": -1},
        {"order_expiry_hours": 0},
        {"max_volume": D(0)},
        {"deviation_points": -5},
    ],
)
def test_rules_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OrderRules(**kwargs)  # type: ignore[arg-type]


def test_refusal_details_are_text() -> None:
    result = refused(build(signal(BUY, "1.09996", "1.10400")))
    assert all(isinstance(v, str) for v in result.details.values())
    assert result.code == "min_stop_distance"


@pytest.mark.parametrize("equity", ["NaN", "-5"])
def test_unusable_equity(equity: str) -> None:
    result = refused(build(signal(), acct=account(equity, free_margin="100")))
    assert result.code is RefusalCode.INSUFFICIENT_EQUITY
