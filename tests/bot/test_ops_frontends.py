"""One command layer, three front ends: Telegram's /status, /closeall and /pause, `tradebot status`,
`tradebot closeall --yes` and `tradebot pause`, and the admin REST API give the same figures, the
same effects and the same audit lines, on one database, with MT5 accounts on the simulated
terminal behind the real MT5 broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import ClientSession
from sqlalchemy import select
from typer.testing import CliRunner

from engine.ops.tokens import AdminTokens
from engine.ops.views import Scope, as_json
from engine.states import OrderStatus
from engine.store.models import AuditLog, ExecutionAccount, Order, User
from mt5sim import control
from tests.support.bot_world import ADMIN, SECRET_KEY, World, WorldFactory
from tests.support.factories import make_approval
from tests.support.telegram import buttons
from tradebot.cli import app

SERVER = "MT5Sim-Demo"
ACCOUNTS = {601: (6101, "pw-6101-secret"), 602: (6102, "pw-6102-secret")}
runner = CliRunner()


@pytest.fixture
def sim_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.ignore_market_hours(state=path)
    for login, password in ACCOUNTS.values():
        control.create_account(login, password, server=SERVER, balance=20000, state=path)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=path)
    yield path
    control.close()


@pytest.fixture
def plans_file(tmp_path: Path) -> str:
    shipped = (Path(__file__).resolve().parents[2] / "engine" / "billing" / "plans.toml").read_text()
    free = 'entitlements = ["signals", "execute_paper"]'
    path = tmp_path / "plans.toml"
    path.write_text(shipped.replace(free, 'entitlements = ["signals", "execute_paper", "execute_mt5"]', 1))
    return str(path)


def cli(world: World, *args: str) -> tuple[int, str]:
    env = {
        "DATABASE_URL": world.settings.database_url,
        "SECRET_KEY": SECRET_KEY,
        "MT5_MODULE": "mt5sim",
        "LOG_LEVEL": "WARNING",
    }
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.exit_code, result.stdout


async def mt5_subscriber(world: World, uid: int) -> ExecutionAccount:
    """A subscriber with a linked MT5 account, one filled position and one resting buy limit."""
    await world.subscribe(uid)
    assert world.services.accounts is not None
    login, password = ACCOUNTS[uid]
    account, _snapshot = await world.services.accounts.link_mt5(uid, login, password, SERVER, f"tg:{uid}")
    async with world.db.session() as s:
        user = await s.get(User, account.owner_id)
    producer = await world.producer_row()
    for kind, entry, sl, tp in (
        ("market", None, "1.09800", "1.10400"),
        ("limit", "1.09500", "1.09000", "1.10500"),
    ):
        decision = await make_approval(
            world.db, producer, user, account, order_type=kind, entry=entry, sl=sl, tp=tp, key=f"{uid}-{kind}"
        )
        order = await world.services.execution.execute_decision(decision)
        assert order is not None and order.status in (OrderStatus.FILLED, OrderStatus.PLACED), order
    return account


async def test_status_and_closeall_from_telegram_and_the_cli(
    world_factory: WorldFactory, sim_state: Path, plans_file: str
) -> None:
    world = await world_factory(plans_file=plans_file)
    first = await mt5_subscriber(world, 601)
    second = await mt5_subscriber(world, 602)
    await world.user(ADMIN, "Boss")
    assert world.services.ops is not None

    # /status and `tradebot status`: the same plain data, rendered twice
    await world.say(ADMIN, "/status")
    shown = (await world.wait_text(ADMIN, "Engine status"))["text"]
    _code, out = await asyncio.to_thread(cli, world, "status", "--json")
    from_cli = json.loads(out)
    from_engine = as_json(await world.services.ops.status())
    for data in (from_cli, from_engine):
        for account in data["accounts"]:
            account.pop("equity_at")
        # where paper prices come from is the process's own setting: the CLI has no terminal login
        # (simulated market), the test world prices paper accounts from fixed test prices
        data.pop("simulated_market")
    assert from_cli == from_engine
    assert (from_cli["open_positions"], from_cli["pending_orders"]) == (2, 2)
    assert [a["equity_live"] for a in from_cli["accounts"]] == [True, True]
    assert "Open positions: 2" in shown and "Pending orders: 2" in shown
    for account in from_cli["accounts"]:
        equity = Decimal(account["equity"]).quantize(Decimal("0.01"))
        assert f"#{account['id']} mt5 · @user{account['owner']['telegram_id']}: equity {equity:,}" in shown
    await world.say(ADMIN, "/positions")
    listed = (await world.wait_text(ADMIN, "Pending orders (2)"))["text"]
    assert "Open positions (2)" in listed and "BUY limit" in listed

    # /closeall for one account, `tradebot closeall --yes` for the other: same result, same audit
    await world.say(ADMIN, f"/closeall account {first.id}")
    confirm = await world.wait_message(ADMIN, lambda m: bool(buttons(m)) and "Close" in m["text"])
    await world.tap(ADMIN, ADMIN, confirm["message_id"], buttons(confirm)[0])
    report = await world.wait_message(
        ADMIN, lambda m: m["message_id"] == confirm["message_id"] and "Closed" in m["text"]
    )
    assert "Closed 1 of 1 positions" in report["text"]
    assert "Cancelled 1 of 1 pending orders" in report["text"]
    _code, out = await asyncio.to_thread(cli, world, "closeall", "--account", str(second.id), "--yes")
    assert out.startswith("closed 1 of 1 positions") and "cancelled 1 of 1 pending orders" in out

    by_tg, by_cli = await _audit(world, "admin.closeall")
    assert (by_tg.actor, by_tg.target) == (f"tg:{ADMIN}", f"account:{first.id}")
    assert (by_cli.actor, by_cli.target) == ("cli", f"account:{second.id}")
    assert by_tg.details == by_cli.details  # same size, same spread: the very same figures
    for account in (first, second):
        broker = await world.services.brokers.get(account)
        assert await broker.positions() == [] and await broker.pending_orders() == []
    async with world.db.session() as s:
        statuses = (await s.scalars(select(Order.status).where(Order.order_type == "limit"))).all()
    assert statuses == [OrderStatus.CANCELLED.value, OrderStatus.CANCELLED.value]
    after = await world.services.ops.status()
    assert (after.open_positions, after.pending_orders) == (0, 0)


async def test_the_same_audit_line_from_every_front_end(world_factory: WorldFactory) -> None:
    world = await world_factory()
    await world.subscribe(610)
    account = await world.account_of(610)
    assert account is not None and world.services.ops is not None
    await world.user(ADMIN, "Boss")
    token = (await AdminTokens(world.db).add("ci", "trade")).token

    await world.say(ADMIN, f"/pause account {account.id}")
    await world.wait_text(ADMIN, f"Account #{account.id}: now closes only")
    await world.services.ops.resume(Scope.account(account.id), "test")
    await asyncio.to_thread(cli, world, "pause", "--account", str(account.id))
    await world.services.ops.resume(Scope.account(account.id), "test")
    async with (
        ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{world.http_port}/api/v1/admin/pause",
            json={"account": account.id},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 200 and (await response.json())["changed"] is True

    lines = await _audit(world, "admin.pause")
    assert [line.actor for line in lines] == [f"tg:{ADMIN}", "cli", "token:ci"]
    assert {(line.target, json.dumps(line.details, sort_keys=True)) for line in lines} == {
        (f"account:{account.id}", json.dumps({"accounts": {str(account.id): "changed"}, "changed": True}))
    }


async def _audit(world: World, action: str) -> list[AuditLog]:
    async with world.db.session() as s:
        return list(
            (await s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))).all()
        )
