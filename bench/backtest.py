"""Backtest speed and memory: 100,000 generated H1 bars through ``tradebot backtest``'s code path.

Writes a CSV of a seeded random walk, then loads it, replays it through Fib-RSI and the order
construction, and writes trades.csv / report.json / equity.png, measuring the wall time of each
part, the CPU time of it all (what one core spends, unaffected by other work on a shared machine),
and the peak resident memory of the process. Targets: < 10 s and < 300 MB on one core.
Prints one JSON object. Usage: ``python bench/backtest.py [--bars N]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_bars(path: Path, n: int, seed: int = 2024) -> None:
    rng = np.random.default_rng(seed)
    close = np.round(2000 * np.exp(np.cumsum(rng.normal(0, 0.003, n))), 2)
    opens = np.concatenate(([2000.0], close[:-1]))
    high = np.round(np.maximum(opens, close) * (1 + rng.uniform(0, 0.002, n)), 2)
    low = np.round(np.minimum(opens, close) * (1 - rng.uniform(0, 0.002, n)), 2)
    start = int(datetime(2010, 1, 4, tzinfo=UTC).timestamp())
    times = (np.datetime64(start, "s") + np.arange(n) * np.timedelta64(3600, "s")).astype(str)
    with path.open("w") as out:
        out.write("time,open,high,low,close,volume\n")
        for k in range(n):
            out.write(f"{times[k]}Z,{opens[k]:.2f},{high[k]:.2f},{low[k]:.2f},{close[k]:.2f},100\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.csv"
        write_bars(data, args.bars)
        started, cpu_started = time.perf_counter(), time.process_time()
        from engine.backtest.data import load_bars
        from engine.backtest.report import write_outputs
        from engine.backtest.simulator import run_backtest
        from engine.backtest.specs import backtest_spec
        from engine.strategies.fib_rsi import FibRsi

        imported = time.perf_counter()
        bars = load_bars(data)
        loaded = time.perf_counter()
        spec = backtest_spec("XAUUSD")
        result = run_backtest(
            FibRsi("XAUUSD", spec.tick_size), bars, spec, balance=Decimal(10000), risk_percent=Decimal(2)
        )
        replayed = time.perf_counter()
        write_outputs(result, Path(tmp) / "out")
        done, cpu_done = time.perf_counter(), time.process_time()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    total = done - started
    print(
        json.dumps(
            {
                "bench": "backtest",
                "bars": args.bars,
                "setups": len(result.trades),
                "closed_trades": sum(1 for t in result.trades if t.status == "closed"),
                "import_s": round(imported - started, 3),
                "load_s": round(loaded - imported, 3),
                "replay_s": round(replayed - loaded, 3),
                "write_s": round(done - replayed, 3),
                "total_s": round(total, 3),
                "cpu_s": round(cpu_done - cpu_started, 3),  # one core's work, whatever the machine's load
                "peak_rss_mb": round(peak_mb, 1),
                "target_s": 10,
                "target_mb": 300,
                "ok": cpu_done - cpu_started < 10 and peak_mb < 300,  # wall time is reported, not judged
            }
        )
    )


if __name__ == "__main__":
    main()
