"""The demo strategy's signals: valid for the webhook, executable by the engine's own order rules
(also a minute later, as when a subscriber approves after a while), and varied."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.state import TOKEN_RE
from engine.brokers.base import AccountSnapshot, OrderType, Side, Tick
from engine.execution.orders import BuiltOrder, OrderRules, SignalParams, build_order
from engine.ingest.schema import parse_signal
from engine.management.schema import parse_update
from engine.risk.market_hours import parse_market_hours
from mt5sim import feed
from mt5sim.pricefeed import SimulatedFeed
from mt5sim.specs import DEFAULT_SPECS
from sandbox.config import SandboxError, new_bot_token, parse_interval
from sandbox.producer import DemoProducer, Posted
from sandbox.signals import final_target, propose, read_market, stop_distance, tradable

SYMBOLS = sorted(DEFAULT_SPECS)
START = datetime(2026, 1, 5, tzinfo=UTC)
ACCOUNT = AccountSnapshot("1", Decimal(10000), Decimal(10000), Decimal(0), Decimal(10000))
FEED = SimulatedFeed()


def rules(min_rr: str = "1.5") -> OrderRules:
    return OrderRules(min_rr=Decimal(min_rr), min_stop_points=5, market_hours=parse_market_hours("*=24/7"))


def build(body: dict[str, Any], at: datetime, min_rr: str = "1.5") -> Any:
    symbol = body["instrument"]
    bid, ask = feed.quote(symbol, at)
    signal = SignalParams(
        side=Side(body["side"]),
        order_type=OrderType(body["order_type"]),
        entry=Decimal(body["entry"]),
        sl=Decimal(body["sl"]),
        tp=final_target(body),
        risk_percent=Decimal(1),
    )
    spec = FEED.spec(symbol)
    assert spec is not None
    return build_order(
        client_order_id="tb-test",
        signal=signal,
        account=ACCOUNT,
        spec=spec,
        tick=Tick(symbol, bid, ask, at),
        rules=rules(min_rr),
        now=at,
    )


def reward_risk(body: dict[str, Any]) -> Decimal:
    entry, sl = Decimal(body["entry"]), Decimal(body["sl"])
    return abs(final_target(body) - entry) / abs(entry - sl)


def prices(body: dict[str, Any]) -> list[Decimal]:
    levels = [t["price"] for t in body.get("targets", [])] or [body["tp"]]
    return [Decimal(body["entry"]), Decimal(body["sl"]), *(Decimal(p) for p in levels)]


@settings(max_examples=60, deadline=None)
@given(
    symbol=st.sampled_from(SYMBOLS),
    offset=st.integers(min_value=0, max_value=400 * 86400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_proposal_passes_the_webhook_schema_and_the_order_rules(
    symbol: str, offset: int, seed: int
) -> None:
    at = START + timedelta(seconds=offset)
    market = read_market(symbol, at)
    body = propose(market, random.Random(seed), min_rr=Decimal("1.5"), min_stop_points=5, number=7)

    valid = parse_signal(json.dumps(body).encode(), frozenset(SYMBOLS))  # what the webhook checks
    assert valid.instrument == symbol
    assert body["id"] == "demo-00007"
    spec = DEFAULT_SPECS[symbol]
    for level in prices(body):
        assert level % spec.tick_size == 0, f"{level} is off the tick grid"
    assert valid.targets[-1].price == final_target(body)
    assert reward_risk(body) >= 2  # MIN_RR 1.5 plus room for the price to drift before approval
    stop_points = abs(Decimal(body["entry"]) - Decimal(body["sl"])) / spec.point
    assert stop_points >= 3 * max(spec.stops_level, 5)

    built = build(body, at)
    assert isinstance(built, BuiltOrder), built
    assert built.rr >= Decimal("1.5")


def test_market_proposals_still_execute_a_minute_later() -> None:
    rng = random.Random(20261128)
    refused = []
    for _ in range(150):
        symbol = rng.choice(SYMBOLS)
        at = START + timedelta(seconds=rng.randint(0, 300 * 86400))
        body = propose(read_market(symbol, at), rng, min_rr=Decimal("1.5"), min_stop_points=5, number=1)
        outcome = build(body, at + timedelta(seconds=60))
        if not isinstance(outcome, BuiltOrder):
            refused.append((body, outcome))
    assert not refused


def test_proposals_vary_in_side_type_and_instrument() -> None:
    rng = random.Random(7)
    bodies = [
        propose(
            read_market(SYMBOLS[n % len(SYMBOLS)], START + timedelta(minutes=37 * n)),
            rng,
            min_rr=Decimal("1.5"),
            min_stop_points=5,
            number=n,
        )
        for n in range(120)
    ]
    limits = sum(1 for b in bodies if b["order_type"] == "limit")
    assert 0.1 * len(bodies) <= limits <= 0.45 * len(bodies)
    assert {b["side"] for b in bodies} == {"buy", "sell"}
    assert {b["instrument"] for b in bodies} == set(SYMBOLS)
    assert all(0.55 <= b["confidence"] <= 0.9 and b["note"] and b["strategy"] for b in bodies)


def test_most_proposals_take_profit_in_parts_with_the_stop_to_entry_after_the_first() -> None:
    rng = random.Random(11)
    bodies = [
        propose(read_market("XAUUSD", START + timedelta(hours=n)), rng, min_rr=Decimal("1.5"),
                min_stop_points=5, number=n)
        for n in range(100)
    ]  # fmt: skip
    shapes = [len(b["targets"]) if "targets" in b else 1 for b in bodies]
    assert 10 <= shapes.count(1) <= 30 and shapes.count(2) >= 25 and shapes.count(3) >= 25
    for body in bodies:
        if "targets" not in body:
            continue
        assert "tp" not in body and body["breakeven_after"] == 1
        assert sum(t["close_percent"] for t in body["targets"]) == 100
        entry, sl, first = Decimal(body["entry"]), Decimal(body["sl"]), Decimal(body["targets"][0]["price"])
        assert abs(abs(first - entry) - abs(entry - sl)) <= 2 * DEFAULT_SPECS["XAUUSD"].tick_size  # 1R


def _producer(bodies: list[dict[str, Any]]) -> DemoProducer:
    producer = DemoProducer(
        url="http://127.0.0.1:1", producer_id="p", secret="s", instruments=["EURUSD"],
        min_rr=Decimal("1.5"), min_stop_points=5, rng=random.Random(5),
    )  # fmt: skip
    producer.posted = [Posted(START, 201, body, {"id": "x"}) for body in bodies]
    return producer


def test_the_demo_producer_updates_earlier_signals_the_way_providers_do() -> None:
    at = START + timedelta(days=3)
    bid, ask = feed.quote("EURUSD", at)
    pip = Decimal("0.0001")
    limit = {"id": "demo-1", "instrument": "EURUSD", "side": "buy", "order_type": "limit",
             "entry": str(bid - 50 * pip), "sl": str(bid - 100 * pip)}  # fmt: skip
    winning = {"id": "demo-2", "instrument": "EURUSD", "side": "buy", "order_type": "market",
               "entry": str(ask - 30 * pip), "sl": str(ask - 70 * pip)}  # fmt: skip
    losing = {"id": "demo-3", "instrument": "EURUSD", "side": "sell", "order_type": "market",
              "entry": str(bid - 10 * pip), "sl": str(bid + 40 * pip)}  # fmt: skip
    latest = {"id": "demo-4", "instrument": "EURUSD", "side": "buy", "order_type": "market",
              "entry": str(ask), "sl": str(ask - 40 * pip)}  # fmt: skip
    expected = {
        "demo-1": {"action": "cancel"},
        "demo-2": {"action": "move_sl", "sl": "entry"},
        "demo-3": {"action": "close", "percent": 50},
    }
    producer = _producer([limit, winning, losing, latest])
    seen: dict[str, dict[str, Any]] = {}
    while (found := producer.next_update(at)) is not None:
        signal_id, update = found
        assert signal_id != "demo-4"  # never the signal just posted
        parse_update(json.dumps(update).encode())  # what the updates API checks
        seen[signal_id] = update
        producer.updates.append(Posted(at, 202, {"signal": signal_id, **update}, {}))
    assert seen == expected  # each earlier signal once, then nothing left to update


def test_a_higher_min_rr_raises_the_targets() -> None:
    rng = random.Random(3)
    for n in range(40):
        at = START + timedelta(hours=n)
        body = propose(read_market("EURUSD", at), rng, min_rr=Decimal(3), min_stop_points=5, number=n)
        assert reward_risk(body) >= Decimal("3.5")
        assert isinstance(build(body, at, min_rr="3"), BuiltOrder)


def test_the_stop_is_never_closer_than_the_symbol_allows() -> None:
    market = read_market("US500", START)
    wide = stop_distance(market, min_stop_points=5000)
    assert wide >= 3 * 5000 * DEFAULT_SPECS["US500"].point
    us500 = DEFAULT_SPECS["US500"]
    assert stop_distance(market, min_stop_points=0) >= 3 * us500.stops_level * us500.point


def test_only_instruments_the_feed_prices_are_used() -> None:
    assert tradable(["EURUSD", "DAX40", "btcusd"]) == ["EURUSD", "btcusd"]


@pytest.mark.parametrize(
    ("text", "expected"), [("20-60", (20.0, 60.0)), ("5", (5.0, 5.0)), (" 1.5 - 2 ", (1.5, 2.0))]
)
def test_signal_every_accepts_a_number_or_a_range(text: str, expected: tuple[float, float]) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "60-20", "0", "-5", "1-2-3"])
def test_signal_every_refuses_nonsense(text: str) -> None:
    with pytest.raises(SandboxError, match="--signal-every"):
        parse_interval(text)


def test_generated_bot_tokens_have_telegrams_shape() -> None:
    tokens = {new_bot_token() for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert TOKEN_RE.match(token)
        assert re.match(r"^[1-9]\d{9}:", token)
