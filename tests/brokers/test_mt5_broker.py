"""The MT5 broker against the simulated terminal: one scenario per retcode class."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.brokers.base import FillingMode, OrderType, Side, SubmitStatus
from engine.brokers.mt5 import MT5Broker, create_mt5_broker
from mt5sim import control
from tests.support.mt5 import LOGIN, PASSWORD, SERVER, order, pin


async def test_market_buy_is_accepted_with_exact_decimals(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    result = await broker.submit(order("tb-done-1"))
    assert result.status is SubmitStatus.ACCEPTED
    assert result.retcode == 10009
    assert result.price == Decimal("1.10008")
    assert result.filled_volume == Decimal("0.10")
    assert result.ticket is not None and result.position_ticket == result.ticket

    [pos] = await broker.positions()
    assert pos.client_order_id == "tb-done-1"
    assert pos.ticket == result.position_ticket
    assert (pos.side, pos.volume, pos.open_price) == (Side.BUY, Decimal("0.10"), Decimal("1.10008"))
    assert (pos.sl, pos.tp) == (Decimal("1.09500"), Decimal("1.10500"))
    assert pos.profit == Decimal("-0.80")  # 8 points of spread on 0.1 lot


async def test_partial_fill_reports_the_filled_volume(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    control.partial_fill("0.5")
    result = await broker.submit(order("tb-partial-1"))
    assert (result.status, result.retcode) == (SubmitStatus.ACCEPTED, 10010)
    assert result.filled_volume == Decimal("0.05")
    [pos] = await broker.positions()
    assert pos.volume == Decimal("0.05")
    found = await broker.find_by_client_id("tb-partial-1")
    assert found is not None and found.state == "filled" and found.filled_volume == Decimal("0.05")


async def test_requote_is_retry_with_fresh_price_and_nothing_executed(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    control.requote(1)
    result = await broker.submit(order("tb-requote-1"))
    assert (result.status, result.retcode) == (SubmitStatus.RETRY, 10004)
    assert result.price == Decimal("1.10008")
    assert await broker.positions() == []
    assert await broker.find_by_client_id("tb-requote-1") is None
    again = await broker.submit(order("tb-requote-1"))
    assert again.status is SubmitStatus.ACCEPTED


async def test_instant_execution_requotes_a_stale_price(broker: MT5Broker) -> None:
    pin("XAUUSD", "2350.00", "2350.25")
    stale = order(
        "tb-gold-1", symbol="XAUUSD", price="2349.00", sl="2340.00", tp="2360.00", filling=FillingMode.FOK
    )
    result = await broker.submit(stale)
    assert (result.status, result.retcode, result.price) == (SubmitStatus.RETRY, 10004, Decimal("2350.25"))
    fresh = order(
        "tb-gold-1", symbol="XAUUSD", price="2350.25", sl="2340.00", tp="2360.00", filling=FillingMode.FOK
    )
    assert (await broker.submit(fresh)).status is SubmitStatus.ACCEPTED


@pytest.mark.parametrize(
    ("setup", "kwargs", "retcode", "words"),
    [
        (None, {"sl": "1.09995"}, 10016, "invalid stops"),
        (None, {"volume": "0.001"}, 10014, "invalid volume"),
        (None, {"volume": "50"}, 10019, "not enough money"),
        (None, {"symbol": "XAUUSD", "price": "2350.25", "sl": "2340", "tp": "2360"}, 10030, "filling mode"),
        (lambda: control.set_symbol("EURUSD", trade_mode=0), {}, 10017, "trading is disabled"),
        (lambda: control.force_retcode(10024), {}, 10024, "too many requests"),
        (lambda: control.force_retcode(10033), {}, 10033, "limit"),
        (
            None,
            {"order_type": OrderType.LIMIT, "price": "1.10100", "filling": FillingMode.RETURN},
            10015,
            "invalid price",
        ),
        (
            None,
            {
                "order_type": OrderType.LIMIT,
                "price": "1.09000",
                "sl": "1.08500",
                "tp": "1.09500",
                "filling": FillingMode.RETURN,
                "expires_at": datetime(2020, 1, 1, tzinfo=UTC),
            },
            10022,
            "invalid expiration",
        ),
    ],
)
async def test_refusals_carry_the_retcode_and_a_readable_reason(
    broker: MT5Broker, setup: object, kwargs: dict[str, object], retcode: int, words: str
) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    pin("XAUUSD", "2350.00", "2350.25")
    if callable(setup):
        setup()
    result = await broker.submit(order("tb-refused-1", **kwargs))  # type: ignore[arg-type]
    assert (result.status, result.retcode) == (SubmitStatus.REFUSED, retcode)
    assert words in result.reason
    assert await broker.positions() == [] and await broker.pending_orders() == []


async def test_market_closed_is_refused(broker: MT5Broker) -> None:
    control.ignore_market_hours(False)
    control.set_time(datetime(2026, 5, 9, 12, 0, tzinfo=UTC))  # a Saturday
    result = await broker.submit(order("tb-weekend-1"))
    assert (result.status, result.retcode) == (SubmitStatus.REFUSED, 10018)
    assert "market is closed" in result.reason


async def test_bad_client_ids_and_unknown_symbols_are_refused_before_sending(broker: MT5Broker) -> None:
    too_long = await broker.submit(order("tb-" + "x" * 25))
    assert too_long.status is SubmitStatus.REFUSED and "longer than 27" in too_long.reason
    bad_chars = await broker.submit(order("tb id with spaces"))
    assert bad_chars.status is SubmitStatus.REFUSED and "characters" in bad_chars.reason
    unknown = await broker.submit(order("tb-unknown-1", symbol="NOPE"))
    assert unknown.status is SubmitStatus.REFUSED and "unknown symbol" in unknown.reason
    assert control.stats(LOGIN).get("order_send_calls", 0) == 0


async def test_timeout_after_execute_is_unknown_and_lookup_finds_exactly_one_position(
    broker: MT5Broker,
) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    control.timeout_after_execute()
    result = await broker.submit(order("tb-timeout-1"))
    assert result.status is SubmitStatus.UNKNOWN
    assert "-10005" in result.reason and "IPC timeout" in result.reason

    found = await broker.find_by_client_id("tb-timeout-1")
    assert found is not None
    assert (found.state, found.filled_volume, found.price) == ("filled", Decimal("0.10"), Decimal("1.10008"))
    positions = [p for p in await broker.positions() if p.client_order_id == "tb-timeout-1"]
    assert len(positions) == 1 and positions[0].ticket == found.position_ticket


@pytest.mark.parametrize(
    "inject",
    [
        lambda: control.none_result(),
        lambda: control.force_retcode(10012),
        lambda: control.force_retcode(10031),
        lambda: control.force_retcode(10011),
    ],
)
async def test_no_reply_or_timeout_codes_are_unknown(broker: MT5Broker, inject: object) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    assert callable(inject)
    inject()
    result = await broker.submit(order("tb-unknown-2"))
    assert result.status is SubmitStatus.UNKNOWN
    assert await broker.find_by_client_id("tb-unknown-2") is None  # these did not execute


async def test_disconnect_then_reconnect(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    assert await broker.symbol_spec("EURUSD") is not None
    control.disconnect()
    result = await broker.submit(order("tb-disc-1"))
    assert result.status is SubmitStatus.UNKNOWN and "-10004" in result.reason
    health = await broker.health()
    assert not health.connected
    control.reconnect()
    assert (await broker.health()).connected
    assert (await broker.submit(order("tb-disc-2"))).status is SubmitStatus.ACCEPTED


async def test_sl_and_tp_hits_close_with_deals_and_profit(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    pin("USDJPY", "150.000", "150.010")
    since = datetime.now(UTC) - timedelta(minutes=1)
    buy = await broker.submit(order("tb-tp-1"))
    sell = await broker.submit(
        order("tb-sl-1", Side.SELL, symbol="USDJPY", price="150.000", sl="150.500", tp="149.000")
    )
    assert buy.status is sell.status is SubmitStatus.ACCEPTED

    pin("EURUSD", "1.10500", "1.10508")  # TP touched
    pin("USDJPY", "150.590", "150.600")  # gapped through the SL: fills at the market
    assert await broker.positions() == []

    deals = {
        d.reason: d
        for d in await broker.deals(since, datetime.now(UTC) + timedelta(minutes=1))
        if d.entry == "out"
    }
    tp, sl = deals["tp"], deals["sl"]
    assert (tp.price, tp.profit, tp.position_ticket) == (
        Decimal("1.10500"),
        Decimal("49.20"),
        buy.position_ticket,
    )
    expected_sl = (
        (Decimal("150.000") - Decimal("150.600")) * Decimal("0.1") * 100000 / Decimal("150.600")
    ).quantize(Decimal("0.01"))
    assert (sl.price, sl.profit, sl.side) == (Decimal("150.600"), expected_sl, Side.BUY)
    assert tp.client_order_id is None  # closed by the server, not by an order of ours
    account = await broker.account()
    assert account.balance == Decimal("10000.00") + Decimal("49.20") + expected_sl


async def test_pending_order_expires(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    expires = datetime.now(UTC) + timedelta(seconds=60)
    limit = order(
        "tb-expire-1",
        order_type=OrderType.LIMIT,
        price="1.09000",
        sl="1.08500",
        tp="1.09500",
        filling=FillingMode.RETURN,
        expires_at=expires,
    )
    result = await broker.submit(limit)
    assert (result.status, result.retcode, result.filled_volume) == (SubmitStatus.ACCEPTED, 10008, Decimal(0))
    [pending] = await broker.pending_orders()
    assert pending.client_order_id == "tb-expire-1" and pending.expires_at == expires.replace(microsecond=0)
    assert pending.price == Decimal("1.09000") and pending.order_type is OrderType.LIMIT

    control.advance_time(120)
    assert await broker.pending_orders() == []
    found = await broker.find_by_client_id("tb-expire-1")
    assert found is not None and found.state == "cancelled"


async def test_pending_order_triggers_into_a_position(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    limit = order("tb-trig-1", order_type=OrderType.LIMIT, price="1.09900", sl="1.09400", tp="1.10400")
    placed = await broker.submit(limit)
    assert placed.status is SubmitStatus.ACCEPTED
    pin("EURUSD", "1.09880", "1.09888")
    [pos] = await broker.positions()
    assert (pos.client_order_id, pos.open_price, pos.ticket) == (
        "tb-trig-1",
        Decimal("1.09900"),
        placed.ticket,
    )
    found = await broker.find_by_client_id("tb-trig-1")
    assert found is not None and (found.state, found.position_ticket) == ("filled", pos.ticket)


async def test_cancel_order(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    limit = order("tb-cancel-1", order_type=OrderType.STOP, price="1.10500", sl="1.10000", tp="1.11000")
    placed = await broker.submit(limit)
    assert placed.ticket is not None
    cancelled = await broker.cancel_order(placed.ticket)
    assert (cancelled.status, cancelled.ticket) == (SubmitStatus.ACCEPTED, placed.ticket)
    assert await broker.pending_orders() == []
    found = await broker.find_by_client_id("tb-cancel-1")
    assert found is not None and found.state == "cancelled"
    again = await broker.cancel_order(placed.ticket)
    assert again.status is SubmitStatus.REFUSED


async def test_close_position_reprices_requotes_and_is_found_by_its_id(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    opened = await broker.submit(order("tb-open-9"))
    assert opened.position_ticket is not None
    pin("EURUSD", "1.10100", "1.10108")
    control.requote(2)
    closed = await broker.close_position(opened.position_ticket, "tb-close-9")
    assert closed.status is SubmitStatus.ACCEPTED and closed.price == Decimal("1.10100")
    assert control.stats(LOGIN)["order_send_calls"] == 4  # the open, two requotes, the close
    assert await broker.positions() == []
    found = await broker.find_by_client_id("tb-close-9")
    assert found is not None and (found.state, found.position_ticket) == ("filled", opened.position_ticket)
    [out] = [
        d
        for d in await broker.deals(datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC))
        if d.entry == "out"
    ]
    assert (out.client_order_id, out.profit, out.reason) == ("tb-close-9", Decimal("9.20"), "expert")
    again = await broker.close_position(opened.position_ticket, "tb-close-10")
    assert (again.status, again.retcode) == (SubmitStatus.REFUSED, 10036)


async def test_close_all_uses_one_id_per_position(broker: MT5Broker) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    for i in range(3):
        assert (await broker.submit(order(f"tb-many-{i}"))).status is SubmitStatus.ACCEPTED
    results = await broker.close_all("ca-1")
    assert [r.status for r in results] == [SubmitStatus.ACCEPTED] * 3
    assert await broker.positions() == []


async def test_decimal_exactness_across_digit_conventions(broker: MT5Broker) -> None:
    pin("USDJPY", "151.123", "151.133")
    pin("US500", "5200.25", "5200.75")
    control.set_symbol("BTCUSD", volume_step="0.01")
    jpy = await broker.submit(
        order("tb-jpy-1", symbol="USDJPY", volume="0.07", price="151.133", sl="150.000", tp="152.000")
    )
    idx = await broker.submit(
        order("tb-idx-1", symbol="US500", volume="0.3", price="5200.75", sl="5150.00", tp="5250.25")
    )
    assert (jpy.price, jpy.filled_volume) == (Decimal("151.133"), Decimal("0.07"))
    assert (idx.price, idx.filled_volume) == (Decimal("5200.75"), Decimal("0.3"))
    spec = await broker.symbol_spec("US500")
    assert spec is not None and (spec.tick_size, spec.digits, spec.volume_step) == (
        Decimal("0.25"),
        2,
        Decimal("0.1"),
    )
    btc = await broker.symbol_spec("BTCUSD")  # not in Market Watch until selected: the broker selects it
    assert btc is not None and btc.volume_step == Decimal("0.01") and btc.contract_size == Decimal(1)
    off_grid = await broker.submit(
        order("tb-idx-2", symbol="US500", volume="0.3", price="5200.75", sl="5150.10", tp="5250.25")
    )
    assert off_grid.retcode == 10016  # 5150.10 is not a multiple of the 0.25 tick
    tick = await broker.tick("USDJPY")
    assert (tick.bid, tick.ask) == (Decimal("151.123"), Decimal("151.133"))


async def test_server_time_offset_applies_both_ways(account: int, mt5_module: str) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    b = create_mt5_broker(mt5_module, account, PASSWORD, SERVER, server_utc_offset=3600)
    await b.connect()
    try:
        expires = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
        limit = order(
            "tb-offset-1",
            order_type=OrderType.LIMIT,
            price="1.09000",
            sl="1.08500",
            tp="1.09500",
            expires_at=expires,
        )
        assert (await b.submit(limit)).status is SubmitStatus.ACCEPTED
        [raw] = control.dump()["orders"]
        assert raw["time_expiration"] == int(expires.timestamp()) + 3600  # sent in server time
        [pending] = await b.pending_orders()
        assert pending.expires_at == expires  # read back in UTC
    finally:
        await b.close()


async def test_symbol_specs_are_cached_for_a_while_then_refreshed(account: int, mt5_module: str) -> None:
    b = create_mt5_broker(mt5_module, account, PASSWORD, SERVER, spec_ttl=0.2)
    await b.connect()
    try:
        spec = await b.symbol_spec("EURUSD")
        assert spec is not None and spec.stops_level == 10
        control.set_symbol("EURUSD", stops_level=30)
        cached = await b.symbol_spec("EURUSD")
        assert cached is not None and cached.stops_level == 10
        await asyncio.sleep(0.25)
        fresh = await b.symbol_spec("EURUSD")
        assert fresh is not None and fresh.stops_level == 30
    finally:
        await b.close()


async def test_close_and_cancel_with_the_terminal_down_are_retry_and_nothing_happens(
    broker: MT5Broker,
) -> None:
    pin("EURUSD", "1.10000", "1.10008")
    opened = await broker.submit(order("tb-down-1"))
    placed = await broker.submit(
        order("tb-down-2", order_type=OrderType.LIMIT, price="1.09000", sl="1.08500", tp="1.09500")
    )
    assert opened.position_ticket is not None and placed.ticket is not None
    control.disconnect()
    closed = await broker.close_position(opened.position_ticket, "tb-down-3")
    cancelled = await broker.cancel_order(placed.ticket)
    assert closed.status is cancelled.status is SubmitStatus.RETRY
    assert "nothing sent" in closed.reason
    control.reconnect()
    assert len(await broker.positions()) == 1 and len(await broker.pending_orders()) == 1
    assert control.stats(LOGIN)["order_send_calls"] == 2
