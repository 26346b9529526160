from datetime import UTC, datetime, timedelta
from decimal import Decimal

from engine.brokers.base import FillingMode, OrderRequest, OrderType, Side, SubmitStatus
from engine.brokers.paper import PaperBroker
from mt5sim.pricefeed import SimulatedFeed
from tests.support.factories import paper_subscribers
from tests.support.prices import FixedPrices


def req(
    cid,
    side=Side.BUY,
    price="1.10010",
    sl="1.09800",
    tp="1.10400",
    volume="0.50",
    kind=OrderType.MARKET,
    expires=None,
):
    return OrderRequest(
        cid,
        "EURUSD",
        side,
        kind,
        Decimal(volume),
        Decimal(price),
        Decimal(sl),
        Decimal(tp),
        FillingMode.FOK,
        expires,
    )


async def broker_for(db, prices, balance="10000"):
    _, [(_, acct)] = await paper_subscribers(db, balance=balance)
    return PaperBroker(db, acct.id, prices=prices)


async def test_market_fill_equity_and_close_pnl(db):
    prices = FixedPrices()
    b = await broker_for(db, prices)
    res = await b.submit(req("tb-1"))
    assert (
        res.status is SubmitStatus.ACCEPTED
        and res.price == Decimal("1.10010")
        and res.filled_volume == Decimal("0.50")
    )
    prices.set("EURUSD", "1.10110", "1.10120")  # +100 points on the bid
    snap = await b.account()
    assert snap.balance == Decimal("10000.00")
    assert snap.equity == Decimal("10050.00")  # 100 ticks x $1 x 0.5 lot
    assert snap.margin == Decimal("550.05")  # 0.5 x 100000 x 1.10010 / leverage 100
    assert snap.free_margin == Decimal("9499.95")


async def test_profit_is_exact(db):
    prices = FixedPrices()
    b = await broker_for(db, prices)
    await b.submit(req("tb-2"))
    prices.set("EURUSD", "1.10110", "1.10120")
    [pos] = await b.positions()
    # bid 1.10110 - open 1.10010 = 0.00100 = 100 ticks; x tick value 1 x 0.5 lots = 50.00
    assert pos.profit == Decimal("50.00")
    close = await b.close_position(pos.ticket, "tc-1")
    assert close.status is SubmitStatus.ACCEPTED and close.price == Decimal("1.10110")
    snap = await b.account()
    assert snap.balance == Decimal("10050.00") and snap.equity == Decimal("10050.00")
    again = await b.close_position(pos.ticket, "tc-1")
    assert again.status is SubmitStatus.ACCEPTED  # idempotent by client id, no second close
    assert (await b.account()).balance == Decimal("10050.00")
    deals = await b.deals(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(seconds=1))
    assert [d.entry for d in deals] == ["in", "out"] and deals[1].profit == Decimal("50.00")


async def test_same_client_id_never_fills_twice(db):
    b = await broker_for(db, FixedPrices())
    first = await b.submit(req("tb-dup"))
    second = await b.submit(req("tb-dup"))
    assert first.position_ticket == second.position_ticket
    assert len(await b.positions()) == 1
    found = await b.find_by_client_id("tb-dup")
    assert found is not None and found.state == "filled" and found.position_ticket == first.position_ticket
    assert await b.find_by_client_id("tb-nope") is None


async def test_sl_and_tp_hits_close_at_their_level(db):
    prices = FixedPrices()
    b = await broker_for(db, prices)
    await b.submit(req("tb-sl"))
    prices.set("EURUSD", "1.09700", "1.09710")
    assert await b.positions() == []
    deals = await b.deals(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(seconds=1))
    out = next(d for d in deals if d.entry == "out")
    assert out.reason == "sl" and out.price == Decimal("1.09800") and out.profit == Decimal("-105.00")
    prices.set("EURUSD", "1.10000", "1.10010")
    await b.submit(req("tb-tp", side=Side.SELL, price="1.10000", sl="1.10300", tp="1.09600"))
    prices.set("EURUSD", "1.09590", "1.09595")
    assert await b.positions() == []
    snap = await b.account()
    assert snap.balance == Decimal("10000") - Decimal("105.00") + Decimal("200.00")


async def test_requote_no_money_and_invalid_requests(db):
    prices = FixedPrices()
    b = await broker_for(db, prices, balance="100")
    prices.set("EURUSD", "1.10100", "1.10110")  # moved 100 points from the request price
    assert (await b.submit(req("tb-rq"))).status is SubmitStatus.RETRY
    prices.set("EURUSD", "1.10000", "1.10010")
    money = await b.submit(req("tb-nm", volume="5"))
    assert money.status is SubmitStatus.REFUSED and "not enough money" in money.reason
    bad = await b.submit(req("tb-bad", sl="1.10500"))
    assert bad.status is SubmitStatus.REFUSED and bad.reason == "invalid stops"
    assert await b.positions() == []


async def test_pending_limit_triggers_and_expires(db):
    prices = FixedPrices()
    b = await broker_for(db, prices)
    res = await b.submit(
        req(
            "tb-lim",
            price="1.09900",
            sl="1.09700",
            tp="1.10300",
            kind=OrderType.LIMIT,
            expires=datetime.now(UTC) + timedelta(hours=1),
        )
    )
    assert res.status is SubmitStatus.ACCEPTED and res.position_ticket is None
    assert len(await b.pending_orders()) == 1
    prices.set("EURUSD", "1.09890", "1.09899")
    [pos] = await b.positions()
    assert pos.open_price == Decimal("1.09900")
    await b.submit(
        req(
            "tb-exp",
            price="1.09000",
            sl="1.08800",
            tp="1.09400",
            kind=OrderType.LIMIT,
            expires=datetime.now(UTC) - timedelta(seconds=1),
        )
    )
    assert await b.pending_orders() == []
    assert (await b.find_by_client_id("tb-exp")).state == "cancelled"


async def test_simulated_feed_prices_and_specs():
    feed = SimulatedFeed("USD")
    eur = feed.spec("EURUSD")
    jpy = feed.spec("USDJPY")
    assert eur is not None and eur.tick_value == eur.tick_size * eur.contract_size
    assert jpy is not None and Decimal("0.3") < jpy.tick_value < Decimal("2")  # 100 JPY per tick in USD
    tick = feed.tick("EURUSD")
    assert tick is not None and tick.ask > tick.bid
    assert feed.spec("NOPE") is None and feed.tick("NOPE") is None
