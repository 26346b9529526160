"""Stop changes, partial closes and position deals on the paper broker (a hedging account)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from engine.brokers.base import FillingMode, OrderRequest, OrderType, Side, SubmitStatus
from engine.brokers.paper import PaperBroker
from tests.support.factories import paper_subscribers
from tests.support.prices import FixedPrices
from tests.support.symbols import EURUSD


async def _opened(db, prices: FixedPrices) -> tuple[PaperBroker, str]:
    _, [(_, acct)] = await paper_subscribers(db)
    broker = PaperBroker(db, acct.id, prices=prices)
    request = OrderRequest(
        "tb-pp-1", "EURUSD", Side.BUY, OrderType.MARKET, Decimal("0.30"), Decimal("1.10010"),
        Decimal("1.09800"), Decimal("1.10400"), FillingMode.FOK,
    )  # fmt: skip
    result = await broker.submit(request)
    assert result.status is SubmitStatus.ACCEPTED and result.position_ticket
    return broker, result.position_ticket


async def test_paper_account_hedges(db) -> None:
    broker, _ = await _opened(db, FixedPrices())
    assert (await broker.account()).hedging is True


async def test_partial_close_then_tp_with_reasons_and_exactly_once(db) -> None:
    prices = FixedPrices()
    broker, ticket = await _opened(db, prices)
    prices.set("EURUSD", "1.10200", "1.10210")
    part = await broker.close_partial(ticket, Decimal("0.10"), "tp-paper-1")
    assert (part.status, part.filled_volume, part.price) == (
        SubmitStatus.ACCEPTED,
        Decimal("0.10"),
        Decimal("1.10200"),
    )
    again = await broker.close_partial(ticket, Decimal("0.10"), "tp-paper-1")
    assert again.status is SubmitStatus.ACCEPTED and again.ticket == part.ticket
    [pos] = await broker.positions()
    assert (pos.ticket, pos.volume) == (ticket, Decimal("0.20"))
    prices.set("EURUSD", "1.10400", "1.10410")
    assert await broker.positions() == []
    deals = await broker.position_deals(ticket)
    assert [(d.entry, d.reason, d.volume) for d in deals] == [
        ("in", "expert", Decimal("0.30")),
        ("out", "expert", Decimal("0.10")),
        ("out", "tp", Decimal("0.20")),
    ]
    assert deals[1].profit == Decimal("19.00") and deals[2].profit == Decimal("78.00")


async def test_stop_change_respects_stops_and_freeze_levels(db) -> None:
    prices = FixedPrices()
    prices.specs["EURUSD"] = replace(EURUSD, stops_level=50, freeze_level=20)
    broker, ticket = await _opened(db, prices)
    prices.set("EURUSD", "1.10040", "1.10050")
    refused = await broker.modify_position(ticket, Decimal("1.10010"), Decimal("1.10400"))
    assert (refused.status, refused.code) == (SubmitStatus.REFUSED, "stops_level")
    [pos] = await broker.positions()
    assert pos.sl == Decimal("1.09800")  # unchanged
    prices.set("EURUSD", "1.10100", "1.10110")
    done = await broker.modify_position(ticket, Decimal("1.10010"), Decimal("1.10400"))
    assert done.status is SubmitStatus.ACCEPTED
    [pos] = await broker.positions()
    assert pos.sl == Decimal("1.10010")
    same = await broker.modify_position(ticket, Decimal("1.10010"), Decimal("1.10400"))
    assert (same.status, same.retcode) == (SubmitStatus.ACCEPTED, 10025)
    prices.set("EURUSD", "1.10390", "1.10399")  # 10 points from the TP: frozen
    frozen = await broker.modify_position(ticket, Decimal("1.10100"), Decimal("1.10400"))
    assert (frozen.status, frozen.code) == (SubmitStatus.REFUSED, "freeze_level")
    wrong = await broker.modify_position(ticket, Decimal("1.10395"), None)
    assert wrong.status is SubmitStatus.REFUSED
    bad = await broker.close_partial(ticket, Decimal("0.295"), "tp-paper-bad")
    assert bad.status is SubmitStatus.REFUSED
