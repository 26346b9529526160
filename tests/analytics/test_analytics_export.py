"""The CSV export: documented columns, exact decimals, UTC times, and a parse-back that is exact."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.analytics.data import Scope, Trade
from engine.analytics.export import (
    COLUMNS,
    ExportFormatError,
    export_filename,
    parse_trades_csv,
    trades_to_csv,
)
from engine.analytics.period import parse_period
from engine.analytics.service import AnalyticsService
from tests.support.analytics import Seeder, at

DOCUMENTED = (
    "position_id,account_id,symbol,side,volume,open_time,open_price,close_time,close_price,"
    "profit,commission,swap,net,close_reason,signal_id,strategy"
)


def sample(**overrides) -> Trade:
    values = dict(
        position_id=7,
        account_id=3,
        symbol="EURUSD",
        side="sell",
        volume=D("0.10"),
        open_time=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        open_price=D("1.08512"),
        close_time=datetime(2026, 3, 1, 11, 0, 0, 250000, tzinfo=UTC),
        close_price=D("1.08400"),
        profit=D("112.00"),
        commission=D("-0.70"),
        swap=D("0"),
        close_reason="tp",
        signal_id="5a1e9c7e-0000-4000-8000-000000000001",
        strategy="breakout",
    )
    values.update(overrides)
    return Trade(**values)


def test_header_and_row_format():
    text = trades_to_csv(
        [
            sample(),
            sample(
                position_id=8,
                volume=D("1E-7"),
                profit=D("1E+3"),
                close_price=None,
                strategy=None,
                signal_id=None,
                close_reason=None,
            ),
        ]
    ).decode()
    lines = text.split("\r\n")
    assert lines[0] == DOCUMENTED == ",".join(COLUMNS)
    assert lines[1] == (
        "7,3,EURUSD,sell,0.10,2026-03-01T09:30:00Z,1.08512,2026-03-01T11:00:00.250000Z,1.08400,"
        "112.00,-0.70,0,111.30,tp,5a1e9c7e-0000-4000-8000-000000000001,breakout"
    )
    assert (
        lines[2]
        == "8,3,EURUSD,sell,0.0000001,2026-03-01T09:30:00Z,1.08512,2026-03-01T11:00:00.250000Z,,1000,-0.70,0,999.30,,,"
    )
    assert lines[3] == "" and len(lines) == 4
    assert not text.startswith("\ufeff")


def test_times_are_written_in_utc():
    local = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=3)))
    row = trades_to_csv([sample(open_time=local)]).decode().split("\r\n")[1]
    assert ",2026-03-01T09:00:00Z," in row


def test_formulas_are_neutralised_reversibly():
    nasty = sample(strategy="=HYPERLINK(1)", symbol="+X", close_reason="'quoted", signal_id="@a")
    row = next(iter(csv.DictReader(io.StringIO(trades_to_csv([nasty]).decode()))))
    assert row["strategy"] == "'=HYPERLINK(1)" and row["symbol"] == "'+X"
    assert row["close_reason"] == "''quoted" and row["signal_id"] == "'@a"
    assert parse_trades_csv(trades_to_csv([nasty])) == [nasty]


def test_empty_export_is_just_the_header():
    assert trades_to_csv([]) == (DOCUMENTED + "\r\n").encode()
    assert parse_trades_csv(trades_to_csv([])) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\r\n", "unexpected header"),
        (DOCUMENTED + "\r\n1,2,3\r\n", "3 fields"),
        (
            DOCUMENTED + "\r\nx,3,E,buy,1,2026-03-01T00:00:00Z,1,2026-03-01T00:00:00Z,1,1,0,0,1,,,\r\n",
            "integers",
        ),
        (
            DOCUMENTED + "\r\n1,3,E,buy,one,2026-03-01T00:00:00Z,1,2026-03-01T00:00:00Z,1,1,0,0,1,,,\r\n",
            "volume",
        ),
        (DOCUMENTED + "\r\n1,3,E,buy,1,2026-03-01T00:00:00,1,2026-03-01T00:00:00Z,1,1,0,0,1,,,\r\n", "UTC"),
        (DOCUMENTED + "\r\n1,3,E,buy,1,2026-03-01T00:00:00Z,1,2026-03-01T00:00:00Z,1,1,0,0,2,,,\r\n", "net"),
        (
            DOCUMENTED + "\r\n1,3,E,buy,1,2026-03-01T00:00:00Z,1,2026-03-01T00:00:00Z,1,NaN,0,0,1,,,\r\n",
            "finite",
        ),
    ],
)
def test_parse_rejects_bad_files(text, message):
    with pytest.raises(ExportFormatError, match=message):
        parse_trades_csv(text)


decimals = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=12
)
texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.builds(
            Trade,
            position_id=st.integers(1, 2**40),
            account_id=st.integers(1, 2**31),
            symbol=texts.filter(bool),
            side=st.sampled_from(["buy", "sell"]),
            volume=decimals,
            open_time=times,
            open_price=decimals,
            close_time=times,
            close_price=st.one_of(st.none(), decimals),
            profit=decimals,
            commission=decimals,
            swap=decimals,
            close_reason=st.one_of(st.none(), texts.filter(bool)),
            signal_id=st.one_of(st.none(), st.uuids().map(str)),
            strategy=st.one_of(st.none(), texts.filter(bool)),
        ),
        max_size=8,
    )
)
def test_round_trip_is_exact(trades):
    back = parse_trades_csv(trades_to_csv(trades))
    assert back == trades  # Decimal by value, times to the microsecond, texts character for character
    assert all(t.close_time.tzinfo is not None and t.open_time.tzinfo is not None for t in back)


def test_export_filename():
    assert export_filename(Scope(account_id=3).slug(), "2026-10") == "trades_account-3_2026-10.csv"
    assert export_filename(Scope(strategy="a/b c").slug(), "30d") == "trades_strategy-a-b-c_30d.csv"
    assert export_filename(Scope().slug(), "all") == "trades_all_all.csv"


async def test_export_from_the_database_parses_back(db):
    s = Seeder(db)
    user = await s.user(7)
    account = await s.account(user)
    producer = await s.producer("p")
    signal = await s.signal(producer, "EURUSD", "s1")
    await s.position(
        account,
        profit="12.345678901234",
        commission="-0.000000000001",
        opened=at(1),
        closed=at(1, 2),
        signal_id=signal,
    )
    await s.position(account, profit="-3", swap="-0.25", opened=at(2), closed=at(2, 5))
    await s.position(account, opened=at(3))  # still open: not exported
    service = AnalyticsService(db)
    try:
        export = await service.export_csv(Scope(user_id=user), parse_period("2026-03", at(20)))
    finally:
        service.close()
    assert export.filename == f"trades_user-{user}_2026-03.csv" and export.count == 2
    back = parse_trades_csv(export.content)
    assert [t.net for t in back] == [D("12.345678901233"), D("-3.25")]
    assert back[0].strategy == "s1" and back[0].signal_id == signal and back[1].signal_id is None
    assert back[0].open_time == at(1) and back[1].close_time == at(2, 5)
