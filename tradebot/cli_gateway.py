"""``tradebot gateway serve|cert`` (docs/mt5.md, *Running terminals*): the MT5 terminal gateway's host side."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

gateway_app = typer.Typer(
    help="The MT5 terminal gateway (run it on the terminals' host).", no_args_is_help=True
)


@gateway_app.command("serve")
def gateway_serve(
    listen: str = typer.Option("0.0.0.0:8765", "--listen", help="HOST:PORT to listen on"),
    isolation: str = typer.Option(
        "auto", "--isolation", help="auto, process (one child process per account) or thread"
    ),
) -> None:
    """Serve this host's MT5 terminals (MT5_MODULE) to engines holding GATEWAY_TOKEN."""
    from engine.gateway.serve import ServeOptions, parse_listen, serve
    from engine.observability.logs import register_secret
    from engine.settings import SettingsError
    from tradebot.cli_common import fail, settings_or_exit

    settings = settings_or_exit()
    if settings.gateway_token is not None:
        register_secret(settings.gateway_token.get_secret_value())
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        fail(str(exc))
    if isolation not in ("auto", "process", "thread"):
        fail("--isolation must be auto, process or thread")
    try:
        asyncio.run(serve(settings, ServeOptions(host, port, isolation)))  # type: ignore[arg-type]
    except SettingsError as exc:
        fail(f"configuration error: {exc}")
    except OSError as exc:
        fail(f"cannot listen on {listen}: {exc}", code=1)
    except KeyboardInterrupt:
        pass


@gateway_app.command("cert")
def gateway_cert(
    host: list[str] = typer.Option(..., "--host", help="a name or IP the engine uses for this host (repeat)"),
    out: Path = typer.Option(Path("."), "--out", help="directory for gateway.crt and gateway.key"),
) -> None:
    """Make a self-signed certificate: the gateway serves it, the engine pins it (MT5_GATEWAY_CA)."""
    from engine.gateway.certs import write_pair
    from tradebot.cli_common import fail

    try:
        cert, key = write_pair(out, host)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    typer.echo(f"certificate: {cert} (copy it to the engine's host, MT5_GATEWAY_CA)")
    typer.echo(f"private key: {key} (stays on this host, GATEWAY_TLS_KEY)")


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
