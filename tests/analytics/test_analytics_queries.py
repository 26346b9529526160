"""The query layer on SQLite and PostgreSQL: scopes, period bounds, exact money, the data marker."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from engine.analytics.data import Scope
from engine.analytics.queries import (
    data_marker,
    load_account_owners,
    load_equity,
    load_exposures,
    load_scope_data,
    load_trades,
)
from tests.support.analytics import Seeder, at


async def seed(db):
    s = Seeder(db)
    alice, bob = await s.user(101), await s.user(102, language="es")
    a1, a2, b1 = await s.account(alice), await s.account(alice), await s.account(bob)
    ops = await s.account(None)
    trend, revert = await s.producer("trend"), await s.producer("revert")
    sig_eur = await s.signal(trend, "EURUSD", "breakout")
    sig_gold = await s.signal(trend, "XAUUSD", "breakout")
    sig_rev = await s.signal(revert, "EURUSD", "meanrev")
    ids = {
        "a1_eur": await s.position(
            a1,
            profit="10.00001",
            commission="-0.7",
            swap="-0.05",
            opened=at(1, 1),
            closed=at(1, 5),
            signal_id=sig_eur,
        ),
        "a2_gold": await s.position(
            a2, symbol="XAUUSD.m", profit="-25.5", opened=at(2), closed=at(2, 3), signal_id=sig_gold
        ),
        "b1_rev": await s.position(b1, profit="3", opened=at(1), closed=at(3), signal_id=sig_rev),
        "b1_manual": await s.position(b1, symbol="EURUSD", profit="1", opened=at(2), closed=at(2, 1)),
        "ops_eur": await s.position(ops, profit="7", opened=at(1), closed=at(4), signal_id=sig_eur),
        "a1_open": await s.position(a1, opened=at(3, 12), signal_id=sig_eur),
        "b1_closing": await s.position(b1, opened=at(1, 2), status="closing"),
        "a1_before": await s.position(a1, profit="99", opened=at(0, 1), closed=at(0, 2), signal_id=sig_eur),
        "a1_at_start": await s.position(a1, profit="1", opened=at(0, 23), closed=at(1), signal_id=sig_eur),
        "a1_at_end": await s.position(a1, profit="1", opened=at(4, 23), closed=at(5), signal_id=sig_eur),
    }
    await s.equity(
        a1, [(at(0, 6), "1000"), (at(0, 18), "1000.5"), (at(1, 6), "1010.25"), (at(2), "1005"), (at(5), "1")]
    )
    await s.equity(b1, [(at(2, 6), "500.00001")])
    await s.equity(ops, [(at(0, 1), "50000"), (at(4), "50007")])
    return {
        "alice": alice,
        "bob": bob,
        "a1": a1,
        "a2": a2,
        "b1": b1,
        "ops": ops,
        "trend": trend,
        "revert": revert,
        **ids,
    }


def pids(trades):
    return [t.position_id for t in trades]


async def test_scopes_select_the_right_trades(db):
    k = await seed(db)
    start, end = at(1), at(5)

    async def trades(scope):
        return pids(await load_trades(db, scope, start, end))

    everything = await trades(Scope())
    assert everything == [
        k["a1_at_start"],
        k["a1_eur"],
        k["b1_manual"],
        k["a2_gold"],
        k["b1_rev"],
        k["ops_eur"],
    ]
    assert await trades(Scope(account_id=k["a1"])) == [k["a1_at_start"], k["a1_eur"]]
    assert await trades(Scope(user_id=k["alice"])) == [k["a1_at_start"], k["a1_eur"], k["a2_gold"]]
    assert await trades(Scope(user_id=k["bob"])) == [k["b1_manual"], k["b1_rev"]]
    assert await trades(Scope(producer_id=k["trend"])) == [
        k["a1_at_start"],
        k["a1_eur"],
        k["a2_gold"],
        k["ops_eur"],
    ]
    assert await trades(Scope(strategy="meanrev")) == [k["b1_rev"]]
    # Instrument: the signal's instrument, else the position's symbol (a manual trade).
    assert await trades(Scope(instrument="eurusd")) == [
        k["a1_at_start"],
        k["a1_eur"],
        k["b1_manual"],
        k["b1_rev"],
        k["ops_eur"],
    ]
    assert await trades(Scope(instrument="XAUUSD")) == [k["a2_gold"]]
    # Filters combine.
    assert await trades(Scope(user_id=k["alice"], instrument="EURUSD")) == [k["a1_at_start"], k["a1_eur"]]
    assert await trades(Scope(user_id=k["bob"], producer_id=k["trend"])) == []
    # Open-ended.
    assert k["a1_before"] in pids(await load_trades(db, Scope(), None, end))


async def test_trade_rows_are_exact(db):
    k = await seed(db)
    (t,) = [t for t in await load_trades(db, Scope(), at(1), at(5)) if t.position_id == k["a1_eur"]]
    assert t.profit == D("10.00001") and t.commission == D("-0.7") and t.swap == D("-0.05")
    assert t.net == D("9.25001")
    assert t.volume == D("0.01") and t.open_price == D("1.00001") and t.close_price == D("1.1")
    assert t.open_time == at(1, 1) and t.close_time == at(1, 5) and t.close_time.tzinfo is not None
    assert t.strategy == "breakout" and t.signal_id is not None
    (manual,) = [t for t in await load_trades(db, Scope(), at(1), at(5)) if t.position_id == k["b1_manual"]]
    assert manual.signal_id is None and manual.strategy is None


async def test_exposures_include_open_and_closing_positions(db):
    k = await seed(db)
    rows = await load_exposures(db, Scope(user_id=k["bob"]), at(1), at(5))
    assert sorted((e.opened, e.closed) for e in rows) == [
        (at(1), at(3)),
        (at(1, 2), None),
        (at(2), at(2, 1)),
    ]
    a1 = await load_exposures(db, Scope(account_id=k["a1"]), at(1), at(5))
    # Not the one closed before the period, nor the one closed exactly at its start.
    assert sorted(e.opened for e in a1) == [at(1, 1), at(3, 12), at(4, 23)]


async def test_equity_has_the_opening_point_then_the_period(db):
    k = await seed(db)
    series = await load_equity(db, Scope(), at(1), at(5))
    assert series[k["a1"]] == [(at(0, 18), D("1000.5")), (at(1, 6), D("1010.25")), (at(2), D(1005))]
    assert series[k["b1"]] == [(at(2, 6), D("500.00001"))]
    assert series[k["ops"]] == [(at(0, 1), D(50000)), (at(4), D(50007))]
    assert k["a2"] not in series
    alice = await load_equity(db, Scope(user_id=k["alice"]), at(1), at(5))
    assert set(alice) == {k["a1"]}
    assert set(await load_equity(db, Scope(account_id=k["b1"]), None, at(5))) == {k["b1"]}
    assert (await load_equity(db, Scope(account_id=k["a1"]), None, at(5)))[k["a1"]][0] == (at(0, 6), D(1000))


async def test_scope_data_and_metrics_end_to_end(db):
    from engine.analytics.metrics import compute_metrics

    k = await seed(db)
    scope = Scope(account_id=k["a1"])
    loaded = await load_scope_data(db, scope, at(1), at(5))
    m = compute_metrics(loaded, start=at(1), end=at(5), equity_based=True)
    assert m.trades == 2 and m.net_profit == D("10.25001")
    assert m.start_equity == D("1000.5") and m.end_equity == D(1005)
    assert m.total_return == D("4.5") and m.max_drawdown == D("5.25")
    producer = await load_scope_data(db, Scope(producer_id=k["trend"]), at(1), at(5))
    assert producer.equity == {}  # a trade-based scope has no equity of its own


async def test_marker_changes_with_new_points_and_closes(db):
    k = await seed(db)
    s = Seeder(db)
    scope = Scope(account_id=k["a1"])
    first = await data_marker(db, scope)
    assert await data_marker(db, scope) == first
    await s.equity(k["b1"], [(at(4), "600")])  # another account: no change
    assert await data_marker(db, scope) == first
    await s.equity(k["a1"], [(at(4), "1200")])
    second = await data_marker(db, scope)
    assert second != first
    await s.position(k["a1"], profit="2", opened=at(3), closed=at(4, 1))
    assert await data_marker(db, scope) != second
    trade_scope = Scope(strategy="meanrev")
    before = await data_marker(db, trade_scope)
    await s.equity(k["b1"], [(at(4, 1), "601")])
    assert await data_marker(db, trade_scope) == before  # equity is not part of a trade-based scope


async def test_account_owners(db):
    k = await seed(db)
    owners = await load_account_owners(db)
    assert owners[k["ops"]] is None
    assert owners[k["a1"]].telegram_id == 101 and owners[k["b1"]].language == "es"


async def test_long_history_streams_in_chunks(db):
    s = Seeder(db)
    account = await s.account(None)
    points = [(at(1) + timedelta(minutes=i), D(10000) + D(i) / 100) for i in range(5000)]
    await s.bulk_equity(account, points)
    series = await load_equity(db, Scope(account_id=account), at(1), at(10))
    assert series[account] == points
