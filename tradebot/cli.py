"""The ``tradebot`` command line (docs/cli.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer

from engine.settings import Settings, SettingsError, load_settings

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


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr and a non-zero exit status."""
    typer.echo(f"tradebot: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        fail(f"configuration error: {exc}")
    from engine.observability.logs import register_secret, setup_logging

    for secret in (
        settings.bot_token,
        settings.mt5_password,
        settings.outbound_secret,
        settings.secret_key,
        settings.webhook_secret,
    ):
        if secret is not None:
            register_secret(secret.get_secret_value())
    setup_logging(settings.log_level, settings.log_json)
    return settings


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

    from tradebot.preflight import PreflightError, preflight
    from tradebot.runtime import Runtime, serve

    try:
        preflight(settings)  # token, port, Telegram: before migrations, the loop or the bot start
    except PreflightError as exc:
        fail(str(exc))

    try:
        asyncio.run(serve(Runtime(settings)))
    except SettingsError as exc:
        fail(f"configuration error: {exc}")


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
) -> None:
    """Everything offline: emulator, bot, engine, broker, demo producer, and a page to act as subscribers."""
    from sandbox.config import SandboxError, SandboxOptions, parse_interval
    from sandbox.runner import main as run_sandbox

    try:
        options = SandboxOptions(
            broker=broker,
            port=port,
            emulator_port=emulator_port,
            data_dir=data_dir,
            signal_every=parse_interval(signal_every),
        )
    except SandboxError as exc:
        fail(str(exc))
    raise typer.Exit(run_sandbox(options))


from tradebot.cli_producers import register as _register_producer_commands  # noqa: E402

_register_producer_commands(app)

from tradebot.cli_accounts import register as _register_account_commands  # noqa: E402

_register_account_commands(app)


def main() -> None:
    try:
        app()
    except SettingsError as exc:  # raised by a command's late checks (e.g. Settings.require)
        typer.echo(f"tradebot: configuration error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
