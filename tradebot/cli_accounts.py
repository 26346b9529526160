"""``tradebot account add|list|remove`` (docs/cli.md): the operator's way to manage execution
accounts, through the same ``AccountService`` the bot's /account uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import typer

account_app = typer.Typer(
    help="Manage subscribers' execution accounts.", no_args_is_help=True, rich_markup_mode=None
)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tradebot: {message}", err=True)
    raise typer.Exit(code)


def _run(
    work: Callable[[Any], Awaitable[Any]], *, check_key: bool = False, started_check: int | None = None
) -> Any:
    """Settings, migrations, then ``work(AccountService)`` on a fresh database connection.

    ``check_key``: first make sure SECRET_KEY is the key of the stored secrets (exit 2 if not).
    With ``started_check``, warns on stderr first when that Telegram user never sent /start (or
    has not accepted the disclaimer): the account is made, but no signal reaches them until then.
    """
    from tradebot.cli_common import settings_or_exit

    settings = settings_or_exit()
    from engine.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        _fail(f"migration failed: {exc}", code=1)
    if check_key:
        from tradebot.cli_secrets import require_matching_key

        require_matching_key(settings)

    from tradebot.app import build_services

    async def main() -> Any:
        services = build_services(settings)
        try:
            if started_check is not None:
                await _warn_unless_started(services.subscribers, started_check)
            return await work(services.accounts)
        finally:
            await services.close()
            await services.db.dispose()

    return asyncio.run(main())


async def _warn_unless_started(subscribers: Any, telegram_id: int) -> None:
    user = await subscribers.get(telegram_id)
    if user is None:
        typer.echo(
            f"tradebot: warning: Telegram user {telegram_id} has never sent /start to the bot; "
            "signals reach them only after /start and the disclaimer",
            err=True,
        )
    elif not subscribers.has_consented(user):
        typer.echo(
            f"tradebot: warning: Telegram user {telegram_id} has not accepted the disclaimer yet; "
            "signals reach them only after they do",
            err=True,
        )


# Refusals that are the operation failing, not a mistake in the command: exit 1 (else 2).
_OPERATION_FAILURES = frozenset({"login_failed", "not_found", "open_positions", "not_linked"})


def _account_error(exc: Any) -> NoReturn:
    _fail(str(exc), code=1 if getattr(exc, "code", None) in _OPERATION_FAILURES else 2)


def _positive_decimal(value: str, option: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        _fail(f"{option} must be a number, got {value!r}")
    if not amount.is_finite() or amount <= 0:
        _fail(f"{option} must be a positive number, got {value!r}")
    return amount


@account_app.command("add")
def account_add(
    telegram_id: int = typer.Option(..., "--telegram-id", help="The subscriber's Telegram user id"),
    kind: str = typer.Option(..., "--kind", help="paper or mt5", metavar="paper|mt5"),
    login: str | None = typer.Option(None, "--login", help="MT5 login, a number (mt5)"),
    password: str | None = typer.Option(
        None, "--password", help="MT5 password (mt5; asked for when omitted)"
    ),
    server: str | None = typer.Option(None, "--server", help="MT5 server (mt5)"),
    balance: str | None = typer.Option(
        None, "--balance", help="Starting balance (paper; default PAPER_BALANCE)"
    ),
    gateway: str | None = typer.Option(
        None, "--gateway", help="MT5 gateway the terminal is on (mt5; a name in MT5_GATEWAYS, or default)"
    ),
) -> None:
    """Give a subscriber an execution account; it becomes their active one."""
    from engine.accounts.service import AccountError

    if kind not in ("paper", "mt5"):
        _fail(f"--kind must be paper or mt5, got {kind!r}")
    if gateway is not None and kind != "mt5":
        _fail("--gateway applies to --kind mt5 only")
    if kind == "paper":
        given = [
            name
            for name, value in (("--login", login), ("--password", password), ("--server", server))
            if value is not None
        ]
        if given:
            _fail(f"{', '.join(given)} only apply to --kind mt5; a paper account has no login")
        amount = None if balance is None else _positive_decimal(balance, "--balance")
        try:
            account = _run(
                lambda svc: svc.create_paper(telegram_id, amount, actor="cli"), started_check=telegram_id
            )
        except AccountError as exc:
            _account_error(exc)
        typer.echo(
            f"account {account.id}: paper, balance {account.balance} {account.currency}, owner {telegram_id}"
        )
        return
    if balance is not None:
        _fail("--balance only applies to --kind paper; an MT5 account's balance is the broker's")
    if not login or not server:
        _fail("--login and --server are required with --kind mt5")
    if not login.isdigit():
        _fail(f"--login must be a number (the MT5 account number), got {login!r}")
    from tradebot.cli_common import settings_or_exit

    if settings_or_exit().secret_key is None:
        _fail(
            "configuration error: SECRET_KEY: required to store MT5 credentials (e.g. `openssl rand -hex 32`)"
        )
    if password is None:
        password = typer.prompt("MT5 password", hide_input=True)
    from engine.observability.logs import register_secret

    register_secret(password)
    try:
        account, snapshot = _run(
            lambda svc: svc.link_mt5(telegram_id, login, password, server, actor="cli", gateway=gateway),
            check_key=True,
            started_check=telegram_id,
        )
    except AccountError as exc:
        _account_error(exc)
    via = f" via gateway {account.gateway}" if account.gateway else ""
    typer.echo(
        f"account {account.id}: mt5 {account.login}@{account.server}{via}, balance {snapshot.balance} "
        f"{snapshot.currency}, equity {snapshot.equity}, owner {telegram_id}"
    )


@account_app.command("list")
def account_list(
    telegram_id: int | None = typer.Option(None, "--telegram-id", help="Only this subscriber's accounts"),
    all_: bool = typer.Option(False, "--all", help="Include removed and inactive accounts"),
) -> None:
    """List execution accounts: id, kind, owner, login@server, state."""
    rows = _run(lambda svc: svc.list_accounts(telegram_id, include_inactive=all_))
    if not rows:
        typer.echo("no accounts")
        return
    typer.echo(f"{'ID':>5}  {'KIND':5}  {'OWNER':>12}  {'LOGIN@SERVER':28}  {'BALANCE':>14}  STATE")
    for account, user in rows:
        owner = str(user.telegram_id) if user is not None else "-"
        where = f"{account.login}@{account.server}" if account.kind == "mt5" else "-"
        if account.gateway:
            where += f" ({account.gateway})"
        amount = f"{account.balance} {account.currency}" if account.balance is not None else "-"
        state = "active" if account.active else "inactive"
        if account.paused:
            state += f", paused ({account.paused_reason or 'paused'})"
        typer.echo(f"{account.id:>5}  {account.kind:5}  {owner:>12}  {where:28}  {amount:>14}  {state}")


@account_app.command("remove")
def account_remove(account_id: int = typer.Argument(..., help="The account id (see `account list`)")) -> None:
    """Retire an account: it stops trading and its stored credentials are erased (history is kept)."""
    from engine.accounts.service import AccountError

    try:
        _run(lambda svc: svc.remove(account_id, actor="cli"))
    except AccountError as exc:
        _account_error(exc)
    typer.echo(f"account {account_id} removed")


def register(app: typer.Typer) -> None:
    app.add_typer(account_app, name="account")
