"""Paper prices from a real terminal: the simulated terminal behind the real MT5 broker code."""

from __future__ import annotations

from decimal import Decimal

from engine.brokers.base import FillingMode, OrderRequest, OrderType, Side, SubmitStatus
from engine.brokers.mt5 import MT5Broker
from engine.brokers.mt5_prices import TerminalPrices
from engine.brokers.paper import PaperBroker
from engine.settings import Settings
from engine.store.db import Database
from mt5sim import control
from mt5sim.pricefeed import SimulatedFeed
from tests.support.factories import paper_subscribers
from tradebot.app import build_services, paper_market_for

LOGIN, PASSWORD, SERVER = 5001, "pw-5001", "MT5Sim-Demo"  # the ``account`` fixture's terminal login


def pin(symbol: str, bid: str, ask: str) -> None:
    control.set_price(symbol, Decimal(bid), Decimal(ask))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_quotes_follow_the_terminal_and_a_stale_quote_is_not_served(broker: MT5Broker) -> None:
    pin("EURUSD", "1.23450", "1.23460")
    clock = Clock()
    prices = TerminalPrices(broker, ["eurusd"], stale_seconds=30, clock=clock)
    assert prices.tick("EURUSD") is None  # nothing asked of the terminal yet
    await prices.refresh()
    tick = prices.tick("EURUSD")
    assert tick is not None and (tick.bid, tick.ask) == (Decimal("1.23450"), Decimal("1.23460"))
    spec = prices.spec("EURUSD")
    assert spec is not None and spec.digits == 5

    pin("EURUSD", "1.30000", "1.30010")
    await prices.refresh()
    assert prices.tick("EURUSD").bid == Decimal("1.30000")  # type: ignore[union-attr]
    clock.now += 31  # the terminal stopped answering half a minute ago
    assert prices.tick("EURUSD") is None
    assert prices.tick("NOSUCH") is None and prices.spec("NOSUCH") is None


async def test_a_paper_account_fills_at_the_terminals_price(broker: MT5Broker, db: Database) -> None:
    pin("EURUSD", "1.11110", "1.11120")
    prices = TerminalPrices(broker, ["EURUSD"])
    await prices.refresh()
    _, [(_, account)] = await paper_subscribers(db)
    paper = PaperBroker(db, account.id, prices=prices)
    request = OrderRequest(
        client_order_id="tp-1",
        symbol="EURUSD",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        volume=Decimal("0.10"),
        price=Decimal("1.11120"),
        sl=Decimal("1.10000"),
        tp=Decimal("1.13000"),
        filling=FillingMode.IOC,
    )
    result = await paper.submit(request)
    assert result.status is SubmitStatus.ACCEPTED and result.price == Decimal("1.11120")


def test_the_composition_root_names_the_market(sqlite_url: str, account: int) -> None:
    simulated = paper_market_for(Settings(_env_file=None, database_url=sqlite_url))  # type: ignore[call-arg]
    assert simulated.simulated and isinstance(simulated.source, SimulatedFeed)
    real = paper_market_for(
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=sqlite_url,
            mt5_module="mt5sim",
            mt5_login=LOGIN,
            mt5_password=PASSWORD,
            mt5_server=SERVER,
        )
    )
    assert not real.simulated and isinstance(real.source, TerminalPrices) and SERVER in real.description


async def test_services_close_the_terminal_price_session(sqlite_url: str, account: int) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=sqlite_url,
        mt5_module="mt5sim",
        mt5_login=LOGIN,
        mt5_password=PASSWORD,
        mt5_server=SERVER,
        instruments="EURUSD",
    )
    services = build_services(settings)
    pin("EURUSD", "1.20000", "1.20010")
    await services.paper_market.start()
    try:
        assert services.paper_market.source.tick("EURUSD").ask == Decimal("1.20010")  # type: ignore[union-attr]
    finally:
        await services.close()
        await services.db.dispose()
