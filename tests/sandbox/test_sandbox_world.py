"""The sandbox in-process: its people join through the emulator, the demo producer's signal
reaches them, the page's API acts as them, ``--broker mt5`` links simulated MT5 accounts with
encrypted credentials, and the data directory is fresh, locked and keeps its secret key."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from engine.store.models import ExecutionAccount, User
from sandbox import cast
from sandbox.config import DataDir, SandboxError, SandboxOptions, sandbox_settings
from tests.support.ports import free_port
from tests.support.waiting import eventually
from tradebot.sandbox import Sandbox

BEN, LUCIA, ADMIN = 7000101, 7000102, cast.ADMIN.user_id
Factory = Callable[..., Awaitable[Sandbox]]
SLOW = 8.0  # seconds: a whole sandbox on a loaded machine


@pytest.fixture
async def make_sandbox(tmp_path: Path) -> AsyncIterator[Factory]:
    started: list[Sandbox] = []

    async def make(broker: str = "paper", first_signal_after: float = 0.2) -> Sandbox:
        options = SandboxOptions(
            broker=broker,
            port=free_port(),
            data_dir=tmp_path / "data",
            signal_every=(600.0, 600.0),
            first_signal_after=first_signal_after,
        )
        sandbox = Sandbox(options, configure_logging=False)
        started.append(sandbox)
        await sandbox.start()
        return sandbox

    yield make
    for sandbox in started:
        await sandbox.stop()


def signal_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if len(cast.callback_buttons(m)) == 2]


def demo_signals(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The demo producer's signals (Fib-RSI's may arrive at any moment too; they name their strategy)."""
    return [m for m in signal_messages(messages) if "fib-rsi" not in m["text"]]


async def test_people_join_as_users_and_the_first_demo_signal_reaches_them(make_sandbox: Factory) -> None:
    sandbox = await make_sandbox()
    assert sandbox.client is not None and sandbox.runtime is not None and sandbox.producer is not None
    settings = sandbox.runtime.settings
    assert settings.market_hours == "*=24/7"
    assert settings.admin_ids == [ADMIN] and settings.ops_chat_id == cast.OPS_CHANNEL.chat_id
    assert sandbox.emulator is not None and settings.telegram_api_url == sandbox.emulator.base_url
    assert str(sandbox.options.db_path.resolve()) in settings.database_url
    # paper accounts price from the simulated terminal whose bars Fib-RSI reads
    assert (
        settings.strategies == "fib-rsi:XAUUSD,EURUSD" and not sandbox.runtime.engine.paper_market.simulated
    )
    assert sandbox.producer.instruments == ["GBPUSD", "USDJPY", "US500", "BTCUSD"]

    for person in cast.PEOPLE:
        chat = await sandbox.client.messages(person.user_id, include_users=True)
        assert chat[0]["text"] == "/start" and chat[0]["from"]["id"] == person.user_id
        disclaimer = next(
            m for m in chat if "2026" in m["text"] and "reply_markup" not in m and "✅" in m["text"]
        )
        assert disclaimer["edit_date"]  # the consent button was tapped and the bot edited it
    lucia = await sandbox.client.messages(LUCIA)
    assert any("Estás suscrito" in m["text"] for m in lucia)  # the Spanish-speaking subscriber
    ben = await sandbox.client.messages(BEN)
    assert any("paper account starts with 10,000.00 USD" in m["text"] for m in ben)

    async with sandbox.runtime.engine.db.session() as session:
        users = {u.telegram_id: u for u in (await session.scalars(select(User))).all()}
        accounts = (await session.scalars(select(ExecutionAccount).where(ExecutionAccount.active))).all()
    assert set(users) == {p.user_id for p in cast.PEOPLE}
    assert all(u.consent_version == settings.consent_version for u in users.values())
    assert users[ADMIN].role == "admin" and users[LUCIA].language == "es"
    assert sorted(a.kind for a in accounts) == ["paper"] * len(cast.PEOPLE)

    ops = await sandbox.client.messages(cast.OPS_CHANNEL.chat_id)
    assert any("Engine started" in m.get("text", "") for m in ops)

    async def everyone_has_the_signal() -> bool:
        chats = [await sandbox.client.messages(p.user_id) for p in cast.PEOPLE]
        return all(signal_messages(chat) for chat in chats)

    await eventually(everyone_has_the_signal, SLOW)
    first = sandbox.producer.posted[0]
    assert first.status == 201 and first.answer["id"]
    assert first.body["id"] == "demo-00001"
    assert "Aprobar" in str(signal_messages(lucia + await sandbox.client.messages(LUCIA))[-1]["reply_markup"])


async def test_the_page_api_acts_as_the_sandbox_users(make_sandbox: Factory) -> None:
    sandbox = await make_sandbox()
    assert sandbox.client is not None
    base = f"http://127.0.0.1:{sandbox.options.port}/sandbox"
    async with aiohttp.ClientSession() as http:

        async def get(path: str) -> Any:
            async with http.get(base + path) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

        async def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
            async with http.post(base + path, json=body) as resp:
                return resp.status, await resp.json()

        async with http.get(base) as resp:
            assert resp.status == 200 and "<title>tradebot sandbox</title>" in await resp.text()
        world = await get("/api/world")
        assert [p["user_id"] for p in world["people"]] == [p.user_id for p in cast.PEOPLE]
        assert {c["id"] for c in world["chats"]} == {
            *(p.user_id for p in cast.PEOPLE),
            cast.OPS_CHANNEL.chat_id,
        }
        assert world["broker"] == "paper" and "24/7" in world["market"]

        # only the sandbox's people can act, and only with something to say
        assert (await post("/api/send", {"user_id": 42, "text": "/status"}))[0] == 400
        assert (await post("/api/send", {"user_id": ADMIN, "text": "  "}))[0] == 400
        # the admin's chat just had four messages (joining, the first signal): Telegram's per-chat
        # limit (about one a second, short bursts) needs a moment before the bot replies again
        # (the bot waits its turn; the reply is awaited, not slept for)
        await eventually(lambda: _signals_in(sandbox, ADMIN), SLOW)
        status, sent = await post("/api/send", {"user_id": ADMIN, "text": "/status"})
        assert status == 200 and sent["message"]["text"] == "/status"

        async def status_reply() -> list[Any]:
            assert sandbox.client is not None
            after = await sandbox.client.messages(ADMIN, after=sent["message"]["message_id"])
            return [m for m in after if "Engine status" in m["text"]]  # a Fib-RSI signal may come first

        assert await eventually(status_reply, 10.0)

        signal = (await eventually(lambda: _signals_in(sandbox, BEN), SLOW))[-1]
        approve = cast.callback_buttons(signal)[0]
        bad = await post(
            "/api/tap", {"user_id": BEN, "chat_id": BEN, "message_id": signal["message_id"], "data": "x"}
        )
        assert bad[0] == 400
        status, tapped = await post(
            "/api/tap", {"user_id": BEN, "chat_id": BEN, "message_id": signal["message_id"], "data": approve}
        )
        assert status == 200 and "Approved" in tapped["answer"]["text"]

        async def filled() -> bool:
            chat = await get(f"/api/chats/{BEN}/messages")
            edited = next(m for m in chat if m["message_id"] == signal["message_id"])
            return "Filled" in edited["text"] or "Order placed" in edited["text"]

        await eventually(filled, SLOW)

        async def bens_trade() -> list[Any]:
            accounts = (await get("/api/portfolio"))["accounts"]
            ben = next(a for a in accounts if a["telegram_id"] == BEN)
            return ben["positions"] + ben["orders"]

        trade = (await eventually(bens_trade, SLOW))[0]
        assert trade["symbol"] == sandbox.producer.posted[0].body["instrument"]  # type: ignore[union-attr]
        async with http.get(base + "/api/files/nope") as resp:
            assert resp.status == 404


async def _signals_in(sandbox: Sandbox, chat_id: int) -> list[dict[str, Any]]:
    """The demo producer's signals in a chat, with their buttons."""
    assert sandbox.client is not None
    return demo_signals(await sandbox.client.messages(chat_id))


async def test_a_demo_update_reaches_the_subscriber_as_a_reply_to_the_signal(make_sandbox: Factory) -> None:
    sandbox = await make_sandbox()
    assert sandbox.client is not None and sandbox.producer is not None
    signal = (await eventually(lambda: _signals_in(sandbox, BEN), SLOW))[-1]
    query = await sandbox.client.tap(BEN, BEN, signal["message_id"], cast.callback_buttons(signal)[0])
    assert await sandbox.client.callback_answer(query, wait=5)

    async def executed() -> dict[str, Any] | None:
        chat = await sandbox.client.messages(BEN)  # type: ignore[union-attr]
        edited = next(m for m in chat if m["message_id"] == signal["message_id"])
        return edited if "Filled" in edited["text"] or "Order placed" in edited["text"] else None

    result = await eventually(executed, SLOW)
    first = sandbox.producer.posted[0].body
    if first["order_type"] == "limit":  # resting: the provider cancels it
        update, told = {"action": "cancel"}, "cancelled by the provider"
    else:  # filled: Close, Close 50 % and Stop → entry under it; the provider closes half
        assert [b for b in cast.callback_buttons(result) if b.startswith("pos:")]
        update, told = {"action": "close", "percent": 50}, "The provider closed"
    posted = await sandbox.producer.post_update(first["id"], update)
    assert posted.status == 202 and posted.answer["action"] == update["action"]

    async def told_ben() -> bool:
        chat = await sandbox.client.messages(BEN)  # type: ignore[union-attr]
        return any(told in (m.get("text") or "") for m in chat)

    assert await eventually(told_ben, SLOW)


async def test_with_the_mt5_broker_people_trade_on_simulated_terminals(make_sandbox: Factory) -> None:
    from mt5sim import control

    sandbox = await make_sandbox("mt5")
    assert sandbox.runtime is not None and sandbox.terminal is not None and sandbox.client is not None
    services = sandbox.runtime.engine
    assert services.settings.mt5_module == "mt5sim"
    assert services.settings.strategies == "fib-rsi:XAUUSD,EURUSD"  # with either broker
    assert services.settings.mt5_login == sandbox.terminal.data_login[0]
    async with services.db.session() as session:
        rows = (
            await session.execute(
                select(ExecutionAccount, User)
                .join(User, User.id == ExecutionAccount.owner_id)
                .where(ExecutionAccount.active)
            )
        ).all()
    assert len(rows) == len(cast.PEOPLE)
    for account, user in rows:
        login, password = sandbox.terminal.logins[user.telegram_id]
        assert account.kind == "mt5" and account.login == str(login)
        assert account.credentials_enc and password not in account.credentials_enc
        assert services.secrets is not None and services.secrets.decrypt(account.credentials_enc) == password
    welcome = await sandbox.client.messages(LUCIA)
    assert any("Estás suscrito" in m["text"] for m in welcome)

    signal = (await eventually(lambda: _signals_in(sandbox, BEN), SLOW))[-1]
    query = await sandbox.client.tap(BEN, BEN, signal["message_id"], cast.callback_buttons(signal)[0])
    assert await sandbox.client.callback_answer(query, wait=5)
    ben_login = sandbox.terminal.logins[BEN][0]

    async def on_the_terminal() -> list[Any]:
        state = control.dump(state=sandbox.options.mt5sim_path)
        return [r for r in state["positions"] + state["orders"] if r.get("login") == ben_login]

    assert await eventually(on_the_terminal, SLOW)


async def test_each_run_starts_fresh_and_keeps_its_secret_key(make_sandbox: Factory, tmp_path: Path) -> None:
    first = await make_sandbox(first_signal_after=600)
    key_file = tmp_path / "data" / "sandbox.secret_key"
    key = key_file.read_text().strip()
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    env = (tmp_path / "data" / "sandbox.env").read_text()
    assert f"SECRET_KEY={key}" in env and "TRADEBOT_PRODUCER_ID=" in env
    assert "MT5_LOGIN=51000000" in env and "MT5_SERVER=MT5Sim-Demo" in env  # the data login

    with pytest.raises(SandboxError, match="another sandbox is running"):
        DataDir(first.options).prepare()
    await first.stop()

    second = await make_sandbox(first_signal_after=600)
    assert second.runtime is not None
    settings = second.runtime.settings
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == key
    async with second.runtime.engine.db.session() as session:
        assert len((await session.scalars(select(User))).all()) == len(cast.PEOPLE)  # not twice as many


def test_a_dotenv_for_the_real_product_does_not_leak_into_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "BOT_TOKEN=1:real\nDATABASE_URL=postgresql://prod/db\nSIGNAL_CHANNEL_ID=-100999\nBROKER=mt5\n"
    )
    options = SandboxOptions(data_dir=tmp_path / "data")
    settings = sandbox_settings(
        options,
        secret_key="k" * 64,
        bot_token="123:" + "a" * 35,
        telegram_api_url="http://127.0.0.1:1",
        admin_id=1,
        ops_chat_id=-1,
    )
    url = settings.database_url
    assert url.startswith("sqlite+aiosqlite:///") and url.endswith("/data/sandbox.db")
    assert settings.signal_channel_id is None and settings.broker.value == "paper"
    assert settings.bot_token is not None and settings.bot_token.get_secret_value() == "123:" + "a" * 35


@pytest.mark.parametrize(("field", "value"), [("broker", "ib"), ("port", 0)])
def test_bad_options_are_refused(field: str, value: Any) -> None:
    with pytest.raises(SandboxError):
        SandboxOptions(**{field: value})
