"""The daily summary on both databases: the whole book for ops, and one per active subscriber."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from engine.analytics.data import Exposure
from engine.analytics.service import AnalyticsService
from engine.analytics.summary import restrict, summarise_day
from tests.support.analytics import Seeder, at, data, trade

DAY = date(2026, 3, 2)


async def seed(db):
    s = Seeder(db)
    alice, bob, carol = (
        await s.user(11),
        await s.user(12, language="es", notifications=False),
        await s.user(13),
    )
    a, b, c = await s.account(alice), await s.account(bob), await s.account(carol)
    ops = await s.account(None)
    # Alice: two trades on the day, a dip and a recovery.
    await s.equity(a, [(at(1, 20), "1000"), (at(2, 3), "1040"), (at(2, 9), "988"), (at(2, 22), "1030")])
    await s.position(a, profit="50", commission="-1", opened=at(2, 1), closed=at(2, 3))
    await s.position(a, profit="-20", opened=at(2, 5), closed=at(2, 9))
    await s.position(a, opened=at(2, 21))  # still open at the end of the day
    # Bob: nothing closed, but his open position moved his equity.
    await s.equity(b, [(at(1, 12), "500"), (at(2, 12), "480")])
    await s.position(b, opened=at(1, 10))
    # Carol: nothing at all that day (a trade the day before).
    await s.equity(c, [(at(1, 10), "700")])
    await s.position(c, profit="5", opened=at(1, 1), closed=at(1, 2))
    # The operator's own account.
    await s.equity(ops, [(at(2), "10000"), (at(2, 23), "10100")])
    await s.position(ops, profit="100", opened=at(2, 2), closed=at(2, 23))
    return {"alice": alice, "bob": bob, "carol": carol, "a": a, "b": b, "ops": ops}


async def test_daily_report(db):
    k = await seed(db)
    service = AnalyticsService(db, clock=lambda: at(10))
    try:
        report = await service.daily_report(DAY)
    finally:
        service.close()
    assert report.day == DAY
    total = report.total
    assert (total.trades, total.wins, total.losses) == (3, 2, 1)
    assert total.net_pnl == D(129)
    # Opening: 1000 + 500 + 700 (carol, flat) + 10000 (ops joins at 00:00) = 12200.
    assert total.start_equity == D(12200) and total.end_equity == D(1030 + 480 + 700 + 10100)
    assert total.change == D(110) and total.open_positions == 2
    assert [sub.user_id for sub in report.subscribers] == [k["alice"], k["bob"]]
    alice, bob = report.subscribers
    assert alice.telegram_id == 11 and alice.language == "en" and alice.account_ids == (k["a"],)
    s = alice.summary
    assert (s.trades, s.wins, s.losses, s.net_pnl) == (2, 1, 1, D(29))
    assert (s.start_equity, s.end_equity, s.change, s.change_pct) == (D(1000), D(1030), D(30), D("0.03"))
    assert s.max_drawdown == D(52) and s.max_drawdown_pct == D(52) / D(1040)
    assert s.end_drawdown_pct == D(10) / D(1040)
    assert s.best_trade.net == D(49) and s.worst_trade.net == D(-20)
    assert s.open_positions == 1
    assert bob.language == "es" and bob.notifications is False
    assert bob.summary.trades == 0 and bob.summary.change == D(-20) and bob.summary.open_positions == 1


async def test_a_day_in_progress_stops_at_now(db):
    await seed(db)
    service = AnalyticsService(db, clock=lambda: at(2, 6))
    try:
        report = await service.daily_report(DAY)
    finally:
        service.close()
    assert report.total.trades == 1  # the 09:00 close has not happened yet
    assert [s.summary.end_equity for s in report.subscribers][:1] == [D(1040)]


def test_summarise_day_without_equity():
    loaded = data([trade("10", opened=at(2, 1), closed=at(2, 2))], [Exposure(1, at(2, 1), at(2, 2))])
    s = summarise_day(loaded, DAY)
    assert s.trades == 1 and s.start_equity is None and s.change == 0 and s.active
    assert s.change_pct is None and s.open_positions == 0
    assert not summarise_day(data(), DAY).active


def test_restrict_keeps_only_the_accounts():
    loaded = data(
        [trade("1", account_id=1), trade("2", account_id=2)],
        [Exposure(1, at(1), None), Exposure(2, at(1), None)],
        {1: [(at(1), D(1))], 2: [(at(1), D(2))]},
    )
    part = restrict(loaded, {2})
    assert [t.account_id for t in part.trades] == [2]
    assert [e.account_id for e in part.exposures] == [2] and set(part.equity) == {2}
