"""/stats, /export and the daily summary, through the real bot against the Bot API emulator."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import ClientSession
from sqlalchemy import select

from bot.daily_summary import RUN_DELAY, next_run, send_daily
from engine.analytics import parse_trades_csv
from engine.store.models import OutboxMessage, User
from tests.support.analytics import Seeder
from tests.support.bot_world import ADMIN, OPS_CHAT, World

UID = 4101
_seeders: dict[Any, Seeder] = {}  # per Database object (kept alive, so never reused)


def _text(m: dict[str, Any]) -> str:
    return str(m.get("text") or m.get("caption") or "")


async def _user_row(world: World, uid: int) -> User:
    async with world.db.session() as s:
        user = await s.scalar(select(User).where(User.telegram_id == uid))
        assert user is not None
        return user


async def _seed(world: World, uid: int, *, base: datetime | None = None) -> tuple[int, list[int]]:
    """Three closed positions from ``base`` on (default: 5 days ago) and an equity history."""
    base = base or datetime.now(UTC) - timedelta(days=5)
    account = await world.account_of(uid)
    assert account is not None
    seed = _seeders.setdefault(world.db, Seeder(world.db))  # one id counter per database
    producer = await seed.producer(f"alpha{uid}")
    signal = await seed.signal(producer, "EURUSD")
    ids = [
        await seed.position(
            account.id,
            profit="120.50",
            commission="-2",
            opened=base,
            closed=base + timedelta(hours=3),
            signal_id=signal,
        ),
        await seed.position(
            account.id, profit="-40", opened=base + timedelta(days=1), closed=base + timedelta(days=2)
        ),
        await seed.position(
            account.id,
            symbol="XAUUSD",
            profit="15",
            swap="-0.5",
            opened=base,
            closed=base + timedelta(days=3),
        ),
    ]
    await seed.equity(
        account.id,
        [
            (base - timedelta(days=1), "10000"),
            (base + timedelta(hours=3), "10118.5"),
            (base + timedelta(days=2), "10078.5"),
            (base + timedelta(days=3), "10093"),
        ],
    )
    return account.id, ids


async def _download(world: World, file_id: str) -> bytes:
    async with (
        ClientSession() as http,
        http.get(f"{world.client.base_url}/_emulator/files/{file_id}") as resp,
    ):
        assert resp.status == 200
        return await resp.read()


async def test_stats_sends_a_summary_and_a_chart(world: World) -> None:
    await world.subscribe(UID)
    await _seed(world, UID)
    await world.say(UID, "/stats 30d")
    photo = await world.wait_message(UID, lambda m: "photo" in m)  # one message: chart and numbers
    summary = photo.get("caption", "")
    assert "Performance: My accounts" in summary and "last 30 days" in summary
    assert "3 trades closed: 2 won, 1 lost" in summary
    assert "By producer" not in summary  # admins only
    assert photo["photo"]
    png = await _download(world, photo["photo"][-1]["file_id"])
    assert png.startswith(b"\x89PNG")


async def test_a_bad_period_gets_the_period_error(world: World) -> None:
    await world.subscribe(UID)
    await world.say(UID, "/stats nonsense")
    error = await world.wait_text(UID, "Unknown period")
    assert "nonsense" in error["text"]
    assert not any("photo" in m for m in await world.messages(UID))


async def test_stats_needs_a_subscriber(world: World) -> None:
    await world.user(UID + 1)
    await world.say(UID + 1, "/stats")
    await world.wait_text(UID + 1, "Please send /start")


async def test_export_sends_the_users_trades_as_csv(world: World) -> None:
    await world.subscribe(UID)
    account_id, ids = await _seed(world, UID)
    other = 4109
    await world.subscribe(other)
    await _seed(world, other)  # someone else's trades stay out of this user's export
    await world.say(UID, "/export")
    doc = await world.wait_message(UID, lambda m: "document" in m)
    assert doc["document"]["file_name"].endswith(".csv")
    assert "3 closed trades" in doc.get("caption", "")
    trades = parse_trades_csv(await _download(world, doc["document"]["file_id"]))
    assert sorted(t.position_id for t in trades) == sorted(ids)
    assert {t.account_id for t in trades} == {account_id}
    assert sum((t.net for t in trades), Decimal(0)) == Decimal("93.00")


async def test_spanish_user_gets_spanish(world: World) -> None:
    await world.subscribe(UID, lang="es")
    await _seed(world, UID)
    await world.say(UID, "/stats 30d")
    photo = await world.wait_message(UID, lambda m: "photo" in m)
    assert "Rendimiento: " in photo.get("caption", "") and "últimos 30 días" in photo.get("caption", "")
    await world.say(UID, "/stats nonsense")
    await world.wait_text(UID, "Período desconocido")


async def test_admin_stats_has_the_producer_and_instrument_tables(world: World) -> None:
    await world.subscribe(UID)
    await _seed(world, UID)
    await world.user(ADMIN, "Admin")
    await world.say(ADMIN, "/stats 30d")
    text = (await world.wait_text(ADMIN, "By producer"))["text"]
    chart = await world.wait_message(ADMIN, lambda m: "photo" in m)
    assert "Performance: All accounts" in chart.get("caption", "")
    assert f"alpha{UID}: 1 trades, net +118.50 USD" in text
    assert (
        "By instrument" in text and "EURUSD: 2 trades, net +78.50 USD" in text and "XAUUSD: 1 trades" in text
    )
    await world.say(ADMIN, "/export all")
    doc = await world.wait_message(ADMIN, lambda m: "document" in m)
    assert len(parse_trades_csv(await _download(world, doc["document"]["file_id"]))) == 3


async def _outbox(world: World, key_prefix: str) -> list[OutboxMessage]:
    async with world.db.session() as s:
        return list(
            await s.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"{key_prefix}%")))
        )


async def test_send_daily_enqueues_once_per_day(world: World) -> None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    yesterday = datetime(day.year, day.month, day.day, tzinfo=UTC)
    for uid, lang in ((UID, "en"), (UID + 2, "es"), (UID + 3, "en")):
        await world.subscribe(uid, lang=lang)
        await _seed(world, uid, base=yesterday)  # the first trade closes yesterday, 03:00 UTC
    assert world.services.subscribers is not None
    await world.services.subscribers.set_notifications(UID + 3, False)  # opted out
    ctx = world.rt().ctx
    first = await send_daily(ctx, day)
    second = await send_daily(ctx, day)
    assert first == second == 3  # ops + the two subscribers with notifications on
    rows = await _outbox(world, f"daily:{day.isoformat()}:")
    assert sorted(r.chat_id for r in rows) == sorted([OPS_CHAT, UID, UID + 2])
    ops = await world.wait_text(OPS_CHAT, "Daily summary")
    assert "subscribers active today" in ops["text"]
    await world.wait_text(UID, "Your day")
    await world.wait_text(UID + 2, "Tu día")


async def test_send_daily_skips_subscribers_without_trades(world: World) -> None:
    await world.subscribe(UID)
    day = date(2026, 1, 1)
    assert await send_daily(world.rt().ctx, day) == 1  # only ops
    rows = await _outbox(world, "daily:2026-01-01:")
    assert [r.chat_id for r in rows] == [OPS_CHAT]


def test_next_run_is_just_after_midnight() -> None:
    assert (
        next_run(datetime(2026, 10, 5, 14, 30, tzinfo=UTC)) == datetime(2026, 10, 6, tzinfo=UTC) + RUN_DELAY
    )
    assert next_run(datetime(2026, 10, 5, 23, 59, 59, tzinfo=UTC)) == datetime(2026, 10, 6, 0, 1, tzinfo=UTC)
    assert next_run(datetime(2026, 10, 5, 0, 0, 30, tzinfo=UTC)) == datetime(2026, 10, 5, 0, 1, tzinfo=UTC)
    assert next_run(datetime(2026, 10, 5, 0, 1, tzinfo=UTC)) == datetime(2026, 10, 6, 0, 1, tzinfo=UTC)
    assert next_run(datetime(2026, 12, 31, 12, tzinfo=UTC)) == datetime(2027, 1, 1, 0, 1, tzinfo=UTC)
