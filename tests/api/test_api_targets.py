"""Signals with several targets (CONTRACTS section 1): stored exactly, bad ones refused with the field."""

from __future__ import annotations

from decimal import Decimal

from engine.store.models import Signal
from tests.support.api_world import good_body
from tests.support.queries import count, rows

TARGETS = [
    {"price": "1.08750", "close_percent": 50},
    {"price": 1.0895, "close_percent": 30},
    {"price": "1.0915", "close_percent": 20},
]


async def _errors(api, body) -> dict[str, str]:
    resp = await api.post(body)
    assert resp.status == 422, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    return {e["field"]: e["message"] for e in (await resp.json(content_type=None))["errors"]}


async def test_targets_are_stored_with_defaults_and_tp_is_the_last(api):
    resp = await api.post(good_body(tp=None, targets=TARGETS, trail_points=150))
    assert resp.status == 201, await resp.text()
    [row] = await rows(api.db, Signal)
    assert row.tp == Decimal("1.0915")
    assert row.targets == [
        {"price": "1.0875", "close_percent": 50},
        {"price": "1.0895", "close_percent": 30},
        {"price": "1.0915", "close_percent": 20},
    ]
    assert (row.breakeven_after, row.trail_points) == (1, 150)
    by_token = await api.client.get(f"/api/v1/signals/token/{api.producer.token}/{row.id}")
    view = await by_token.json()
    assert view["targets"] == row.targets and view["breakeven_after"] == 1


async def test_tp_alone_is_one_target_without_break_even(api):
    assert (await api.post(good_body())).status == 201
    [row] = await rows(api.db, Signal)
    assert (row.targets, row.breakeven_after, row.trail_points) == (None, 0, None)


async def test_a_sell_with_targets_and_explicit_break_even(sqlite_api):
    body = good_body(
        side="sell", entry="2350.00", sl="2360", tp=None, instrument="XAUUSD", breakeven_after=2,
        targets=[{"price": "2340", "close_percent": 60}, {"price": "2330", "close_percent": 40}],
    )  # fmt: skip
    assert (await sqlite_api.post(body)).status == 201
    [row] = await rows(sqlite_api.db, Signal)
    assert row.breakeven_after == 2


async def test_bad_targets_are_422_with_the_field(sqlite_api):
    def t(*pairs):
        return [{"price": p, "close_percent": c} for p, c in pairs]

    cases = [
        (good_body(targets=TARGETS), {"targets": "give either tp or targets, not both"}),
        (good_body(tp=None), {"tp": "required unless targets is given"}),
        (good_body(tp=None, targets=[]), {"targets"}),
        (good_body(tp=None, targets=TARGETS * 2), {"targets"}),
        (good_body(tp=None, targets=t(("1.0875", 50), ("1.0895", 40))), {"targets": "close_percent must sum to 100, got 90"}),
        (good_body(tp=None, targets=t(("1.0895", 50), ("1.0875", 50))), {"targets.1.price": "must be above targets.0.price for a buy"}),
        (good_body(tp=None, targets=t(("1.0835", 50), ("1.0875", 50))), {"targets.0.price": "must be above entry for a buy"}),
        (good_body(tp=None, targets=t(("1.0875", 0), ("1.0895", 100))), {"targets.0.close_percent"}),
        (good_body(tp=None, targets=t(("1.0875", 50.5), ("1.0895", 49.5))), {"targets.0.close_percent", "targets.1.close_percent"}),
        (good_body(tp=None, targets=[{"price": "1.0875", "close_percent": 100, "size": 1}]), {"targets.0.size"}),
        (good_body(tp=None, targets=t(("1.0875", 50), ("1.0895", 50)), breakeven_after=3), {"breakeven_after": "must be at most the number of targets (2)"}),
        (good_body(breakeven_after=5), {"breakeven_after"}),
        (good_body(trail_points=0), {"trail_points"}),
        (good_body(trail_points="10"), {"trail_points"}),
        (good_body(order_type="market", entry=None, sl="1.0900", tp=None, targets=t(("1.0875", 100))), {"sl": "must be below targets.0.price for a buy"}),
    ]  # fmt: skip
    for body, expected in cases:
        errors = await _errors(sqlite_api, body)
        if isinstance(expected, dict):
            assert errors == expected, (body, errors)
        else:
            assert set(errors) == expected, (body, errors)
    assert await count(sqlite_api.db, Signal) == 0
