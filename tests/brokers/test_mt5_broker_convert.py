"""The float/Decimal edge, request building and retcode classes of the MT5 broker (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mt5sim
from engine.brokers import mt5_convert as cv
from engine.brokers.base import FillingMode, OrderRequest, OrderType, Side, SubmitStatus


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=5))
def test_prices_survive_the_float_round_trip_exactly(units: int, digits: int) -> None:
    price = Decimal(units).scaleb(-digits)
    assert cv.dec(float(price), digits) == price
    assert cv.dec(float(price), digits).as_tuple().exponent == -digits


def test_dec_examples() -> None:
    assert str(cv.dec(1.10005, 5)) == "1.10005"
    assert str(cv.dec(0.1 + 0.2, 2)) == "0.30"
    assert str(cv.dec(150.0, 3)) == "150.000"
    assert str(cv.plain(100000.0)) == "100000" and str(cv.plain(0.6666666666666666)) == "0.6666666666666666"
    assert cv.step_digits(0.01) == 2 and cv.step_digits(Decimal("0.1")) == 1 and cv.step_digits(1.0) == 0


@pytest.mark.parametrize(
    ("codes", "status"),
    [
        ((10008, 10009, 10010), SubmitStatus.ACCEPTED),
        ((10004, 10020, 10021, 10006), SubmitStatus.RETRY),
        ((10011, 10012, 10023, 10028, 10031, 99999), SubmitStatus.UNKNOWN),
        (
            (
                10013,
                10014,
                10015,
                10016,
                10017,
                10018,
                10019,
                10022,
                10024,
                10030,
                10033,
                10034,
                10036,
                10044,
            ),
            SubmitStatus.REFUSED,
        ),
    ],
)
def test_retcode_classes(codes: tuple[int, ...], status: SubmitStatus) -> None:
    for code in codes:
        assert cv.classify(code)[0] is status, code


def test_requests_are_built_from_the_order_as_given() -> None:
    k = cv.K(mt5sim)
    expires = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
    req = OrderRequest(
        "tb-x", "EURUSD", Side.SELL, OrderType.STOP, Decimal("0.30"), Decimal("1.09995"), Decimal("1.10500"),
        Decimal("1.09000"), FillingMode.RETURN, expires_at=expires, deviation_points=15,
    )  # fmt: skip
    built = cv.build_order_request(req, k, 20260501, offset=7200)
    assert built == {
        "action": 5, "symbol": "EURUSD", "volume": 0.3, "type": 5, "price": 1.09995, "sl": 1.105, "tp": 1.09,
        "deviation": 15, "magic": 20260501, "comment": "tb-x", "type_time": 2, "type_filling": 2,
        "expiration": int(expires.timestamp()) + 7200,
    }  # fmt: skip
    assert all(type(v) in (int, float, str) for v in built.values())  # plain literals, bridge-safe
    market = cv.build_order_request(
        OrderRequest("tb-y", "EURUSD", Side.BUY, OrderType.MARKET, Decimal("1"), Decimal("1.1"), Decimal(0),
                     Decimal(0), FillingMode.FOK, expires_at=expires),
        k, 7,
    )  # fmt: skip
    assert (market["action"], market["type"], market["type_time"], market["type_filling"]) == (1, 0, 0, 0)
    assert "expiration" not in market


def test_constants_fall_back_to_numbers_when_a_module_lacks_them() -> None:
    k = cv.K(SimpleNamespace(TRADE_ACTION_DEAL=1))
    assert (k.TRADE_ACTION_DEAL, k.ORDER_FILLING_RETURN, k.ORDER_STATE_EXPIRED) == (1, 2, 6)
    with pytest.raises(AttributeError):
        _ = k.NOT_A_CONSTANT


@pytest.mark.parametrize(
    ("cid", "ok"),
    [("tb-" + "a" * 22, True), ("tb-" + "a" * 24, True), ("tb-" + "a" * 25, False), ("ca-1:500000001", True),
     ("-leading", False), ("tb x", False), ("tb-é", False), ("", False)],
)  # fmt: skip
def test_client_id_rules(cid: str, ok: bool) -> None:
    assert (cv.check_client_id(cid) is None) is ok


def test_client_id_comes_from_our_comments_only() -> None:
    assert cv.client_id_of("tb-1", 7, 7) == "tb-1"
    assert cv.client_id_of("tb-1", 8, 7) is None  # another expert's order
    assert cv.client_id_of("[sl 1.09500]", 7, 7) is None  # a server-made comment
    assert cv.client_id_of("", 7, 7) is None


def test_server_time_offset_is_removed_from_record_times() -> None:
    edge = cv.Edge(cv.K(mt5sim), magic=7, money_digits=0, offset=3 * 3600)
    deal = SimpleNamespace(
        ticket=1, order=2, time_msc=1_778_068_800_000 + 3 * 3600_000, type=1, entry=1, magic=7, position_id=3,
        reason=4, volume=0.1, price=150.123, commission=0.0, swap=0.0, profit=-1234.0, symbol="USDJPY",
        comment="[sl 150.123]",
    )  # fmt: skip
    mapped = cv.deal_from_record(deal, edge, 3, 2)
    assert mapped is not None
    assert mapped.time == datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
    assert (mapped.side, mapped.entry, mapped.reason, mapped.profit) == (
        Side.SELL,
        "out",
        "sl",
        Decimal("-1234"),
    )
    assert (
        cv.deal_from_record(SimpleNamespace(**{**vars(deal), "type": 2}), edge, 3, 2) is None
    )  # a balance deal
