"""Plans: what each costs in Telegram Stars, how long it runs and what it entitles to.

Plans come from a TOML file (``PLANS_FILE``; the defaults ship beside this module as
``plans.toml``), read once at start-up and validated against Telegram's rules for Stars invoices:
title 1-32 characters, description 1-255, a price in whole Stars, and for a recurring plan (a
Stars subscription) a period of exactly 30 days and at most 10000 Stars. A bad file raises
``SettingsError`` with one line naming ``PLANS_FILE`` and the fault.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from engine.settings import Settings, SettingsError

DEFAULT_PLANS_FILE = Path(__file__).resolve().parent / "plans.toml"

SIGNALS = "signals"
EXECUTE_PAPER = "execute_paper"
EXECUTE_MT5 = "execute_mt5"
AUTO_EXECUTE = "auto_execute"
ENTITLEMENTS = (SIGNALS, EXECUTE_PAPER, EXECUTE_MT5, AUTO_EXECUTE)

CURRENCY = "XTR"
SUBSCRIPTION_PERIOD_SECONDS = 2592000  # Telegram: "must always be 2592000 (30 days)"
SUBSCRIPTION_PERIOD_DAYS = 30
MAX_SUBSCRIPTION_STARS = 10000
MAX_TITLE = 32
MAX_DESCRIPTION = 255
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,15}$")


@dataclass(frozen=True, slots=True)
class Plan:
    key: str
    title: str
    description: str
    price_stars: int
    period_days: int
    recurring: bool
    entitlements: frozenset[str]
    rank: int  # position in the file: higher is more

    @property
    def is_free(self) -> bool:
        return self.price_stars == 0

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.period_days)

    def allows(self, entitlement: str) -> bool:
        return entitlement in self.entitlements


@dataclass(frozen=True)
class PlanCatalog:
    plans: tuple[Plan, ...]
    default_key: str
    reminder_days: int = 3
    renewal_grace: timedelta = timedelta(hours=24)
    referral_share_percent: Decimal = Decimal(20)
    billing: bool = True  # False: billing is off, the one free plan includes everything

    @classmethod
    def everything(cls) -> PlanCatalog:
        """Billing off: one free plan with every entitlement, nothing for sale, no referral share."""
        plan = Plan(
            key="all",
            title="All",
            description="Every feature (billing is off).",
            price_stars=0,
            period_days=SUBSCRIPTION_PERIOD_DAYS,
            recurring=False,
            entitlements=frozenset(ENTITLEMENTS),
            rank=0,
        )
        return cls((plan,), plan.key, reminder_days=0, referral_share_percent=Decimal(0), billing=False)

    def get(self, key: str) -> Plan | None:
        return next((p for p in self.plans if p.key == key), None)

    @property
    def default(self) -> Plan:
        plan = self.get(self.default_key)
        assert plan is not None
        return plan

    @property
    def paid(self) -> list[Plan]:
        return [p for p in self.plans if not p.is_free]

    def referral_credit(self, amount: Decimal) -> Decimal:
        """The referrer's share of a payment, in Stars (exact, two decimals, rounded down)."""
        share = amount * self.referral_share_percent / Decimal(100)
        return share.quantize(Decimal("0.01"), rounding=ROUND_DOWN)


class _Invalid(ValueError):
    pass


def _int(table: dict[str, Any], name: str, default: int | None, low: int, high: int, where: str) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{where}.{name} must be a whole number")
    if not low <= value <= high:
        raise _Invalid(f"{where}.{name} must be between {low} and {high}")
    return value


def _text(table: dict[str, Any], name: str, limit: int, where: str) -> str:
    value = table.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"{where}.{name} is required")
    if len(value) > limit:
        raise _Invalid(f"{where}.{name} must be at most {limit} characters")
    return value.strip()


def _plan(key: str, table: Any, rank: int) -> Plan:
    where = f"plans.{key}"
    if not _KEY.match(key):
        raise _Invalid(f"{where}: a plan key is 1-16 of a-z, 0-9 and _, starting with a letter")
    if not isinstance(table, dict):
        raise _Invalid(f"{where} must be a table")
    unknown = set(table) - {"title", "description", "price_stars", "period_days", "recurring", "entitlements"}
    if unknown:
        raise _Invalid(f"{where}: unknown field {sorted(unknown)[0]}")
    price = _int(table, "price_stars", None, 0, 1_000_000, where)
    period = _int(table, "period_days", SUBSCRIPTION_PERIOD_DAYS, 1, 3650, where)
    recurring = table.get("recurring", False)
    if not isinstance(recurring, bool):
        raise _Invalid(f"{where}.recurring must be true or false")
    if recurring:
        if period != SUBSCRIPTION_PERIOD_DAYS:
            raise _Invalid(f"{where}: a recurring plan (Stars subscription) must last 30 days")
        if not 1 <= price <= MAX_SUBSCRIPTION_STARS:
            raise _Invalid(f"{where}: a recurring plan costs 1-{MAX_SUBSCRIPTION_STARS} Stars")
    entitlements = table.get("entitlements", [])
    if not isinstance(entitlements, list) or not all(isinstance(e, str) for e in entitlements):
        raise _Invalid(f"{where}.entitlements must be a list of names")
    for name in entitlements:
        if name not in ENTITLEMENTS:
            raise _Invalid(f"{where}.entitlements: unknown entitlement {name!r}")
    return Plan(
        key=key,
        title=_text(table, "title", MAX_TITLE, where),
        description=_text(table, "description", MAX_DESCRIPTION, where),
        price_stars=price,
        period_days=period,
        recurring=recurring,
        entitlements=frozenset(entitlements),
        rank=rank,
    )


def parse_plans(data: dict[str, Any]) -> PlanCatalog:
    plans_table = data.get("plans")
    if not isinstance(plans_table, dict) or not plans_table:
        raise _Invalid("[plans] must define at least one plan")
    plans = tuple(_plan(key, table, rank) for rank, (key, table) in enumerate(plans_table.items()))
    default_key = data.get("default_plan")
    default = next((p for p in plans if p.key == default_key), None)
    if default is None:
        raise _Invalid("default_plan must name one of the plans")
    if not default.is_free:
        raise _Invalid("default_plan must be a free plan (price_stars = 0)")
    billing = data.get("billing", {})
    referrals = data.get("referrals", {})
    if not isinstance(billing, dict) or not isinstance(referrals, dict):
        raise _Invalid("[billing] and [referrals] must be tables")
    try:
        share = Decimal(str(referrals.get("share_percent", "20")))
    except InvalidOperation:
        raise _Invalid("referrals.share_percent must be a number") from None
    if isinstance(referrals.get("share_percent"), bool) or not (share.is_finite() and 0 <= share <= 100):
        raise _Invalid("referrals.share_percent must be between 0 and 100")
    return PlanCatalog(
        plans=plans,
        default_key=default.key,
        reminder_days=_int(billing, "reminder_days", 3, 0, 30, "billing"),
        renewal_grace=timedelta(hours=_int(billing, "renewal_grace_hours", 24, 0, 168, "billing")),
        referral_share_percent=share,
    )


def load_plans(path: str | Path | None = None) -> PlanCatalog:
    """The plans in ``path`` (``PLANS_FILE``), or the shipped defaults when it is empty."""
    source = Path(path) if path else DEFAULT_PLANS_FILE
    try:
        with source.open("rb") as fp:
            data = tomllib.load(fp, parse_float=Decimal)
        return parse_plans(data)
    except FileNotFoundError:
        raise SettingsError(f"PLANS_FILE: {source} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"PLANS_FILE: {source} is not valid TOML: {exc}") from None
    except _Invalid as exc:
        raise SettingsError(f"PLANS_FILE: {source}: {exc}") from None


def catalog_for(settings: Settings) -> PlanCatalog:
    """The plans in force: the file's when billing is on, else everything for everyone."""
    if not settings.billing_enabled:
        return PlanCatalog.everything()
    return load_plans(settings.plans_file or None)
