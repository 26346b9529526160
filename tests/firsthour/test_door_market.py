"""Issue 19 item 3: where the engine knows the market, a signal that can never execute is refused
at the door (422 naming the market price); where it does not, it is accepted as before."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from engine.api import build_http_app
from engine.brokers.base import Tick
from engine.ingest.market import MarketQuotes
from engine.ingest.service import IngestService
from engine.ingest.signing import signature_header
from engine.settings import Settings
from engine.store.db import Database
from engine.store.models import Signal
from tradebot.app import build_api_context, build_services

KEY = "q" * 40
QUOTES = {
    "XAUUSD": (Decimal("1950.00"), Decimal("1950.30")),
    "EURUSD": (Decimal("1.10000"), Decimal("1.10010")),
}


def fixed(symbol: str) -> Tick | None:
    q = QUOTES.get(symbol)
    return None if q is None else Tick(symbol, q[0], q[1], datetime.now(UTC))


async def known(symbol: str) -> Tick | None:
    return fixed(symbol)


async def unknown(symbol: str) -> Tick | None:
    return None


Post = Callable[[dict[str, Any]], Any]


async def door(db: Database, quotes: Any, **settings: Any) -> AsyncIterator[Post]:
    values = {"database_url": db.url, "secret_key": KEY, "instruments": "EURUSD,XAUUSD", **settings}
    config = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    services = build_services(config, db=db)
    # the door asks ``quotes`` (the composition root gives it the brokers and the paper prices)
    ingest = IngestService(db, config, services.relay, quotes)
    ctx = dataclasses.replace(build_api_context(services), ingest=ingest)
    producer = await ctx.producers.add("door")
    client = TestClient(TestServer(build_http_app(ctx), host="127.0.0.1"))
    await client.start_server()

    async def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raw = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": producer.id,
            "X-Signature": signature_header(producer.secret, raw),
        }
        resp = await client.post("/api/v1/signals", data=raw, headers=headers)
        return resp.status, await resp.json(content_type=None)

    try:
        yield post
    finally:
        await client.close()


async def stored(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Signal)) or 0)


GOLD_NONSENSE = {"instrument": "XAUUSD", "side": "buy", "sl": "1", "tp": "2"}
EURUSD_AT_5 = {
    "instrument": "EURUSD",
    "side": "buy",
    "order_type": "limit",
    "entry": "5.0",
    "sl": "4.9",
    "tp": "5.3",
}


async def test_a_market_signal_with_levels_on_the_wrong_side_is_refused_naming_the_price(
    sqlite_db: Database,
) -> None:
    async for post in door(sqlite_db, known):
        status, problem = await post(GOLD_NONSENSE)
        assert status == 422, problem
        fields = {e["field"]: e["message"] for e in problem["errors"]}
        assert "1950.3" in fields["tp"] and "above the market price" in fields["tp"]
        sell = {"instrument": "XAUUSD", "side": "sell", "sl": "1949", "tp": "1900"}
        status, problem = await post(sell)
        assert status == 422 and "1950.3" in problem["errors"][0]["message"]
        assert await stored(sqlite_db) == 0


async def test_an_entry_absurdly_far_from_the_market_is_refused(sqlite_db: Database) -> None:
    async for post in door(sqlite_db, known):
        status, problem = await post(EURUSD_AT_5)
        assert status == 422, problem
        (error,) = problem["errors"]
        assert (
            error["field"] == "entry" and "1.10005" in error["message"] and "at most 20%" in error["message"]
        )
        fine = {"instrument": "EURUSD", "side": "buy", "sl": "1.0950", "tp": "1.1100"}
        assert (await post(fine))[0] == 201
        assert await stored(sqlite_db) == 1


async def test_the_limit_is_a_setting(sqlite_db: Database) -> None:
    async for post in door(sqlite_db, known, max_entry_deviation_percent="500"):
        assert (await post(EURUSD_AT_5))[0] == 201


async def test_without_a_known_price_signals_are_accepted_as_before(sqlite_db: Database) -> None:
    async for post in door(sqlite_db, unknown):
        assert (await post(GOLD_NONSENSE))[0] == 201
        assert (await post(EURUSD_AT_5))[0] == 201


class _Down:
    async def tick(self, symbol: str) -> Tick:
        raise ConnectionError("terminal gone")


class _Source:
    def tick(self, symbol: str) -> Tick | None:
        return fixed(symbol)

    def spec(self, symbol: str) -> None:
        return None


async def test_quotes_come_from_a_broker_else_the_price_source() -> None:
    quotes = MarketQuotes(lambda: {1: _Down()}, _Source())  # type: ignore[dict-item]
    tick = await quotes("XAUUSD")
    assert tick is not None and tick.ask == Decimal("1950.30")
    assert await MarketQuotes(lambda: {1: _Down()})("XAUUSD") is None  # type: ignore[dict-item]
    assert await quotes("GBPUSD") is None


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_ENTRY_DEVIATION_PERCENT", raising=False)
