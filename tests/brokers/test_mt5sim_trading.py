"""The simulated trade server's rules, through the MetaTrader5-shaped functions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import mt5sim
from mt5sim import control
from tests.support.mt5 import PASSWORD, SERVER


@pytest.fixture
def mt5(account: int) -> Iterator[Any]:
    assert mt5sim.initialize(login=account, password=PASSWORD, server=SERVER)
    control.set_price("EURUSD", "1.10000", "1.10008")
    yield mt5sim
    mt5sim.shutdown()


def market(type_: int = 0, **kw: Any) -> dict[str, Any]:
    return {
        "action": 1,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": type_,
        "type_filling": 1,
        "magic": 9,
        **kw,
    }


def pending(type_: int, price: float, **kw: Any) -> dict[str, Any]:
    return {
        "action": 5,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": type_,
        "price": price,
        "type_filling": 2,
        **kw,
    }


def test_volume_rules_tolerate_float_noise(mt5: Any) -> None:
    assert mt5.order_send(market(volume=0.1 + 0.2)).volume == 0.3  # 0.30000000000000004
    for bad in (0.015, 0.001, 101.0, 0.0):
        assert mt5.order_send(market(volume=bad)).retcode == 10014


@pytest.mark.parametrize(
    ("type_", "sl", "tp", "retcode"),
    [
        (0, 1.09990, 0.0, 10009),  # buy: bid - SL = 10 points = the stops level
        (0, 1.09991, 0.0, 10016),  # 9 points
        (0, 0.0, 1.10010, 10009),
        (0, 0.0, 1.10009, 10016),
        (0, 1.10100, 0.0, 10016),  # wrong side
        (1, 1.10018, 0.0, 10009),  # sell: SL - ask >= 10 points
        (1, 1.10017, 0.0, 10016),
        (1, 0.0, 1.09998, 10009),
        (1, 0.0, 1.100001, 10016),  # off the tick grid
    ],
)
def test_stops_level(mt5: Any, type_: int, sl: float, tp: float, retcode: int) -> None:
    assert mt5.order_send(market(type_, sl=sl, tp=tp)).retcode == retcode


def test_filling_modes_follow_the_bitmask_and_execution_mode(mt5: Any) -> None:
    assert mt5.order_send(market(type_filling=0)).retcode == 10009  # FOK: bit 1
    assert mt5.order_send(market(type_filling=2)).retcode == 10030  # RETURN: exchange execution only
    assert mt5.order_send(pending(2, 1.09000, type_filling=2)).retcode == 10008  # RETURN is fine for pending
    control.set_price("XAUUSD", "2350.00", "2350.25")
    gold = market(symbol="XAUUSD", price=2350.25, type_filling=1)
    assert mt5.order_send(gold).retcode == 10030  # gold: FOK only
    assert mt5.order_send({**gold, "type_filling": 0}).retcode == 10009


@pytest.mark.parametrize(
    ("type_", "price", "retcode"),
    [
        (2, 1.09998, 10008),  # buy limit: ask - open = 10 points
        (2, 1.09999, 10015),
        (3, 1.10010, 10008),  # sell limit: open - bid = 10 points
        (3, 1.10009, 10015),
        (4, 1.10018, 10008),  # buy stop: open - ask >= 10 points
        (4, 1.10010, 10015),
        (5, 1.09990, 10008),  # sell stop
        (5, 1.10100, 10015),
        (2, 1.0999951, 10015),  # off the grid
    ],
)
def test_pending_prices(mt5: Any, type_: int, price: float, retcode: int) -> None:
    assert mt5.order_send(pending(type_, price)).retcode == retcode


def test_expiration_rules(mt5: Any) -> None:
    now = int(control.now().timestamp())
    assert mt5.order_send(pending(2, 1.09, type_time=2, expiration=now - 1)).retcode == 10022
    placed = mt5.order_send(pending(2, 1.09, type_time=2, expiration=now + 60))
    assert placed.retcode == 10008
    [o] = mt5.orders_get()
    assert (o.ticket, o.time_expiration, o.type_time, o.state) == (placed.order, now + 60, 2, 1)
    control.set_symbol("EURUSD", expiration_mode=1)  # GTC only
    assert mt5.order_send(pending(2, 1.09, type_time=2, expiration=now + 60)).retcode == 10022
    control.advance_time(61)
    assert mt5.orders_get() == ()
    [expired] = mt5.history_orders_get(ticket=placed.order)
    assert expired.state == mt5sim.ORDER_STATE_EXPIRED


def test_hedging_keeps_opposite_positions_and_closes_by_ticket(mt5: Any) -> None:
    buy = mt5.order_send(market(0))
    sell = mt5.order_send(market(1))
    assert {p.type for p in mt5.positions_get(symbol="EURUSD")} == {0, 1}
    control.set_price("EURUSD", "1.10100", "1.10108")
    part = mt5.order_send(market(1, volume=0.04, position=buy.order, comment="part"))
    assert (part.retcode, part.price) == (10009, 1.101)
    assert mt5.positions_get(ticket=buy.order)[0].volume == 0.06
    assert mt5.order_send(market(1, volume=0.07, position=buy.order)).retcode == 10038
    assert mt5.order_send(market(0, volume=0.06, position=buy.order)).retcode == 10013  # same direction
    assert mt5.order_send(market(1, volume=0.06, position=buy.order)).retcode == 10009
    assert mt5.order_send(market(1, volume=0.06, position=buy.order)).retcode == 10036
    deals = mt5.history_deals_get(position=buy.order)
    assert [(d.entry, d.volume) for d in deals] == [(0, 0.1), (1, 0.04), (1, 0.06)]
    assert deals[1].profit == pytest.approx(3.68)  # (1.10100 - 1.10008) * 0.04 lot
    assert [o.position_id for o in mt5.history_orders_get(position=buy.order)] == [buy.order] * 3
    assert len(mt5.positions_get()) == 1 and mt5.positions_get()[0].ticket == sell.order


def test_freeze_level_blocks_modify_and_close(mt5: Any) -> None:
    opened = mt5.order_send(market(0, sl=1.09900, tp=1.10200))
    sltp = {"action": 6, "symbol": "EURUSD", "position": opened.order}
    assert mt5.order_send({**sltp, "sl": 1.09950, "tp": 1.10200}).retcode == 10009
    assert mt5.positions_get()[0].sl == 1.0995
    assert mt5.order_send({**sltp, "sl": 1.09950, "tp": 1.10200}).retcode == 10025  # no changes
    control.set_price("EURUSD", "1.09954", "1.09962")  # 4 points from the SL: inside the 5-point freeze band
    assert mt5.order_send({**sltp, "sl": 1.09900, "tp": 1.10200}).retcode == 10029
    assert mt5.order_send(market(1, position=opened.order)).retcode == 10029
    placed = mt5.order_send(pending(2, 1.09950))  # ask - open = 12 points
    assert placed.retcode == 10008
    control.set_price("EURUSD", "1.09945", "1.09953")  # 3 points above the limit: frozen, not triggered
    assert mt5.order_send({"action": 8, "order": placed.order}).retcode == 10029
    assert mt5.order_send({"action": 7, "order": placed.order, "price": 1.09800}).retcode == 10029
    control.set_price("EURUSD", "1.10000", "1.10008")
    assert (
        mt5.order_send({"action": 7, "order": placed.order, "price": 1.09800, "sl": 1.09500}).retcode == 10009
    )
    assert mt5.orders_get()[0].price_open == 1.098
    assert mt5.order_send({"action": 8, "order": placed.order}).retcode == 10009
    assert mt5.history_orders_get(ticket=placed.order)[0].state == mt5sim.ORDER_STATE_CANCELED


def test_sl_and_tp_are_hit_lazily_with_server_comments(mt5: Any) -> None:
    buy = mt5.order_send(market(0, sl=1.09500, tp=1.10500, comment="tb-1"))
    sell = mt5.order_send(market(1, sl=1.10500, tp=1.09500, comment="tb-2"))
    control.set_price("EURUSD", "1.09400", "1.09408")  # through the buy's SL and the sell's TP
    assert mt5.positions_get() == ()
    outs = {
        d.position_id: d
        for d in mt5.history_deals_get(position=buy.order) + mt5.history_deals_get(position=sell.order)
        if d.entry == 1
    }
    sl, tp = outs[buy.order], outs[sell.order]
    assert (sl.reason, sl.price, sl.comment, sl.magic) == (mt5sim.DEAL_REASON_SL, 1.094, "[sl 1.09500]", 9)
    assert sl.profit == pytest.approx(-60.8)  # filled at the market, 1.09400, after the gap
    assert (tp.reason, tp.price, tp.comment) == (mt5sim.DEAL_REASON_TP, 1.095, "[tp 1.09500]")
    assert tp.profit == pytest.approx(50.0)
    assert mt5.account_info().balance == pytest.approx(10000 - 60.8 + 50.0)


def test_margin_and_no_money(mt5: Any) -> None:
    assert mt5.order_send(market(volume=9.0)).retcode == 10009  # 9 lots need 9900 of 10000
    info = mt5.account_info()
    assert info.margin == pytest.approx(9900.0) and info.margin_level == pytest.approx(
        info.equity / 99, abs=0.01
    )
    assert mt5.order_send(market(volume=0.2)).retcode == 10019
    limit = mt5.order_send(pending(2, 1.09900, volume=1.0))
    assert limit.retcode == 10008  # no margin is reserved for a pending order...
    control.set_price("EURUSD", "1.09890", "1.09898")
    assert mt5.orders_get() == ()  # ...and it is rejected when it triggers without the money
    assert mt5.history_orders_get(ticket=limit.order)[0].state == mt5sim.ORDER_STATE_REJECTED
    assert len(mt5.positions_get()) == 1


def test_trade_modes_and_disabled_trading(mt5: Any) -> None:
    control.set_symbol("EURUSD", trade_mode=1)  # long only
    assert mt5.order_send(market(1)).retcode == 10042
    opened = mt5.order_send(market(0))
    control.set_symbol("EURUSD", trade_mode=3)  # close only
    assert mt5.order_send(market(0)).retcode == 10044
    assert mt5.order_send(market(1, position=opened.order)).retcode == 10009
    control.set_symbol("EURUSD", trade_mode=4)
    control.set_terminal_trade_allowed(False)
    assert mt5.order_send(market(0)).retcode == 10027
    assert mt5.terminal_info().trade_allowed is False
    control.set_terminal_trade_allowed(True)
    control.set_account(mt5.account_info().login, trade_allowed=False)
    assert mt5.order_send(market(0)).retcode == 10017


def test_history_queries_and_groups(mt5: Any) -> None:
    control.set_price("GBPUSD", "1.27000", "1.27012")
    eur = mt5.order_send(market(0))
    gbp = mt5.order_send(market(0, symbol="GBPUSD"))
    assert [p.symbol for p in mt5.positions_get(group="*,!*EUR*")] == ["GBPUSD"]
    assert not mt5.symbol_select("GBPUSD", False)  # a symbol with positions stays in Market Watch
    assert [p.ticket for p in mt5.positions_get(ticket=eur.order)] == [eur.order]
    now = control.now()
    deals = mt5.history_deals_get(now - timedelta(minutes=1), now + timedelta(minutes=1))
    assert [d.type for d in deals] == [mt5sim.DEAL_TYPE_BALANCE, 0, 0]
    naive = mt5.history_deals_get(
        datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1), now + timedelta(minutes=1)
    )
    assert len(naive) == 3  # naive datetimes are read as UTC
    assert mt5.history_deals_get(now + timedelta(minutes=1), now + timedelta(minutes=2)) == ()
    assert [o.ticket for o in mt5.history_orders_get(now - timedelta(minutes=1), now, group="*GBP*")] == [
        gbp.order
    ]
    assert mt5.history_deals_get() is None and mt5.last_error()[0] == -2
