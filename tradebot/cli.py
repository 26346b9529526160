"""The ``tradebot`` command line (docs/cli.md)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import typer

from engine.settings import SettingsError
from tradebot.cli_accounts import register as _register_account_commands
from tradebot.cli_common import fail, settings_or_exit
from tradebot.cli_producers import register as _register_producer_commands

app = typer.Typer(
    name="tradebot",
    help="Telegram-first trading-signal bot with an embedded execution engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain (click) help: the rich renderer shows every flag as taking a `<bool>` value.
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """Telegram-first trading-signal bot with an embedded execution engine."""


@app.command()
def migrate() -> None:
    """Apply database migrations (upgrade to the newest schema)."""
    settings = settings_or_exit()
    from engine.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        fail(f"migration failed: {exc}", code=1)
    typer.echo("database is at the newest schema")


@app.command("run")
def run_command() -> None:
    """The product: bot + engine + HTTP server. Needs BOT_TOKEN; applies migrations first."""
    settings = settings_or_exit()
    import asyncio

    from engine.store.keycheck import KeyMismatch
    from tradebot.cli_secrets import require_matching_key
    from tradebot.preflight import PreflightError, preflight
    from tradebot.runtime import Runtime, serve

    require_matching_key(settings)  # a wrong SECRET_KEY stops here, before anything starts
    try:
        preflight(settings)  # token, port, Telegram: before migrations, the loop or the bot start
    except PreflightError as exc:
        fail(str(exc))

    try:
        asyncio.run(serve(Runtime(settings)))
    except SettingsError as exc:
        fail(f"configuration error: {exc}")
    except KeyMismatch as exc:  # the store changed between the check and the start
        fail(str(exc))


@app.command("prune")
def prune_command(
    audit_days: int | None = typer.Option(
        None,
        "--audit-days",
        help="Keep audit lines this many days (default AUDIT_RETENTION_DAYS; at least 30)",
    ),
    events_days: int | None = typer.Option(
        None,
        "--events-days",
        help="Keep processed domain events this many days (default EVENTS_RETENTION_DAYS)",
    ),
) -> None:
    """Delete audit lines and processed domain events past their retention; prints the counts."""
    from engine.store.retention import RetentionError, check_periods

    settings = settings_or_exit()
    audit_keep = settings.audit_retention_days if audit_days is None else audit_days
    events_keep = settings.events_retention_days if events_days is None else events_days
    try:
        check_periods(
            audit_keep,
            events_keep,
            audit_name="--audit-days" if audit_days is not None else "AUDIT_RETENTION_DAYS",
            events_name="--events-days" if events_days is not None else "EVENTS_RETENTION_DAYS",
        )
    except RetentionError as exc:
        fail(str(exc))
    import asyncio

    from engine.store.db import Database
    from engine.store.migrate import upgrade
    from engine.store.retention import prune

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        fail(f"migration failed: {exc}", code=1)

    async def main() -> tuple[int, int]:
        db = Database(settings.database_url)
        try:
            done = await prune(db, audit_days=audit_keep, events_days=events_keep)
        finally:
            await db.dispose()
        return done.audit_rows, done.events

    audit_rows, events = asyncio.run(main())
    typer.echo(f"deleted {audit_rows} audit line(s) older than {audit_keep} days")
    typer.echo(f"deleted {events} processed domain event(s) older than {events_keep} days")


@app.command("emulator")
def emulator_command(
    port: int = typer.Option(8081, "--port", help="port to listen on"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
) -> None:
    """The Telegram Bot API emulator alone (for trying bots and for tests)."""
    from emulator import run
    from engine.observability.logs import setup_logging

    setup_logging("INFO")
    run(host, port)


@app.command("sandbox")
def sandbox_command(
    broker: str = typer.Option("paper", "--broker", help="paper, or mt5 (the simulated MT5 terminal)"),
    port: int = typer.Option(8080, "--port", help="port of the page and the engine's HTTP server"),
    data_dir: Path = typer.Option(Path("data"), "--data-dir", help="where the sandbox keeps its files"),
    signal_every: str = typer.Option(
        "20-60", "--signal-every", help="seconds between demo signals: N or MIN-MAX"
    ),
    emulator_port: int = typer.Option(
        0, "--emulator-port", help="port of the Bot API emulator (0: any free)"
    ),
    bar_seconds: float | None = typer.Option(
        None, "--bar-seconds", help="real seconds per simulated H1 bar for Fib-RSI (default 1)"
    ),
) -> None:
    """Everything offline: emulator, bot, engine, broker, Fib-RSI and demo signals, and a page to act as subscribers."""
    from sandbox.config import SandboxError, SandboxOptions, parse_interval
    from tradebot.sandbox import main as run_sandbox

    try:
        options = SandboxOptions(
            broker=broker,
            port=port,
            emulator_port=emulator_port,
            data_dir=data_dir,
            signal_every=parse_interval(signal_every),
        )
        if bar_seconds is not None:
            options = dataclasses.replace(options, bar_seconds=bar_seconds)
    except SandboxError as exc:
        fail(str(exc))
    raise typer.Exit(run_sandbox(options))


_register_producer_commands(app)
_register_account_commands(app)

from tradebot.cli_strategy import register as _register_strategy_commands  # noqa: E402

_register_strategy_commands(app)

from tradebot.cli_gateway import register as _register_gateway_commands  # noqa: E402

_register_gateway_commands(app)
from tradebot.cli_ops import register as _register_ops_commands  # noqa: E402

_register_ops_commands(app)

from tradebot.cli_secrets import register as _register_secret_commands  # noqa: E402

_register_secret_commands(app)


def main() -> None:
    try:
        app()
    except SettingsError as exc:  # raised by a command's late checks (e.g. Settings.require)
        typer.echo(f"tradebot: configuration error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
