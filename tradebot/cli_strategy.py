"""``tradebot strategy run`` and ``tradebot backtest`` (docs/cli.md, docs/strategies.md)."""

from __future__ import annotations

import asyncio
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

import typer

strategy_app = typer.Typer(help="Run a built-in strategy as a producer.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tradebot: {message}", err=True)
    raise typer.Exit(code)


def _decimal(option: str, text: str, low: Decimal, high: Decimal | None = None) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        _fail(f"{option} must be a number, got {text!r}")
    if not value.is_finite() or value <= low or (high is not None and value > high):
        bound = f"above {low}" + (f" and at most {high}" if high is not None else "")
        _fail(f"{option} must be {bound}, got {text}")
    return value


def _strategy_name(name: str) -> str:
    from engine.strategies import STRATEGIES

    key = name.strip().lower()
    if key not in STRATEGIES:
        _fail(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return key


def backtest_command(
    strategy: str = typer.Argument(..., help="The strategy, e.g. fib-rsi"),
    data: Path = typer.Option(
        ..., "--data", help="Bars: CSV time,open,high,low,close[,volume] or MT5's export"
    ),
    symbol: str = typer.Option(..., "--symbol", help="The symbol the bars are of, e.g. XAUUSD"),
    tick: str | None = typer.Option(
        None, "--tick", help="Price step (needed for symbols without a built-in spec)"
    ),
    balance: str = typer.Option("10000", "--balance", help="Starting balance"),
    risk: str = typer.Option("2", "--risk", help="Risk per trade, % of equity (0 < x <= 10)"),
    out: Path = typer.Option(
        Path("backtest"), "--out", help="Directory for trades.csv, report.json, equity.png"
    ),
) -> None:
    """Replay closed bars through a strategy and the live order code; write trades, report and chart."""
    name = _strategy_name(strategy)
    tick_size = _decimal("--tick", tick, Decimal(0)) if tick is not None else None
    start_balance = _decimal("--balance", balance, Decimal(0))
    risk_percent = _decimal("--risk", risk, Decimal(0), Decimal(10))
    from engine.backtest.data import load_bars
    from engine.backtest.report import metrics, write_outputs
    from engine.backtest.simulator import run_backtest
    from engine.backtest.specs import SpecError, backtest_spec
    from engine.strategies import build
    from engine.strategies.base import BarsError

    try:
        spec = backtest_spec(symbol, tick_size)
    except SpecError as exc:
        _fail(str(exc))
    try:
        bars = load_bars(data)
    except BarsError as exc:
        _fail(f"{data}: {exc}" if not str(exc).startswith(str(data)) else str(exc))
    show = sys.stderr.isatty()
    with typer.progressbar(length=len(bars), label="backtest", file=sys.stderr) if show else _NoBar() as bar:
        done = [0]

        def progress(count: int) -> None:
            bar.update(count - done[0])
            done[0] = count

        result = run_backtest(
            build(name, spec.name, spec.tick_size),
            bars,
            spec,
            balance=start_balance,
            risk_percent=risk_percent,
            progress=progress,
        )
    try:
        paths = write_outputs(result, out)
    except OSError as exc:
        _fail(f"cannot write to {out}: {exc}", code=1)
    m = metrics(result)
    typer.echo(
        f"{len(bars)} bars, {len(result.trades)} setups, {m.trades} closed trades, "
        f"net profit {m.net_profit.quantize(Decimal('0.01'))} {spec.currency_profit}"
    )
    for path in paths:
        typer.echo(f"wrote {path}")


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


@strategy_app.command("run")
def strategy_run(
    strategy: str = typer.Argument(..., help="The strategy, e.g. fib-rsi"),
    symbols: str = typer.Option(..., "--symbols", help="Comma-separated symbols, e.g. XAUUSD,EURUSD"),
    url: str | None = typer.Option(None, help="Server base URL (default http://HTTP_HOST:HTTP_PORT)"),
    producer_id: str | None = typer.Option(None, envvar="TRADEBOT_PRODUCER_ID", help="X-Producer-Id"),
    secret: str | None = typer.Option(None, envvar="TRADEBOT_PRODUCER_SECRET", help="The producer's secret"),
    metrics_port: int | None = typer.Option(None, help="Serve Prometheus metrics on this port"),
) -> None:
    """Post the strategy's setups as signed limit signals, reading closed H1 bars from MT5_MODULE."""
    name = _strategy_name(strategy)
    listed = tuple(dict.fromkeys(s.strip().upper() for s in symbols.split(",") if s.strip()))
    if not listed:
        _fail("--symbols must name at least one symbol")
    if not producer_id or not secret:
        _fail(
            "--producer-id and --secret (or TRADEBOT_PRODUCER_ID and TRADEBOT_PRODUCER_SECRET) are required"
        )
    from tradebot.cli_common import settings_or_exit

    settings = settings_or_exit()
    if settings.mt5_login is None:
        _fail("configuration error: MT5_LOGIN: required to read bars (the terminal's data login)")
    target = url or f"http://{settings.http_host}:{settings.http_port}"
    asyncio.run(_run_producer(settings, name, listed, target, producer_id, secret, metrics_port))


async def _run_producer(
    settings: Any,
    name: str,
    symbols: tuple[str, ...],
    url: str,
    producer_id: str,
    secret: str,
    port: int | None,
) -> None:
    from engine.observability.metrics import Metrics
    from engine.strategies.runner import start_producer

    metrics = Metrics()
    if port is not None:
        from prometheus_client import start_http_server

        start_http_server(port, addr=settings.http_host, registry=metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = await start_producer(settings, name, symbols, url, producer_id, secret, metrics)
    try:
        await stop.wait()
    finally:
        await running.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(strategy_app, name="strategy")
    app.command("backtest")(backtest_command)
