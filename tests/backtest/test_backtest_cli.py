"""``tradebot backtest``: the three files from a 5,000-bar CSV, the same bytes twice, MT5's export
format, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tradebot.cli import app

runner = CliRunner()


def write_csv(path: Path, n: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    close = np.round(2000 * np.exp(np.cumsum(rng.normal(0, 0.003, n))), 2)
    opens = np.concatenate(([2000.0], close[:-1]))
    high = np.round(np.maximum(opens, close) * (1 + rng.uniform(0, 0.002, n)), 2)
    low = np.round(np.minimum(opens, close) * (1 - rng.uniform(0, 0.002, n)), 2)
    t0 = int(datetime(2023, 1, 2, tzinfo=UTC).timestamp())
    lines = ["time,open,high,low,close,volume"]
    for k in range(n):
        stamp = datetime.fromtimestamp(t0 + 3600 * k, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{stamp},{opens[k]:.2f},{high[k]:.2f},{low[k]:.2f},{close[k]:.2f},100")
    path.write_text("\n".join(lines) + "\n")


def test_backtest_writes_three_files_deterministically(tmp_path: Path) -> None:
    data = tmp_path / "xau.csv"
    write_csv(data, 5000)
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        result = runner.invoke(app, ["backtest", "fib-rsi", "--data", str(data), "--symbol", "XAUUSD",
                                     "--out", str(out)])  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs.append(
            {name: (out / name).read_bytes() for name in ("trades.csv", "report.json", "equity.png")}
        )
    assert outputs[0] == outputs[1]
    trades = outputs[0]["trades.csv"].decode().splitlines()
    assert (
        trades[0]
        == "setup_id,side,entry,sl,tp,placed_at,status,filled_at,fill_price,exit_at,exit_price,exit_reason"
    )
    assert len(trades) > 20
    report = json.loads(outputs[0]["report.json"])
    assert report["bars"] == 5000 and report["setups"] == len(trades) - 1
    for key in ("net_profit", "profit_factor", "win_rate", "expectancy", "max_drawdown", "sharpe",
                "sortino", "trades_per_month"):  # fmt: skip
        assert report[key] is not None, key
    assert outputs[0]["equity.png"].startswith(b"\x89PNG")


def test_mt5_export_is_read(tmp_path: Path) -> None:
    data = tmp_path / "XAUUSD_H1.csv"
    rows = ["<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"]
    price = 2000.0
    for k in range(300):
        step = 3.0 if (k // 20) % 2 else -3.0
        rows.append(f"2024.01.{1 + k // 24:02d}\t{k % 24:02d}:00:00\t{price:.2f}\t{max(price, price + step) + 0.5:.2f}\t"
                    f"{min(price, price + step) - 0.5:.2f}\t{price + step:.2f}\t100\t0\t20")  # fmt: skip
        price += step
    data.write_text("\n".join(rows) + "\n")
    result = runner.invoke(app, ["backtest", "fib-rsi", "--data", str(data), "--symbol", "XAUUSD",
                                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["first_bar"] == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("time,open,high,low\n2024-01-01T00:00Z,1,1,1\n", [], "missing column(s) close"),
        ("time,open,high,low,close\n2024-01-01T01:00Z,1,1,1,1\n2024-01-01T00:00Z,1,1,1,1\n", [],
         "row 3: time is before the previous bar's"),
        ("time,open,high,low,close\n2024-01-01T01:00Z,1,1,1,1\n2024-01-01T01:00Z,1,1,1,1\n", [],
         "row 3: duplicate time"),
        ("time,open,high,low,close\n2024-01-01T01:00Z,1,1,1,NaN\n", [], "row 2: close 'NaN' is not a positive number"),
        ("time,open,high,low,close\nyesterday,1,1,1,1\n", [], "row 2: time 'yesterday' is not a date"),
        ("time,open,high,low,close\n2024-01-01T01:00Z,1,2,1.5,1\n", [], "row 2: high and low do not contain"),
        ("time,open,high,low,close\n2024-01-01T01:00Z,1,1,1,1\n", ["--symbol", "NOSPEC"], "no symbol spec for NOSPEC"),
        ("time,open,high,low,close\n2024-01-01T01:00Z,1,1,1,1\n", ["--risk", "0"], "--risk must be above 0"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_status_2(
    tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    data = tmp_path / "bars.csv"
    data.write_text(content)
    argv = ["backtest", "fib-rsi", "--data", str(data), "--symbol", "XAUUSD", "--out", str(tmp_path / "o")]
    result = runner.invoke(app, argv + args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "o").exists()
