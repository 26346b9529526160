"""The plans file: shipped defaults, Telegram's rules for Stars invoices, clear start-up errors."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.billing.plans import AUTO_EXECUTE, ENTITLEMENTS, EXECUTE_MT5, EXECUTE_PAPER, SIGNALS, load_plans
from engine.settings import Settings, SettingsError
from tradebot.app import build_services

GOOD = """
default_plan = "free"
[referrals]
share_percent = "15"
[plans.free]
title = "Free"
description = "Signals."
price_stars = 0
entitlements = ["signals"]
[plans.week]
title = "Week"
description = "A week of paper execution."
price_stars = 50
period_days = 7
entitlements = ["signals", "execute_paper"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plans.toml"
    path.write_text(text)
    return path


def test_shipped_defaults() -> None:
    catalog = load_plans(None)
    assert [p.key for p in catalog.plans] == ["free", "pro", "auto"]
    free, pro, auto = catalog.plans
    assert catalog.default is free and free.is_free and free.entitlements == {SIGNALS, EXECUTE_PAPER}
    assert (pro.price_stars, pro.period_days, pro.recurring) == (250, 30, True)
    assert pro.allows(EXECUTE_MT5) and not pro.allows(AUTO_EXECUTE)
    assert auto.allows(AUTO_EXECUTE) and auto.rank > pro.rank > free.rank
    assert catalog.reminder_days == 3 and catalog.renewal_grace == timedelta(hours=24)
    assert catalog.referral_share_percent == Decimal(20)
    assert [p.key for p in catalog.paid] == ["pro", "auto"]


def test_a_custom_file_and_exact_referral_shares(tmp_path: Path) -> None:
    catalog = load_plans(write(tmp_path, GOOD))
    week = catalog.get("week")
    assert week is not None and not week.recurring and week.period == timedelta(days=7)
    assert catalog.referral_credit(Decimal(7)) == Decimal("1.05")  # 15 % of 7, exact
    assert catalog.referral_credit(Decimal(1)) == Decimal("0.15")
    assert load_plans(None).referral_credit(Decimal(250)) == Decimal(50)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            (
                'period_days = 7\nentitlements = ["signals", "execute_paper"]',
                "period_days = 7\nrecurring = true\nentitlements = []",
            ),
            "must last 30 days",
        ),
        (
            ("price_stars = 50\nperiod_days = 7", "price_stars = 10001\nperiod_days = 30\nrecurring = true"),
            "recurring plan costs 1-10000 Stars",
        ),
        (('entitlements = ["signals"]', 'entitlements = ["teleport"]'), "unknown entitlement 'teleport'"),
        (('default_plan = "free"', 'default_plan = "week"'), "default_plan must be a free plan"),
        (('default_plan = "free"', 'default_plan = "gold"'), "default_plan must name one of the plans"),
        (('title = "Week"', 'title = "' + "W" * 33 + '"'), "plans.week.title must be at most 32 characters"),
        (("price_stars = 50", 'price_stars = "50"'), "plans.week.price_stars must be a whole number"),
        (('share_percent = "15"', 'share_percent = "150"'), "share_percent must be between 0 and 100"),
        (("[plans.week]", "[plans.Week]"), "a plan key is 1-16 of a-z"),
        (("period_days = 7", "period_days = 7\ncolour = 1"), "unknown field colour"),
    ],
)
def test_bad_files_stop_start_up_with_one_line(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(SettingsError) as caught:
        load_plans(write(tmp_path, text))
    line = str(caught.value)
    assert line.startswith("PLANS_FILE: ") and message in line and "\n" not in line


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"PLANS_FILE: .* does not exist"):
        load_plans(tmp_path / "nope.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_plans(write(tmp_path, "plans = ["))


async def test_plans_file_setting_reaches_the_services(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, plans_file=str(write(tmp_path, GOOD)), database_url=f"sqlite:///{tmp_path}/x.db"
    )  # type: ignore[call-arg]
    services = build_services(settings)
    try:
        assert services.billing_enabled  # a plans file turns billing on without BILLING=on
        assert services.billing.catalog.get("week") is not None
    finally:
        await services.close()
        await services.db.dispose()


async def test_billing_is_off_by_default_and_then_every_plan_gate_is_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    services = build_services(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    try:
        assert not services.billing_enabled
        catalog = services.billing.catalog
        assert catalog.paid == [] and catalog.default.entitlements == frozenset(ENTITLEMENTS)
    finally:
        await services.close()
        await services.db.dispose()
    services = build_services(Settings(_env_file=None, database_url=url, billing="on"))  # type: ignore[call-arg]
    try:
        assert services.billing_enabled
        assert services.billing.catalog.get("pro") is not None  # the shipped plans
        assert not services.billing.catalog.default.allows(EXECUTE_MT5)
    finally:
        await services.close()
        await services.db.dispose()
