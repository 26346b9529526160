"""A backtest's three files: ``trades.csv`` (columns in ``TRADES_COLUMNS``, docs/strategies.md), ``report.json``, ``equity.png``.

The metrics are ``engine.analytics.metrics.compute_metrics`` (what ``/stats`` shows) over the
closed trades as a trade-based scope with the starting balance as capital; the chart is
``engine.analytics.charts.render_chart`` of the same curve. Everything is written in a fixed
order and format, so the same bars give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.analytics.data import Exposure, ScopeData, Trade
from engine.analytics.metrics import PerformanceMetrics, build_curve, compute_metrics
from engine.backtest.simulator import BacktestResult

TRADES_COLUMNS = (
    "setup_id,side,entry,sl,tp,placed_at,status,filled_at,fill_price,exit_at,exit_price,exit_reason"
).split(",")
STATUSES = ("pending", "refused", "cancelled", "expired", "filled", "closed")
DAYS_PER_MONTH = Decimal("30.436875")  # 365.2425 / 12
_CENT = Decimal("0.01")
_RATIO = Decimal("0.0001")


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _price(value: Decimal | None, tick: Decimal) -> str:
    if value is None:
        return ""
    exponent = tick.normalize().as_tuple().exponent
    places = Decimal(1).scaleb(exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return format(value.quantize(places), "f")


def trades_csv(result: BacktestResult) -> str:
    tick = result.spec.tick_size
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRADES_COLUMNS)
    for t in result.trades:
        s = t.setup
        writer.writerow(
            [
                s.setup_id,
                s.side.value,
                _price(t.entry, tick),
                _price(s.sl, tick),
                _price(s.tp, tick),
                _time(s.placed_at),
                t.status,
                _time(t.filled_at),
                _price(t.fill_price, tick),
                _time(t.exit_at),
                _price(t.exit_price, tick),
                t.exit_reason or "",
            ]
        )
    return out.getvalue()


def analytics_data(result: BacktestResult) -> ScopeData:
    """The backtest's trades as analytics sees live ones (account 0, strategy scope)."""
    trades: list[Trade] = []
    exposures: list[Exposure] = []
    for number, t in enumerate(result.trades, start=1):
        if t.filled_at is None or t.fill_price is None or t.volume is None:
            continue
        exposures.append(Exposure(0, t.filled_at, t.exit_at))
        if t.exit_at is None or t.profit is None:
            continue
        trades.append(
            Trade(
                position_id=number,
                account_id=0,
                symbol=result.symbol,
                side=t.setup.side.value,
                volume=t.volume,
                open_time=t.filled_at,
                open_price=t.fill_price,
                close_time=t.exit_at,
                close_price=t.exit_price,
                profit=t.profit,
                commission=Decimal(0),
                swap=Decimal(0),
                close_reason=t.exit_reason,
                signal_id=t.setup.setup_id,
                strategy=result.strategy,
            )
        )
    return ScopeData(trades=trades, exposures=exposures)


def metrics(result: BacktestResult) -> PerformanceMetrics:
    return compute_metrics(
        analytics_data(result), start=result.start, end=result.end, equity_based=False, capital=result.balance
    )


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.quantize(_CENT), "f")


def _ratio(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return "Infinity" if value.is_infinite() else format(value.quantize(_RATIO), "f")


def _float(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def report(result: BacktestResult, m: PerformanceMetrics) -> dict[str, Any]:
    counts = {status: 0 for status in STATUSES}
    for t in result.trades:
        counts[t.status] += 1
    months = Decimal((result.end - result.start).total_seconds()) / 86400 / DAYS_PER_MONTH
    per_month = Decimal(m.trades) / months if months > 0 else None
    return {
        "strategy": result.strategy,
        "symbol": result.symbol,
        "bars": result.bars,
        "first_bar": _time(result.start),
        "end": _time(result.end),
        "tick_size": format(result.spec.tick_size, "f"),
        "currency": result.spec.currency_profit,
        "starting_balance": _money(result.balance),
        "ending_balance": _money(result.end_balance),
        "risk_percent": format(result.risk_percent, "f"),
        "setups": len(result.trades),
        "orders": counts,
        "refusals": dict(sorted(result.refusals.items())),
        "trades": m.trades,
        "wins": m.wins,
        "losses": m.losses,
        "net_profit": _money(m.net_profit),
        "gross_profit": _money(m.gross_profit),
        "gross_loss": _money(m.gross_loss),
        "profit_factor": _ratio(m.profit_factor),
        "win_rate": _ratio(m.win_rate),
        "expectancy": _money(m.expectancy),
        "max_drawdown": _money(m.max_drawdown),
        "max_drawdown_pct": _ratio(m.max_drawdown_pct),
        "sharpe": _float(m.sharpe),
        "sortino": _float(m.sortino),
        "trades_per_month": _ratio(per_month),
    }


def equity_png(result: BacktestResult) -> bytes:
    from engine.analytics.charts import ChartLabels, render_chart

    curve = build_curve(analytics_data(result), result.start, equity_based=False, capital=result.balance)
    labels = ChartLabels(
        title=f"Backtest {result.strategy} {result.symbol} (UTC)",
        equity=f"Equity ({result.spec.currency_profit})",
        pnl=f"P&L ({result.spec.currency_profit})",
        drawdown_pct="Drawdown %",
        drawdown_amount="Drawdown",
        peak="Peak",
        no_data="No closed trades",
    )
    return render_chart(curve, labels, end=result.end)


def write_outputs(result: BacktestResult, out_dir: Path) -> list[Path]:
    """Write the three files into ``out_dir`` (created if missing); their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    m = metrics(result)
    paths = [out_dir / "trades.csv", out_dir / "report.json", out_dir / "equity.png"]
    paths[0].write_text(trades_csv(result), encoding="utf-8")
    paths[1].write_text(json.dumps(report(result, m), indent=2) + "\n", encoding="utf-8")
    paths[2].write_bytes(equity_png(result))
    return paths
