"""Stop changes, partial closes and position deals: the MT5 broker on the simulated terminal,
on a hedging and on a netting account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.brokers.base import Side, SubmitStatus
from engine.brokers.mt5 import MT5Broker, create_mt5_broker
from mt5sim import constants as mc
from mt5sim import control
from tests.support.mt5 import PASSWORD, SERVER, order, pin

HEDGING, NETTING = mc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING, mc.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
LOGIN = 6001


@pytest.fixture(params=[HEDGING, NETTING], ids=["hedging", "netting"])
async def any_broker(request: pytest.FixtureRequest, sim_state: Path) -> AsyncIterator[MT5Broker]:
    control.create_account(LOGIN, PASSWORD, server=SERVER, margin_mode=request.param, state=sim_state)
    b = create_mt5_broker("mt5sim", LOGIN, PASSWORD, SERVER, backoff_initial=0.01, backoff_max=0.05)
    await b.connect()
    yield b
    await b.close()


async def _open(broker: MT5Broker, cid: str = "tb-open-1", volume: str = "0.30") -> str:
    pin("EURUSD", "1.10000", "1.10008")
    result = await broker.submit(order(cid, volume=volume))
    assert result.status is SubmitStatus.ACCEPTED and result.position_ticket
    return result.position_ticket


async def test_account_reports_its_margin_mode(any_broker: MT5Broker) -> None:
    info = control.dump()["accounts"][LOGIN]
    assert (await any_broker.account()).hedging is (info["margin_mode"] == HEDGING)


async def test_modify_moves_the_stop_and_same_levels_again_is_done(any_broker: MT5Broker) -> None:
    ticket = await _open(any_broker)
    pin("EURUSD", "1.10200", "1.10208")
    result = await any_broker.modify_position(ticket, Decimal("1.10008"), Decimal("1.10500"))
    assert result.status is SubmitStatus.ACCEPTED
    [pos] = await any_broker.positions()
    assert (pos.sl, pos.tp) == (Decimal("1.10008"), Decimal("1.10500"))
    sends = control.stats(LOGIN)["order_send_calls"]
    again = await any_broker.modify_position(ticket, Decimal("1.10008"), Decimal("1.10500"))
    assert (again.status, again.retcode) == (SubmitStatus.ACCEPTED, 10025)
    assert control.stats(LOGIN)["order_send_calls"] == sends  # nothing to send


async def test_stop_inside_the_stops_level_is_refused_unsent_then_applied_later(
    any_broker: MT5Broker,
) -> None:
    control.set_symbol("EURUSD", stops_level=50, freeze_level=0)  # before the broker reads the spec
    ticket = await _open(any_broker)
    pin("EURUSD", "1.10030", "1.10038")  # 22 points above the entry: the stop at entry is too close
    sends = control.stats(LOGIN)["order_send_calls"]
    refused = await any_broker.modify_position(ticket, Decimal("1.10008"), Decimal("1.10500"))
    assert (refused.status, refused.code) == (SubmitStatus.REFUSED, "stops_level")
    assert control.stats(LOGIN)["order_send_calls"] == sends
    pin("EURUSD", "1.10100", "1.10108")
    applied = await any_broker.modify_position(ticket, Decimal("1.10008"), Decimal("1.10500"))
    assert applied.status is SubmitStatus.ACCEPTED


async def test_wrong_side_and_freeze_level_are_named(any_broker: MT5Broker) -> None:
    control.set_symbol("EURUSD", freeze_level=100)
    ticket = await _open(any_broker)
    wrong = await any_broker.modify_position(ticket, Decimal("1.10100"), Decimal("1.10500"))
    assert (wrong.status, wrong.code) == (SubmitStatus.REFUSED, "wrong_side")
    pin("EURUSD", "1.10450", "1.10458")  # 50 points from the TP: frozen
    frozen = await any_broker.modify_position(ticket, Decimal("1.10008"), Decimal("1.10500"))
    assert (frozen.status, frozen.code) == (SubmitStatus.REFUSED, "freeze_level")
    closing = await any_broker.close_partial(ticket, Decimal("0.10"), "tc-frozen-1")
    assert (closing.status, closing.code) == (SubmitStatus.REFUSED, "freeze_level")


async def test_partial_close_keeps_the_ticket_and_reports_deals_with_reasons(any_broker: MT5Broker) -> None:
    ticket = await _open(any_broker)
    pin("EURUSD", "1.10200", "1.10208")
    part = await any_broker.close_partial(ticket, Decimal("0.10"), "tp-part-1")
    assert part.status is SubmitStatus.ACCEPTED
    assert (part.filled_volume, part.price, part.position_ticket) == (
        Decimal("0.10"),
        Decimal("1.10200"),
        ticket,
    )
    [pos] = await any_broker.positions()
    assert (pos.ticket, pos.volume) == (ticket, Decimal("0.20"))
    pin("EURUSD", "1.10510", "1.10518")  # through the TP
    assert await any_broker.positions() == []
    deals = await any_broker.position_deals(ticket)
    assert [(d.entry, d.reason, d.volume) for d in deals] == [
        ("in", "expert", Decimal("0.30")),
        ("out", "expert", Decimal("0.10")),
        ("out", "tp", Decimal("0.20")),
    ]
    assert deals[1].client_order_id == "tp-part-1" and deals[1].profit == Decimal("19.20")
    assert deals[2].price == Decimal("1.10500")


async def test_partial_close_volume_rules_are_named(any_broker: MT5Broker) -> None:
    control.set_symbol("EURUSD", volume_min=Decimal("0.05"))
    ticket = await _open(any_broker, volume="0.10")
    for volume in ("0.095", "0.20", "0", "0.03"):
        refused = await any_broker.close_partial(ticket, Decimal(volume), "tp-bad-1")
        assert (refused.status, refused.code) == (SubmitStatus.REFUSED, "invalid_volume"), volume
    leaves_too_little = await any_broker.close_partial(ticket, Decimal("0.06"), "tp-bad-2")
    assert leaves_too_little.code == "invalid_volume"
    gone = await any_broker.modify_position("999999", Decimal("1.09"), None)
    assert (gone.status, gone.code) == (SubmitStatus.REFUSED, "position_gone")


async def test_a_lost_partial_close_answer_is_found_by_its_client_id(any_broker: MT5Broker) -> None:
    ticket = await _open(any_broker)
    control.timeout_after_execute(1, login=LOGIN)
    lost = await any_broker.close_partial(ticket, Decimal("0.10"), "tp-lost-1")
    assert lost.status is SubmitStatus.UNKNOWN
    found = await any_broker.find_by_client_id("tp-lost-1")
    assert found is not None and found.state == "filled" and found.filled_volume == Decimal("0.10")
    [pos] = await any_broker.positions()
    assert pos.volume == Decimal("0.20")


async def test_a_second_order_on_a_symbol_nets_or_hedges(any_broker: MT5Broker) -> None:
    first = await _open(any_broker, "tb-first-1", "0.10")
    pin("EURUSD", "1.10100", "1.10108")
    second = await any_broker.submit(order("tb-second-1", price="1.10108", sl="1.09500", tp="1.10600"))
    assert second.status is SubmitStatus.ACCEPTED
    positions = await any_broker.positions()
    if (await any_broker.account()).hedging:
        assert sorted(p.volume for p in positions) == [Decimal("0.10"), Decimal("0.10")]
        assert second.position_ticket != first
    else:
        [pos] = positions
        assert (pos.ticket, pos.volume, pos.open_price) == (first, Decimal("0.20"), Decimal("1.10058"))
        assert pos.tp == Decimal("1.10600") and second.position_ticket == first
        sell = await any_broker.submit(order("tb-reduce-1", Side.SELL, price="1.10100", sl="0", tp="0"))
        assert sell.status is SubmitStatus.ACCEPTED
        [pos] = await any_broker.positions()
        assert pos.volume == Decimal("0.10")
        assert [d.entry for d in await any_broker.position_deals(first)] == ["in", "in", "out"]
