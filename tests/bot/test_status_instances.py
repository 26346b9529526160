"""/status lists the running instances (several `tradebot run` on one store): which one runs the
trading loop, how many MT5 accounts each owns, the Telegram budget's state; one that stopped
renewing its leases shows as gone. Same data for `tradebot status` and the admin API."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import update

from bot.i18n import build_i18n
from bot.render import in_locale
from bot.status import status_text
from engine.brokers.registry import BrokerRegistry
from engine.loop.cluster import Cluster
from engine.ops.queries import OpsQueries
from engine.store.db import Database, utcnow
from engine.store.models import ExecutionAccount, Instance
from tradebot.cli_ops import render_status

I18N = build_i18n()


async def never(_account: ExecutionAccount) -> None:
    raise AssertionError("status reads no broker here")


async def test_status_lists_the_instances(db: Database) -> None:
    async with db.session() as s:
        s.add_all([ExecutionAccount(kind="mt5", login=str(7100 + n), server="Sim") for n in range(3)])
        s.add(ExecutionAccount(kind="paper", balance=Decimal(1000)))
    closed: list[int] = []

    async def release(account_id: int) -> None:
        closed.append(account_id)

    a, b = (
        Cluster(db, instance_id="inst-a", lease_seconds=30),
        Cluster(db, instance_id="inst-b", lease_seconds=30),
    )
    a.details.update(redis="up", telegram_budget="shared through Redis (2 instances)")
    for _ in range(3):
        await a.refresh(leader=True, release=release)
        await b.refresh(leader=False, release=release)
    async with db.session() as s:  # inst-b stopped renewing five minutes ago
        await s.execute(
            update(Instance).where(Instance.id == "inst-b").values(seen_at=utcnow() - timedelta(minutes=5))
        )

    status = await OpsQueries(db, BrokerRegistry(never, a), lease_seconds=30).status(live_seconds=None)  # type: ignore[arg-type]
    assert [(i.id, i.alive, i.leader, i.accounts) for i in status.instances] == [
        ("inst-a", True, True, 2),
        ("inst-b", False, False, 1),
    ]
    with in_locale(I18N, "en"):
        text = status_text(status)
    assert "🖥 Instances: 1 running" in text
    assert (
        "• inst-a · trading loop · MT5 accounts: 2 · Telegram budget: shared through Redis (2 instances)"
        in text
    )
    assert "• inst-b · gone (last seen 300 s ago)" in text
    with in_locale(I18N, "es"):
        assert "🖥 Instancias: 1 en marcha" in status_text(status)
    cli = "\n".join(render_status(status))
    assert "instance:       inst-a (alive, trading loop, 2 MT5 accounts, Telegram budget shared" in cli
