"""Live hints for open pages (``bot.webapp.live``) and the chart's points (``bot.webapp.views``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.webapp.live import QUEUE_SIZE, LiveHub
from bot.webapp.views import curve_points
from engine.analytics.series import Curve
from engine.store import events as ev
from engine.store.db import Database
from engine.store.models import ExecutionAccount, User

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def event(type_: str, **payload: Any) -> ev.Event:
    return ev.Event(1, f"e-{type_}", type_, payload, T0)


def drained(client: Any) -> list[Any]:
    out = []
    while not client.queue.empty():
        out.append(client.queue.get_nowait())
    return out


async def test_hints_reach_the_pages_they_concern(sqlite_db: Database) -> None:
    async with sqlite_db.session() as s:
        ann = User(telegram_id=501, referral_code="ann")
        bob = User(telegram_id=502, referral_code="bob")
        s.add_all([ann, bob])
        await s.flush()
        account = ExecutionAccount(owner_id=ann.id, kind="paper")
        s.add(account)
        await s.flush()
        ids = (ann.id, bob.id, account.id)
    hub = LiveHub(sqlite_db)
    a = hub.connect(501, ids[0], is_admin=False)
    b = hub.connect(502, ids[1], is_admin=False)
    admin = hub.connect(900, None, is_admin=True)

    await hub.on_event(event(ev.POSITION_CLOSED, account_id=ids[2]))
    assert drained(a) == [{"type": "position.closed", "topics": ["positions", "history", "stats"]}]
    assert drained(b) == []
    assert drained(admin) == [{"type": "position.closed", "topics": ["admin"]}]

    await hub.on_event(event(ev.SIGNAL_ACCEPTED, signal_id="s"))
    assert [h["topics"] for h in (drained(a) + drained(b) + drained(admin))] == [["signals"]] * 3
    await hub.on_event(event(ev.DECISION_RECORDED, user_id=ids[1]))
    assert drained(a) == [] and drained(b)[0]["topics"] == ["signals", "positions"]
    assert drained(admin) == [{"type": "decision.recorded", "topics": ["admin"]}]
    await hub.on_event(event(ev.HEARTBEAT))
    assert drained(a) == [] and drained(admin) == [{"type": "heartbeat", "topics": ["admin"]}]
    await hub.on_event(event(ev.ORDER_FILLED, account_id="not an id"))  # odd payloads: no hint, no error
    await hub.on_event(event("something.else"))
    assert drained(a) == drained(b) == []


async def test_a_page_that_falls_behind_gets_one_resync_and_a_stopping_server_ends_streams(
    sqlite_db: Database,
) -> None:
    hub = LiveHub(sqlite_db)
    slow = hub.connect(1, None, is_admin=False)
    for _ in range(QUEUE_SIZE + 5):
        await hub.on_event(event(ev.SIGNAL_EXPIRED, signal_id="s"))
    hints = drained(slow)
    assert len(hints) <= QUEUE_SIZE and {"type": "resync", "topics": ["all"]} in hints
    assert hub.clients == 1
    hub.close()
    assert drained(slow) == [None] and hub.clients == 0
    late = hub.connect(2, None, is_admin=False)
    assert drained(late) == [None]  # the server is stopping: the stream ends at once


async def test_a_failing_lookup_never_reaches_the_relay(tmp_path: Path) -> None:
    broken = Database(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    hub = LiveHub(broken)
    client = hub.connect(1, 7, is_admin=True)
    await hub.on_event(event(ev.POSITION_OPENED, account_id=12))  # the owner cannot be read: no raise
    assert drained(client) == []
    await broken.dispose()


def curve(values: list[str], capital: str = "1000") -> Curve:
    equity = [Decimal(v) for v in values]
    return Curve(
        times=[T0 + timedelta(hours=i) for i in range(len(values))],
        equity=equity,
        pnl=[e - Decimal(capital) for e in equity],
        capital=[Decimal(capital)] * len(values),
        has_capital=True,
    )


def test_chart_points_carry_the_drawdown_from_the_peak() -> None:
    points = curve_points(curve(["1000", "1100", "990", "1100", "1200"]))
    assert [p["equity"] for p in points] == ["1000", "1100", "990", "1100", "1200"]
    assert [p["drawdown_pct"] for p in points] == ["0.00", "0.00", "10.00", "0.00", "0.00"]
    assert points[0]["t"] == T0.isoformat()


def test_thinning_keeps_the_deepest_point_and_the_last() -> None:
    values = ["1000"] * 1000
    values[537] = "700"  # one deep dip in the middle
    values[-1] = "1010"
    points = curve_points(curve(values), limit=50)
    assert len(points) == 50
    assert max(Decimal(p["drawdown_pct"]) for p in points) == Decimal("30.00")
    assert points[-1]["equity"] == "1010"
    assert curve_points(curve([])) == []
