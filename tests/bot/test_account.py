"""/account: paper balance, linking an MT5 login through the simulated terminal, trading on it, unlinking."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.callbacks import AccountCb
from engine.store.models import AuditLog, ExecutionAccount, Order
from mt5sim import control
from tests.support.bot_world import World, WorldFactory
from tests.support.telegram import buttons

LOGIN = 5001
PASSWORD = "pw-5001-secret"
SERVER = "MT5Sim-Demo"


@pytest.fixture
def plans_file(tmp_path: Path) -> str:
    """Plans where the free plan includes MT5 execution (the default one sells it as "pro")."""
    shipped = (Path(__file__).resolve().parents[2] / "engine" / "billing" / "plans.toml").read_text()
    free = 'entitlements = ["signals", "execute_paper"]'
    assert free in shipped
    path = tmp_path / "plans.toml"
    path.write_text(shipped.replace(free, 'entitlements = ["signals", "execute_paper", "execute_mt5"]', 1))
    return str(path)


@pytest.fixture
def sim_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.ignore_market_hours(state=path)
    control.create_account(LOGIN, PASSWORD, server=SERVER, balance=25000, state=path)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=path)
    yield path
    control.close()


async def link(world: World, uid: int, password: str) -> dict:
    seen = max((m["message_id"] for m in await world.messages(uid)), default=0)
    await world.say(uid, "/account")
    # The new panel, not one an earlier /account left in the chat (tapping that one would race
    # with this /account, which starts the conversation afresh).
    panel = await world.wait_message(
        uid, lambda m: m["message_id"] > seen and AccountCb(action="link").pack() in buttons(m)
    )
    await world.tap(uid, uid, panel["message_id"], AccountCb(action="link").pack())
    await world.wait_text(uid, "Send your MT5 login")
    await world.say(uid, str(LOGIN))
    await world.wait_text(uid, "server name")
    await world.say(uid, SERVER)
    await world.wait_text(uid, "send the password")
    await world.say(uid, password)
    return await world.wait_message(
        uid, lambda m: "Linked MT5" in m["text"] or "Could not log in" in m["text"], 15
    )


async def test_account_shows_the_paper_balance(world: World) -> None:
    await world.subscribe(701)
    await world.say(701, "/account")
    panel = await world.wait_text(701, "Paper account #")
    assert "Balance: 10,000.00 USD" in panel["text"] and "Equity: 10,000.00 USD" in panel["text"]
    assert "Open positions: 0" in panel["text"]


async def test_account_needs_consent_first(world: World) -> None:
    await world.user(702)
    await world.say(702, "/account")
    await world.wait_text(702, "Please send /start and accept the risk disclaimer first.")


async def test_link_mt5_trade_on_it_then_unlink(
    world_factory: WorldFactory, sim_state: Path, plans_file: str
) -> None:
    world = await world_factory(plans_file=plans_file)
    await world.subscribe(710)
    result = await link(world, 710, PASSWORD)
    assert "✅ Linked MT5 account 5001 on MT5Sim-Demo" in result["text"]
    assert "Balance: 25,000.00 USD" in result["text"]
    everything = await world.client.messages(710, include_users=True)
    assert not any(PASSWORD in (m.get("text") or "") for m in everything)  # the password message is gone

    account = await world.account_of(710)
    assert account is not None and account.kind == "mt5" and account.login == str(LOGIN)
    assert account.credentials_enc and PASSWORD not in account.credentials_enc
    assert world.services.secrets is not None
    assert world.services.secrets.decrypt(account.credentials_enc) == PASSWORD
    async with world.db.session() as session:
        lines = (await session.scalars(select(AuditLog).where(AuditLog.action == "account.linked"))).all()
    assert len(lines) == 1 and PASSWORD not in str(lines[0].details)

    await world.post_signal({"instrument": "EURUSD", "side": "buy", "sl": "1.09800", "tp": "1.10400"})
    dm = await world.wait_message(710, lambda m: bool(buttons(m)) and "EURUSD" in m["text"])
    await world.tap(710, 710, dm["message_id"], buttons(dm)[0])
    done = await world.wait_message(
        710, lambda m: m["message_id"] == dm["message_id"] and "Filled" in m["text"], 15
    )
    assert "lots EURUSD at 1.1001" in done["text"]
    async with world.db.session() as session:
        order = await session.scalar(select(Order))
    assert order is not None and order.account_id == account.id and order.broker_ticket
    dump = control.dump(state=sim_state)
    assert len([p for p in dump["positions"] if p["login"] == LOGIN]) == 1

    await world.say(710, "/account")
    panel = await world.wait_text(710, "MT5 account 5001 · MT5Sim-Demo")
    assert "Open positions: 1" in panel["text"]
    unlink = AccountCb(action="unlink").pack()
    refused = await world.tap(710, 710, panel["message_id"], unlink)
    assert "Close the open positions" in refused["text"]
    assert (await world.account_of(710)).kind == "mt5"  # type: ignore[union-attr]

    assert world.services.closer is not None
    await world.services.closer.close_everything("closeall", "test")
    await world.say(710, "/account")
    panel = await world.wait_message(710, lambda m: "Open positions: 0" in m["text"] and unlink in buttons(m))
    answer = await world.tap(710, 710, panel["message_id"], unlink)
    assert answer["text"] == "Unlinked. You are back on a paper account."
    back = await world.account_of(710)
    assert back is not None and back.kind == "paper"
    async with world.db.session() as session:
        old = await session.get(ExecutionAccount, account.id)
    assert old is not None and not old.active and old.credentials_enc is None


async def test_wrong_mt5_password_stores_nothing(world: World, sim_state: Path) -> None:
    await world.subscribe(720)
    result = await link(world, 720, "not-the-password")
    assert "❌ Could not log in to MetaTrader 5" in result["text"]
    account = await world.account_of(720)
    assert account is not None and account.kind == "paper"


async def test_broker_mt5_means_no_account_until_linked(
    world_factory: WorldFactory, sim_state: Path, plans_file: str
) -> None:
    world = await world_factory(broker="mt5", plans_file=plans_file)
    welcome = await world.subscribe(730)
    assert "link your MetaTrader 5 account" in welcome["text"]
    assert await world.account_of(730) is None
    await world.accept_signal()
    await world.subscribe(731)
    await world.say(730, "/account")
    await world.wait_text(730, "You have no execution account yet")
    result = await link(world, 730, PASSWORD)
    assert "Linked MT5" in result["text"]
    await world.accept_signal(note="after the link")
    await world.wait_message(730, lambda m: "after the link" in m["text"] and bool(buttons(m)))
    first = [m for m in await world.messages(730) if "Stop loss" in m["text"]]
    assert len(first) == 1  # the signal sent before the link never reached them


async def test_link_conversation_keeps_its_state_in_redis(
    world_factory: WorldFactory, sim_state: Path
) -> None:
    """With REDIS_URL the FSM lives in Redis (several instances share it); the password never does."""
    from redis.asyncio import Redis

    url = "redis://127.0.0.1:6379/15"
    redis = Redis.from_url(url)
    try:
        await redis.ping()
    except OSError as exc:
        await redis.aclose()
        pytest.skip(f"no Redis on 127.0.0.1:6379: {exc}")
    try:
        world = await world_factory(redis_url=url)
        await world.subscribe(740)
        await world.say(740, "/account")
        panel = await world.wait_message(740, lambda m: AccountCb(action="link").pack() in buttons(m))
        await world.tap(740, 740, panel["message_id"], AccountCb(action="link").pack())
        await world.wait_text(740, "Send your MT5 login")
        await world.say(740, str(LOGIN))
        await world.wait_text(740, "server name")
        keys = [k.decode() for k in await redis.keys("fsm:*:740:740:*")]
        assert any(k.endswith(":state") for k in keys) and any(k.endswith(":data") for k in keys)
        assert str(LOGIN).encode() in (await redis.get(next(k for k in keys if k.endswith(":data"))) or b"")
        await world.say(740, SERVER)
        await world.wait_text(740, "send the password")
        await world.say(740, PASSWORD)
        result = await world.wait_message(740, lambda m: "Linked MT5" in m["text"], 15)
        assert "5001" in result["text"]
        for key in await redis.keys("fsm:*:740:740:*"):
            assert PASSWORD.encode() not in (await redis.get(key) or b"")
    finally:
        for key in await redis.keys("fsm:*:740:740:*"):
            await redis.delete(key)
        await redis.aclose()


async def test_with_billing_off_by_default_an_mt5_approval_executes(world: World, sim_state: Path) -> None:
    """No PLANS_FILE, no BILLING: every entitlement, so the simulated terminal behind the real MT5
    broker gets the order; /subscribe says billing is off."""
    assert not world.settings.billing_enabled
    await world.subscribe(730)
    assert "✅ Linked MT5 account 5001" in (await link(world, 730, PASSWORD))["text"]
    await world.post_signal({"instrument": "EURUSD", "side": "buy", "sl": "1.09800", "tp": "1.10400"})
    dm = await world.wait_message(730, lambda m: bool(buttons(m)) and "EURUSD" in m["text"])
    await world.tap(730, 730, dm["message_id"], buttons(dm)[0])
    done = await world.wait_message(
        730, lambda m: m["message_id"] == dm["message_id"] and "Filled" in m["text"], 15
    )
    assert "lots EURUSD at 1.1001" in done["text"]
    assert len([p for p in control.dump(state=sim_state)["positions"] if p["login"] == LOGIN]) == 1
    await world.say(730, "/subscribe")
    await world.wait_text(730, "Billing is off on this bot")


async def test_with_billing_on_the_free_plan_does_not_execute_on_mt5(
    world_factory: WorldFactory, sim_state: Path
) -> None:
    world = await world_factory(billing="on")
    await world.subscribe(731)
    assert "✅ Linked MT5 account 5001" in (await link(world, 731, PASSWORD))["text"]
    await world.post_signal({"instrument": "EURUSD", "side": "buy", "sl": "1.09800", "tp": "1.10400"})
    dm = await world.wait_message(731, lambda m: bool(buttons(m)) and "EURUSD" in m["text"])
    await world.tap(731, 731, dm["message_id"], buttons(dm)[0])
    refused = await world.wait_message(
        731, lambda m: m["message_id"] == dm["message_id"] and "Not executed" in m["text"], 15
    )
    assert "plan" in refused["text"]
    async with world.db.session() as session:
        order = await session.scalar(select(Order))
    assert order is not None and order.reason_code == "plan_required"
    assert [p for p in control.dump(state=sim_state)["positions"] if p["login"] == LOGIN] == []
