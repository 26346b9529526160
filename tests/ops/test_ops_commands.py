"""The command layer on SQLite and PostgreSQL: close-all cancels pending orders, the drawdown guard
too, pause/resume by scope, and the CLI over the same database (one-line errors, exit 2)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from engine.brokers.base import AccountSnapshot
from engine.ops.views import OpsError, Scope
from engine.states import OrderStatus
from engine.store.db import Database
from engine.store.events import DRAWDOWN_TRIGGERED, ORDER_REJECTED
from engine.store.models import AuditLog, DomainEvent, Order
from tests.support.ops import ops_world
from tradebot.cli import app

runner = CliRunner()


async def order_status(db: Database, order_id: str) -> str:
    async with db.session() as s:
        order = await s.get(Order, order_id)
        assert order is not None
        return order.status


async def events(db: Database, type_: str) -> list[DomainEvent]:
    async with db.session() as s:
        return list((await s.scalars(select(DomainEvent).where(DomainEvent.type == type_))).all())


async def test_closeall_closes_positions_and_cancels_pending_orders(db: Database) -> None:
    async with ops_world(db) as world:
        await world.fill(0)
        await world.fill(0, key="second")
        limit_a = await world.place_limit(0)
        limit_b = await world.place_limit(1)
        report = await world.ops.positions()
        assert (report.positions_total, report.orders_total) == (2, 2)
        assert {o.id for o in report.orders} == {limit_a.id, limit_b.id}
        assert {o.status for o in report.orders} == {"placed"}
        status = await world.ops.status(live_seconds=None)
        assert (status.open_positions, status.pending_orders) == (2, 2)
        assert [(a.open_positions, a.pending_orders) for a in status.accounts] == [(2, 1), (0, 1)]

        result = await world.ops.close_all(Scope.everything(), "cli")
        assert (result.requested, result.closed, result.failed) == (2, 2, 0)
        assert (result.orders_requested, result.orders_cancelled, result.orders_failed) == (2, 2, 0)
        assert result.pnl < 0  # the spread, twice
        for index in (0, 1):
            assert await (await world.broker(index)).pending_orders() == []
            assert await (await world.broker(index)).positions() == []
        assert await order_status(world.db, limit_a.id) == OrderStatus.CANCELLED
        assert await order_status(world.db, limit_b.id) == OrderStatus.CANCELLED
        rejected = [e.payload for e in await events(world.db, ORDER_REJECTED)]
        assert {p["order_id"] for p in rejected} == {limit_a.id, limit_b.id}
        assert {p["reason_code"] for p in rejected} == {"cancelled"}
        [line] = await world.audit("admin.closeall")
        assert (line.actor, line.target) == ("cli", "everything")
        assert line.details["closed"] == 2 and line.details["orders_cancelled"] == 2
        empty = await world.ops.positions()
        assert (empty.positions_total, empty.orders_total) == (0, 0)


async def test_closeall_of_an_account_with_only_a_pending_order(db: Database) -> None:
    async with ops_world(db) as world:
        await world.fill(1)
        order = await world.place_limit(0)
        account_id = world.pairs[0][1].id
        result = await world.ops.close_all(Scope.account(account_id), "token:ci")
        assert (result.requested, result.closed, result.orders_requested, result.orders_cancelled) == (
            0,
            0,
            1,
            1,
        )
        assert await order_status(world.db, order.id) == OrderStatus.CANCELLED
        assert (await world.ops.positions()).positions_total == 1  # the other account is untouched
        [line] = await world.audit("admin.closeall")
        assert (line.actor, line.target) == ("token:ci", f"account:{account_id}")


async def test_an_order_not_sent_yet_is_cancelled_and_never_sent(db: Database) -> None:
    async with ops_world(db) as world:
        user, account = world.pairs[0]
        from tests.support.factories import make_approval

        order = await world.services.execution.order_for_decision(
            await make_approval(world.db, world.producer, user, account)
        )
        assert order is not None and order.status == OrderStatus.PENDING
        result = await world.ops.close_all(Scope.subscriber(user.telegram_id), "cli")
        assert (result.orders_requested, result.orders_cancelled) == (1, 1)
        after = await world.services.execution.process(order.id)
        assert after.status == OrderStatus.CANCELLED and after.attempts == 0
        assert await (await world.broker(0)).positions() == []


async def test_a_drawdown_breach_cancels_pending_orders_too(db: Database) -> None:
    async with ops_world(db) as world:
        await world.fill(0)
        order = await world.place_limit(0)
        account_id = world.pairs[0][1].id
        assert world.services.drawdown is not None
        crash = AccountSnapshot("p", Decimal("7000"), Decimal("7000"), Decimal(0), Decimal("7000"))
        observation = await world.services.drawdown.observe(account_id, crash)
        assert observation.closed is not None
        assert (observation.closed.closed, observation.closed.orders_cancelled) == (1, 1)
        assert await order_status(world.db, order.id) == OrderStatus.CANCELLED
        assert await (await world.broker(0)).pending_orders() == []
        [alert] = await events(world.db, DRAWDOWN_TRIGGERED)
        assert alert.payload["orders_cancelled"] == 1
        account = await world.account(0)
        assert account.trading_state == "halted" and account.paused_reason == "drawdown"
        # resume by scope: still past the limit, so it stays halted and says so
        result = await world.ops.resume(Scope.account(account_id), "cli")
        assert [(c.outcome, c.trading_state) for c in result.accounts] == [("still_in_drawdown", "halted")]


async def test_pause_and_resume_by_scope(db: Database) -> None:
    async with ops_world(db) as world:
        user, account = world.pairs[0]
        paused = await world.ops.pause(Scope.subscriber(user.telegram_id), "tg:900")
        assert paused.changed and [(c.account_id, c.trading_state) for c in paused.accounts] == [
            (account.id, "reducing")
        ]
        again = await world.ops.pause(Scope.account(account.id), "tg:900")
        assert not again.changed and again.accounts[0].outcome == "unchanged"
        status = await world.ops.status(live_seconds=None)
        assert [a.trading_state for a in status.accounts] == ["reducing", "active"]
        assert not status.paused  # an account's pause is not the global pause
        from tests.support.factories import make_approval

        refused = await world.services.execution.execute_decision(
            await make_approval(world.db, world.producer, user, account)
        )
        assert refused is not None and refused.reason_code == "account_reducing"
        resumed = await world.ops.resume(Scope.account(account.id), "tg:900")
        assert resumed.changed and resumed.accounts[0].trading_state == "active"
        await world.fill(0)

        assert (await world.ops.pause(Scope.everything(), "cli")).changed
        assert (await world.ops.status(live_seconds=None)).paused_by == "cli"
        assert not (await world.ops.pause(Scope.everything(), "cli")).changed
        assert (await world.ops.resume(Scope.everything(), "cli")).changed
        targets = [(line.action, line.target) for line in await world.audit("admin.pause")]
        assert targets == [
            ("admin.pause", f"subscriber:{user.telegram_id}"),
            ("admin.pause", f"account:{account.id}"),
            ("admin.pause", "everything"),
            ("admin.pause", "everything"),
        ]


async def test_unknown_scopes_change_nothing(db: Database) -> None:
    async with ops_world(db) as world:
        for action in (world.ops.pause, world.ops.resume, world.ops.close_all):
            with pytest.raises(OpsError) as caught:
                await action(Scope.account(999_999), "cli")
            assert caught.value.code == "not_found"
        with pytest.raises(OpsError):
            await world.ops.positions(Scope.subscriber(424_242))
        async with world.db.session() as s:
            assert (await s.scalars(select(AuditLog).where(AuditLog.action.like("admin.%")))).all() == []


def cli(url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    return result.exit_code, result.stdout, result.stderr


async def test_the_cli_acts_on_the_same_database(db: Database) -> None:
    async with ops_world(db) as world:
        # far below any price: the CLI's own paper broker prices from the default feed, not this test's
        order = await world.place_limit(0, entry="0.50000", sl="0.49000", tp="1.10500")
        account_id = world.pairs[0][1].id
        code, out, _err = await asyncio.to_thread(cli, db.url, "positions", "--account", str(account_id))
        assert code == 0 and "pending orders: 1" in out and "BUY limit" in out
        code, out, _err = await asyncio.to_thread(cli, db.url, "pause")
        assert code == 0 and out.startswith("paused")
        assert await world.services.control.is_paused()  # what a running instance reads per order
        code, out, _err = await asyncio.to_thread(
            cli, db.url, "closeall", "--account", str(account_id), "--yes"
        )
        assert code == 0 and "cancelled 1 of 1 pending orders" in out
        assert await order_status(world.db, order.id) == OrderStatus.CANCELLED
        assert [line.actor for line in await world.audit("admin.closeall")] == ["cli"]


@pytest.mark.parametrize(
    "args,message",
    [
        (("closeall",), "add --yes to confirm"),
        (("pause", "--account", "1", "--subscriber", "2"), "not both"),
        (("positions", "--account", "0"), "--account must be a positive number"),
        (("resume", "--account", "999999"), "no execution account with id 999999"),
        (("admin", "token", "add", "x", "--scope", "write"), "--scope must be read or trade"),
        (("admin", "token", "revoke", "nobody"), "no live token named 'nobody'"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(sqlite_url: str, args: tuple[str, ...], message: str) -> None:
    code, out, err = cli(sqlite_url, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tradebot: ") and message in err
