"""How soon the sandbox shows a Fib-RSI signal: setups on the simulated terminal's accelerated bars.

The sandbox runs Fib-RSI on XAUUSD and EURUSD with ``mt5sim``'s bar clock closing an "H1" bar
every ``--bar-seconds`` real seconds (``sandbox/strategy.py``). This reads the bars the producer
would read (``copy_rates_from_pos`` on a temporary simulated terminal with that bar clock, the
default seed), feeds them to Fib-RSI one bar at a time as the live producer does, and reports:

- setups per 100 bars (both symbols; only bars with a full 200-bar window before them);
- the wait from a start at any bar to the first setup final after it, in bars and in seconds
  (median, 90th and 99th percentile, worst): what a newcomer waits for the first Fib-RSI signal;
- how many of those setups the engine's order rules (``build_order``: stops level, minimum stop
  distance, MIN_RR) would place on a 10,000 USD account at the market when they are emitted.

Prints one JSON object. Usage: ``python bench/sandbox_setups.py [--bar-seconds 1] [--bars 6000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOLS = ("XAUUSD", "EURUSD")
WINDOW = 200
LOGIN, PASSWORD = 7_100_001, "bench"
TEN_THOUSAND = Decimal(10000)


def read_bars(state: Path, symbol: str, bar_seconds: float, count: int, at: datetime) -> Any:
    """``count`` closed bars ending at ``at``, on a terminal whose bar clock started at ``at``."""
    import mt5sim
    from engine.strategies.base import Bars
    from mt5sim import control

    control.set_time(at, state=state)
    control.set_bar_clock(bar_seconds, state=state)
    assert mt5sim.initialize(str(state), login=LOGIN, password=PASSWORD)
    rates = mt5sim.copy_rates_from_pos(symbol, mt5sim.TIMEFRAME_H1, 1, count)
    return Bars.from_arrays(rates["time"], rates["open"], rates["high"], rates["low"], rates["close"])


def account() -> Any:
    from engine.brokers.base import AccountSnapshot

    return AccountSnapshot("1", TEN_THOUSAND, TEN_THOUSAND, Decimal(0), TEN_THOUSAND, currency="USD")


def executable(setup: Any, close: float) -> bool:
    from engine.brokers.base import OrderType, Tick
    from engine.execution.orders import BuiltOrder, OrderRules, SignalParams, build_order
    from engine.risk.market_hours import parse_market_hours
    from engine.strategies.placement import place_limit
    from mt5sim import feed
    from mt5sim.pricefeed import SimulatedFeed
    from mt5sim.specs import DEFAULT_SPECS

    spec = SimulatedFeed().spec(setup.symbol)
    assert spec is not None
    bid = Decimal(repr(close))
    ask = bid + feed.spread_of(DEFAULT_SPECS[setup.symbol])
    placed = place_limit(setup, bid, ask, spec.point, spec.tick_size)
    if placed.refused is not None:
        return False
    now = datetime.now(UTC)
    built = build_order(
        client_order_id="bench",
        signal=SignalParams(setup.side, OrderType.LIMIT, placed.entry, setup.sl, setup.tp, Decimal(2)),
        account=account(),
        spec=spec,
        tick=Tick(setup.symbol, bid, ask, now),
        rules=OrderRules(market_hours=parse_market_hours("*=24/7")),
        now=now,
    )
    return isinstance(built, BuiltOrder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bar-seconds", type=float, default=1.0)
    parser.add_argument("--bars", type=int, default=6000)
    parser.add_argument("--at", default="2026-06-01T00:00:00+00:00", help="where the bar clock starts")
    args = parser.parse_args()
    from engine.strategies.fib_rsi import FibRsi
    from mt5sim import control

    started = time.perf_counter()
    at = datetime.fromisoformat(args.at) + timedelta(seconds=args.bars * args.bar_seconds)
    finals: list[int] = []  # bar index of each setup's final bar, both symbols
    placed = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "mt5sim.sqlite3"
        control.create_account(LOGIN, PASSWORD, state=state)
        control.ignore_market_hours(True, state=state)
        for symbol in SYMBOLS:
            bars = read_bars(state, symbol, args.bar_seconds, args.bars, at)
            strategy = FibRsi(symbol, feed_tick(symbol))
            for k in range(len(bars)):
                for setup in strategy.update(bars.slice(k, k + 1)):
                    if k < WINDOW:
                        continue
                    finals.append(k)
                    total += 1
                    placed += executable(setup, float(bars.close[k]))
        control.close()
    events = np.array(sorted(finals))
    starts = np.arange(WINDOW, args.bars - WINDOW)
    after = np.searchsorted(events, starts, side="right")
    known = after < len(events)
    waits = events[after[known]] - starts[known]
    pct = [*np.percentile(waits, [50, 90, 99]).tolist(), int(waits.max())]
    print(
        json.dumps(
            {
                "bar_seconds": args.bar_seconds,
                "bars_per_symbol": args.bars,
                "setups": total,
                "setups_per_100_bars": round(100 * total / (args.bars - WINDOW), 2),
                "wait_bars_p50_p90_p99_max": [round(v) for v in pct],
                "wait_seconds_p50_p90_p99_max": [round(v * args.bar_seconds) for v in pct],
                "placeable_at_emission": f"{placed}/{total}",
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


def feed_tick(symbol: str) -> Decimal:
    from mt5sim.specs import DEFAULT_SPECS

    return DEFAULT_SPECS[symbol].tick_size


if __name__ == "__main__":
    main()
