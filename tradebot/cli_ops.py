"""``tradebot status|positions|pause|resume|closeall`` and ``tradebot admin token ...`` (docs/cli.md, docs/operations.md).

The admin commands of Telegram, from the same command layer (``engine.ops``), audited with the
actor ``cli``. They act on the database, so they work whether or not ``tradebot run`` is up; a
running instance obeys a pause or resume from its next order. ``closeall`` acts through the
brokers the composition root builds from the settings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import typer

from engine.ops.views import (
    CloseAllResult,
    EngineStatus,
    OpsError,
    Owner,
    PauseResult,
    PositionsReport,
    Scope,
    as_json,
)

ACTOR = "cli"
admin_app = typer.Typer(help="Admin REST API tokens.", no_args_is_help=True)
token_app = typer.Typer(
    help="Bearer tokens for /api/v1/admin/ (shown once, stored hashed).", no_args_is_help=True
)

ACCOUNT = typer.Option(None, "--account", metavar="ID", help="Only this execution account")
SUBSCRIBER = typer.Option(
    None, "--subscriber", metavar="TELEGRAM_ID", help="Only this subscriber's active accounts"
)
JSON = typer.Option(False, "--json", help="Print the result as JSON (the admin REST API's shape)")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tradebot: {message}", err=True)
    raise typer.Exit(code)


def _run(work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Settings, migrations, the services from the composition root, then ``work(services)``."""
    from tradebot.cli_common import settings_or_exit

    settings = settings_or_exit()
    from engine.store.migrate import upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:
        _fail(f"migration failed: {exc}", code=1)
    from tradebot.app import build_services

    async def main() -> Any:
        services = build_services(settings)
        try:
            return await work(services)
        finally:
            await services.brokers.close()
            await services.db.dispose()

    try:
        return asyncio.run(main())
    except OpsError as exc:
        _fail(exc.message)


def _scope(account: int | None, subscriber: int | None) -> Scope:
    for name, value in (("--account", account), ("--subscriber", subscriber)):
        if value is not None and value <= 0:
            _fail(f"{name} must be a positive number")
    try:
        return Scope.of(account, subscriber)
    except OpsError as exc:
        _fail(exc.message)


def _owner(owner: Owner | None) -> str:
    if owner is None:
        return "operator"
    return (
        f"@{owner.username}" if owner.username else f"{owner.first_name or ''} ({owner.telegram_id})".strip()
    )


def _when(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _d(value: Any) -> str:
    return "-" if value is None else format(value, "f")


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(as_json(value), indent=2, ensure_ascii=False))


def render_status(s: EngineStatus) -> list[str]:
    lines = [f"engine:         {'paused by ' + (s.paused_by or '?') if s.paused else 'running'}"]
    lines.append(f"last heartbeat: {_when(s.heartbeat_at)}")
    leader = f"{s.leader.instance} ({'alive' if s.leader.alive else 'not running'})" if s.leader else "none"
    lines.append(f"trading loop:   {leader}")
    for i in s.instances:
        state = "alive" if i.alive else f"gone (last seen {_when(i.seen_at)})"
        role = ", trading loop" if i.leader and i.alive else ""
        budget = f", Telegram budget {i.telegram_budget}" if i.telegram_budget else ""
        lines.append(f"instance:       {i.id} ({state}{role}, {i.accounts} MT5 accounts{budget})")
    lines.append(f"open positions: {s.open_positions}")
    lines.append(f"pending orders: {s.pending_orders}")
    lines.append(f"outbox:         {s.outbox_pending} pending")
    lines.append(f"accounts:       {s.accounts_total}")
    for a in s.accounts:
        equity = "unavailable" if a.equity is None else f"{_d(a.equity)} {a.currency}"
        if a.equity is not None and not a.equity_live:
            equity += f" (recorded {_when(a.equity_at)})"
        state = a.trading_state + (f" ({a.state_reason})" if a.state_reason else "")
        lines.append(
            f"  #{a.id} {a.kind} {_owner(a.owner)}: equity {equity}, {a.open_positions} open, "
            f"{a.pending_orders} pending, {state}, drawdown {a.drawdown_state}"
        )
    return lines


def render_positions(r: PositionsReport) -> list[str]:
    if not r.positions_total and not r.orders_total:
        return ["no open positions and no pending orders"]
    lines = [f"open positions: {r.positions_total}"]
    for p in r.positions:
        lines.append(
            f"  {p.side.upper()} {_d(p.volume)} {p.symbol} at {_d(p.open_price)} SL {_d(p.sl)} TP {_d(p.tp)}"
            f"  account #{p.account_id} ({_owner(p.owner)}) ticket {p.ticket} {p.status}"
        )
    lines.append(f"pending orders: {r.orders_total}")
    for o in r.orders:
        lines.append(
            f"  {o.side.upper()} {o.order_type} {_d(o.volume)} {o.symbol} at {_d(o.price)} SL {_d(o.sl)}"
            f" TP {_d(o.tp)}  account #{o.account_id} ({_owner(o.owner)}) {o.status}"
            + (f" ticket {o.ticket}" if o.ticket else "")
        )
    return lines


def render_pause(r: PauseResult) -> list[str]:
    if not r.accounts:
        if r.action == "pause":
            return [
                "paused: no new signals go out and no approvals execute" if r.changed else "already paused"
            ]
        return ["resumed: signals and executions are back on" if r.changed else "not paused"]
    words = {
        "changed": "now",
        "unchanged": "unchanged,",
        "still_in_drawdown": "still past its drawdown limit,",
    }
    return [
        f"account #{c.account_id}: {words.get(c.outcome, c.outcome)} {c.trading_state}" for c in r.accounts
    ]


def render_closeall(r: CloseAllResult) -> list[str]:
    lines = [
        f"closed {r.closed} of {r.requested} positions, P&L {_d(r.pnl)}; "
        f"cancelled {r.orders_cancelled} of {r.orders_requested} pending orders"
    ]
    if r.failed or r.orders_failed:
        lines.append(
            f"{r.failed} positions and {r.orders_failed} orders not yet done; see `tradebot positions`"
        )
        lines.extend(f"  {e}" for e in r.errors)
    return lines


def status(as_json_: bool = JSON) -> None:
    """What /status shows an admin in Telegram: pause, heartbeat, loop, accounts, positions, outbox."""
    result = _run(lambda s: s.ops.status())
    if as_json_:
        _echo_json(result)
    else:
        typer.echo("\n".join(render_status(result)))


def positions(
    account: int | None = ACCOUNT, subscriber: int | None = SUBSCRIBER, as_json_: bool = JSON
) -> None:
    """Open positions and pending orders (all, one account's, or one subscriber's)."""
    scope = _scope(account, subscriber)
    result = _run(lambda s: s.ops.positions(scope, limit=1000))
    if as_json_:
        _echo_json(result)
    else:
        typer.echo("\n".join(render_positions(result)))


def pause(account: int | None = ACCOUNT, subscriber: int | None = SUBSCRIBER) -> None:
    """Pause everything (no fan-out, no executions), or put accounts in closes-only (reducing)."""
    scope = _scope(account, subscriber)
    typer.echo("\n".join(render_pause(_run(lambda s: s.ops.pause(scope, ACTOR)))))


def resume(account: int | None = ACCOUNT, subscriber: int | None = SUBSCRIBER) -> None:
    """Lift the global pause, or make accounts active again (unless still past their drawdown limit)."""
    scope = _scope(account, subscriber)
    typer.echo("\n".join(render_pause(_run(lambda s: s.ops.resume(scope, ACTOR)))))


def closeall(
    account: int | None = ACCOUNT,
    subscriber: int | None = SUBSCRIBER,
    yes: bool = typer.Option(
        False, "--yes", help="Confirm: close every position and cancel every pending order"
    ),
) -> None:
    """Cancel every pending order and close every position (all, one account's or one subscriber's)."""
    scope = _scope(account, subscriber)
    if not yes:
        _fail("closeall closes positions at the market: add --yes to confirm")
    result = _run(lambda s: s.ops.close_all(scope, ACTOR))
    typer.echo("\n".join(render_closeall(result)))
    if result.failed or result.orders_failed:
        raise typer.Exit(1)


@token_app.command("add")
def token_add(
    name: str = typer.Argument(..., help="A unique name, e.g. who or what uses it"),
    scope: str = typer.Option(
        "read", "--scope", help="read (status, positions) or trade (also pause, resume, closeall)"
    ),
) -> None:
    """Make a token; it is printed once and stored hashed."""
    from engine.ops.tokens import SCOPES, AdminTokens, TokenError

    if scope not in SCOPES:
        _fail("--scope must be read or trade")
    try:
        made = _run(lambda s: AdminTokens(s.db).add(name, scope, actor=ACTOR))
    except TokenError as exc:
        _fail(str(exc))
    typer.echo(f"name:  {made.name}")
    typer.echo(f"scope: {made.scope}")
    typer.echo(f"token: {made.token}")
    typer.echo("Keep the token now: it is stored hashed and never shown again.")


@token_app.command("list")
def token_list() -> None:
    """List tokens (name, scope, created, last used, revoked)."""
    from engine.ops.tokens import AdminTokens

    rows = _run(lambda s: AdminTokens(s.db).list())
    if not rows:
        typer.echo("no admin tokens")
        return
    typer.echo(f"{'NAME':<24} {'SCOPE':<6} {'CREATED':<24} {'LAST USED':<24} REVOKED")
    for t in rows:
        typer.echo(
            f"{t.name:<24} {t.scope:<6} {_when(t.created_at):<24} {_when(t.last_used_at):<24} {_when(t.revoked_at)}"
        )


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="The token's name")) -> None:
    """Refuse this token (401) from now on."""
    from engine.ops.tokens import AdminTokens

    if not _run(lambda s: AdminTokens(s.db).revoke(name, actor=ACTOR)):
        _fail(f"no live token named {name!r}")
    typer.echo(f"token {name} revoked")


def register(app: typer.Typer) -> None:
    for command in (status, positions, pause, resume, closeall):
        app.command(command.__name__)(command)
    admin_app.add_typer(token_app, name="token")
    app.add_typer(admin_app, name="admin")
