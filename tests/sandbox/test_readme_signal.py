"""Issue 19 item 4: the README's own example signal executes in the sandbox: sent as the README
says (signed with the demo producer's credentials from sandbox.env) and approved in Ben's chat,
it fills; and at every price the simulated EURUSD takes, its reward:risk at the market clears
MIN_RR, so it does not depend on when the test runs."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from engine.brokers.base import AccountSnapshot, OrderType, Side, Tick
from engine.execution.orders import BuiltOrder, OrderRules, SignalParams, build_order
from engine.ingest.signing import signature_header
from engine.risk.market_hours import parse_market_hours
from mt5sim import feed
from mt5sim.pricefeed import SimulatedFeed
from sandbox import cast
from sandbox.config import SandboxOptions
from tests.support.ports import free_port
from tradebot.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
BEN = 7000101


def readme_signal() -> dict[str, Any]:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"tradebot signal send '(\{[^']*\})'", readme)
    assert match, "the README shows no `tradebot signal send` example"
    return dict(json.loads(match.group(1)))


def test_the_readme_signal_clears_min_rr_wherever_the_simulated_market_goes() -> None:
    body = readme_signal()
    assert body.get("order_type", "market") == "market"
    source = SimulatedFeed()
    spec = source.spec(body["instrument"])
    assert spec is not None
    account = AccountSnapshot(
        login="1", currency="USD", balance=Decimal(10000), equity=Decimal(10000),
        margin=Decimal(0), free_margin=Decimal(10000),
    )  # fmt: skip
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for hour in range(0, 24 * 365 * 2, 7):  # two years of the walk, every 7 hours
        at = start + timedelta(hours=hour)
        bid, ask = feed.quote(body["instrument"], at, 0)
        built = build_order(
            client_order_id="readme",
            signal=SignalParams(Side(body["side"]), OrderType.MARKET, None, Decimal(body["sl"]), Decimal(body["tp"]), Decimal(1)),
            account=account,
            spec=spec,
            tick=Tick(spec.name, bid, ask, at),
            rules=OrderRules(market_hours=parse_market_hours("*=24/7")),  # the sandbox's market hours
            now=at,
        )  # fmt: skip
        assert isinstance(built, BuiltOrder), (at, bid, ask, built)


async def test_the_readme_signal_fills_in_the_sandbox(tmp_path: Path) -> None:
    options = SandboxOptions(
        broker="paper", port=free_port(), data_dir=tmp_path / "data",
        signal_every=(600.0, 600.0), first_signal_after=600.0,
    )  # fmt: skip
    sandbox = Sandbox(options, configure_logging=False)
    await sandbox.start()
    try:
        env = dict(
            line.split("=", 1)
            for line in (tmp_path / "data" / "sandbox.env").read_text().splitlines()
            if "=" in line
        )
        raw = json.dumps(readme_signal()).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Producer-Id": env["TRADEBOT_PRODUCER_ID"].strip("'\""),
            "X-Signature": signature_header(env["TRADEBOT_PRODUCER_SECRET"].strip("'\""), raw),
        }
        base = f"http://127.0.0.1:{options.port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/api/v1/signals", data=raw, headers=headers) as resp:
                assert resp.status == 201, await resp.text()
            assert sandbox.client is not None
            signal = await _wait(lambda: _signal_in(sandbox, BEN))
            approve = cast.callback_buttons(signal)[0]
            body = {"user_id": BEN, "chat_id": BEN, "message_id": signal["message_id"], "data": approve}
            async with http.post(base + "/sandbox/api/tap", json=body) as resp:
                assert resp.status == 200

            async def result() -> str | None:
                async with http.get(f"{base}/sandbox/api/chats/{BEN}/messages") as r:
                    chat = await r.json()
                text = next(m for m in chat if m["message_id"] == signal["message_id"])["text"]
                return text if ("Filled" in text or "Not executed" in text) else None

            text = await _wait(result, 15.0)
            assert "Filled" in text, text
    finally:
        await sandbox.stop()


async def _signal_in(sandbox: Sandbox, chat_id: int) -> dict[str, Any] | None:
    """The README's signal in a chat (Fib-RSI's signals arrive there too)."""
    assert sandbox.client is not None
    note = readme_signal()["note"]
    found = [
        m
        for m in await sandbox.client.messages(chat_id)
        if len(cast.callback_buttons(m)) == 2 and note in m["text"]
    ]
    return found[-1] if found else None


async def _wait(probe: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s (last {value!r})")
        await asyncio.sleep(0.05)
