"""``tradebot producer ...``, ``tradebot signal send`` and ``tradebot signal update`` (docs/cli.md)."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import typer

producer_app = typer.Typer(
    help="Manage producers (who may post signals).", no_args_is_help=True, rich_markup_mode=None
)
signal_app = typer.Typer(
    help="Send signals to a running server.", no_args_is_help=True, rich_markup_mode=None
)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tradebot: {message}", err=True)
    raise typer.Exit(code)


def _service(need_key: bool) -> Any:
    """Settings, migrated database and the producer service (async parts run by the caller)."""
    from tradebot.cli_common import settings_or_exit

    settings = settings_or_exit()
    if need_key and settings.secret_key is None:
        _fail("configuration error: SECRET_KEY: required to create a producer (e.g. `openssl rand -hex 32`)")
    from engine.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        _fail(f"migration failed: {exc}", code=1)
    if need_key:  # a secret encrypted under a wrong key could never be read back
        from tradebot.cli_secrets import require_matching_key

        require_matching_key(settings)
    return settings


def _run(settings: Any, work: Any) -> Any:
    from tradebot.app import build_services

    async def main() -> Any:
        services = build_services(settings)
        try:
            return await work(services.producers)
        finally:
            await services.close()
            await services.db.dispose()

    return asyncio.run(main())


@producer_app.command("add")
def producer_add(
    name: str = typer.Argument(..., help="A unique name, e.g. the strategy's"),
    rate: str | None = typer.Option(None, help="Requests a second (default PRODUCER_RATE_PER_SECOND)"),
    burst: int | None = typer.Option(None, min=1, help="Burst size (default PRODUCER_BURST)"),
) -> None:
    """Create a producer; prints its id, secret and token once (they are not shown again)."""
    from engine.ingest.producers import ProducerError

    rate_value: Decimal | None = None
    if rate is not None:
        try:
            rate_value = Decimal(rate)
        except InvalidOperation:
            _fail(f"--rate must be a number, got {rate!r}")
        if not rate_value.is_finite() or rate_value <= 0:
            _fail(f"--rate must be a number above 0, got {rate!r}")
    settings = _service(need_key=True)
    try:
        made = _run(settings, lambda svc: svc.add(name, rate_per_second=rate_value, burst=burst))
    except ProducerError as exc:  # a bad name or limit, a name taken: the command is at fault
        _fail(str(exc))
    typer.echo(f"id:     {made.id}")
    typer.echo(f"name:   {made.name}")
    typer.echo(f"secret: {made.secret}")
    typer.echo(f"token:  {made.token}")
    typer.echo("Keep the secret and the token now: they are stored encrypted/hashed and never shown again.")


@producer_app.command("list")
def producer_list() -> None:
    """List producers (id, name, status, rate limit)."""
    settings = _service(need_key=False)
    rows = _run(settings, lambda svc: svc.list())
    if not rows:
        typer.echo("no producers")
        return
    typer.echo(f"{'ID':<36}  {'STATUS':<8}  {'RATE LIMIT':<20}  NAME")
    for row in rows:
        limit = f"{row.rate_per_second or settings.producer_rate_per_second}/s burst {row.burst or settings.producer_burst}"
        typer.echo(f"{row.id:<36}  {row.status:<8}  {limit:<20}  {row.name}")


def _set_status(producer_id: str, enable: bool) -> None:
    settings = _service(need_key=False)

    async def work(svc: Any) -> bool:
        return bool(await (svc.enable(producer_id) if enable else svc.disable(producer_id)))

    if not _run(settings, work):
        _fail(f"no producer with id {producer_id}", code=1)
    typer.echo(f"producer {producer_id} {'enabled' if enable else 'disabled'}")


@producer_app.command("disable")
def producer_disable(producer_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Refuse this producer's signals (403) from now on (running servers: within 2 s)."""
    _set_status(producer_id, enable=False)


@producer_app.command("enable")
def producer_enable(producer_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Accept this producer's signals again."""
    _set_status(producer_id, enable=True)


_URL = typer.Option(None, help="Server base URL (default http://HTTP_HOST:HTTP_PORT)")
_PRODUCER = typer.Option(None, envvar="TRADEBOT_PRODUCER_ID", help="X-Producer-Id")
_SECRET = typer.Option(None, envvar="TRADEBOT_PRODUCER_SECRET", help="The producer's secret")
_KEY = typer.Option(None, help="Idempotency-Key header")
_TIMEOUT = typer.Option(10.0, help="Seconds to wait for the answer")


@signal_app.command("send")
def signal_send(
    body: str | None = typer.Argument(None, help="The JSON body; read from stdin when omitted or '-'"),
    url: str | None = _URL,
    producer_id: str | None = _PRODUCER,
    secret: str | None = _SECRET,
    idempotency_key: str | None = _KEY,
    timeout: float = _TIMEOUT,
) -> None:
    """Sign a signal and POST it; prints the status and the answer; exit 1 unless 2xx."""
    _sign_and_post(None, body, url, producer_id, secret, idempotency_key, timeout)


@signal_app.command("update")
def signal_update(
    signal_id: str = typer.Argument(..., metavar="ID", help="The signal's id, or your own id from its body"),
    body: str | None = typer.Argument(
        None, help='The update, e.g. \'{"action": "move_sl", "sl": "entry"}\'; stdin when omitted or \'-\''
    ),
    url: str | None = _URL,
    producer_id: str | None = _PRODUCER,
    secret: str | None = _SECRET,
    idempotency_key: str | None = _KEY,
    timeout: float = _TIMEOUT,
) -> None:
    """Sign an update to a signal (move_sl, move_tp, close, cancel, note) and POST it; exit 1 unless 2xx."""
    if not 1 <= len(signal_id) <= 64:
        _fail("ID must be 1 to 64 characters")
    _sign_and_post(signal_id, body, url, producer_id, secret, idempotency_key, timeout)


def _sign_and_post(
    signal_id: str | None,
    body: str | None,
    url: str | None,
    producer_id: str | None,
    secret: str | None,
    key: str | None,
    timeout: float,
) -> None:
    if not producer_id or not secret:
        _fail(
            "--producer-id and --secret (or TRADEBOT_PRODUCER_ID and TRADEBOT_PRODUCER_SECRET) are required"
        )
    raw = (sys.stdin.read() if body in (None, "-") else body or "").encode()
    if url is None:
        from tradebot.cli_common import settings_or_exit

        settings = settings_or_exit()
        url = f"http://{settings.http_host}:{settings.http_port}"
    status, text = asyncio.run(_post(url, producer_id, secret, raw, key, timeout, signal_id))  # type: ignore[arg-type]
    typer.echo(str(status))
    typer.echo(text)
    if not 200 <= status < 300:
        raise typer.Exit(1)


async def _post(
    url: str,
    producer_id: str,
    secret: str,
    raw: bytes,
    key: str | None,
    seconds: float,
    signal_id: str | None,
) -> tuple[int, str]:
    from engine.api.client import SignalClient

    async with SignalClient(url, producer_id, secret, timeout=seconds) as client:
        target = client.signal_url() if signal_id is None else client.updates_url(signal_id)
        answer = await client.send_raw(target, raw, key)
    if answer.status == 0:
        _fail(f"cannot reach {target}: {answer.error}", code=1)
    return answer.status, answer.text


def register(app: typer.Typer) -> None:
    app.add_typer(producer_app, name="producer")
    app.add_typer(signal_app, name="signal")
