"""Entitlements: which plan a subscriber is on now, and the risk-chain gate that enforces it.

A user's standing is derived from their ``Subscription`` row and the clock, so it is right even
before the expiry sweep has run: an active paid plan counts until ``expires_at`` (plus the
renewal grace while a Telegram Stars subscription is still renewing); otherwise the user has the
default (free) plan. The gate runs in the pre-trade risk chain (``engine.risk.chain``) at the moment of execution and
refuses an order the subscriber's plan does not cover, with a stable code:

- ``plan_required``: the plan never included this (e.g. an MT5 account on the free plan);
- ``plan_expired``: the paid plan that included it has expired or was refunded;
- ``auto_disabled``: an auto-executed order whose owner has since turned auto-execution off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.billing.plans import AUTO_EXECUTE, EXECUTE_MT5, EXECUTE_PAPER, Plan, PlanCatalog
from engine.risk.chain import Refusal, TradeContext
from engine.states import SubscriptionStatus
from engine.store.db import utcnow
from engine.store.models import AutoTradeSettings, Subscription

VIA_AUTO = "auto"  # Decision.via of an auto-executed signal

# A user's standing: the subscription's stored status, plus two derived ones (grace, none).
ACTIVE = SubscriptionStatus.ACTIVE.value
GRACE = "grace"  # past the end, waiting for Telegram's renewal charge
EXPIRED = SubscriptionStatus.EXPIRED.value
REVOKED = SubscriptionStatus.REVOKED.value  # refunded
NONE = "none"

_FEATURE = {
    EXECUTE_PAPER: "execution on a paper account",
    EXECUTE_MT5: "execution on a MetaTrader 5 account",
    AUTO_EXECUTE: "auto-execution",
}


@dataclass(frozen=True, slots=True)
class Standing:
    plan: Plan  # the plan in force now
    state: str  # none | active | grace | expired | revoked
    paid_plan: str | None = None  # the plan of the subscription row, in force or not
    expires_at: datetime | None = None
    recurring: bool = False
    renewal_state: str | None = None

    def allows(self, entitlement: str) -> bool:
        return self.plan.allows(entitlement)

    @property
    def renewing(self) -> bool:
        """A Telegram Stars subscription that Telegram will charge again."""
        return self.recurring and self.renewal_state in (None, ACTIVE)


def standing_of(sub: Subscription | None, catalog: PlanCatalog, now: datetime | None = None) -> Standing:
    now = now or utcnow()
    if sub is None:
        return Standing(catalog.default, NONE)

    def with_row(plan: Plan, state: str) -> Standing:
        return Standing(plan, state, sub.plan, sub.expires_at, sub.recurring, sub.renewal_state)

    plan = catalog.get(sub.plan)
    if sub.status == ACTIVE and plan is not None:
        if now < sub.expires_at:
            return with_row(plan, ACTIVE)
        renewing = sub.recurring and sub.renewal_state in (None, ACTIVE)
        if renewing and now < sub.expires_at + catalog.renewal_grace:
            return with_row(plan, GRACE)
    return with_row(catalog.default, REVOKED if sub.status == REVOKED else EXPIRED)


async def standing(
    session: AsyncSession, user_id: int, catalog: PlanCatalog, now: datetime | None = None
) -> Standing:
    sub = await session.scalar(select(Subscription).where(Subscription.user_id == user_id))
    return standing_of(sub, catalog, now)


def execution_entitlement(account_kind: str) -> str:
    return EXECUTE_MT5 if account_kind == "mt5" else EXECUTE_PAPER


def refusal_for(st: Standing, entitlement: str) -> tuple[str, str]:
    feature = _FEATURE.get(entitlement, entitlement)
    if st.state in (EXPIRED, REVOKED) and st.paid_plan is not None:
        ended = "was refunded" if st.state == REVOKED else "has expired"
        return (
            "plan_expired",
            f"your {st.paid_plan} plan {ended}; the {st.plan.key} plan does not include {feature} (/subscribe)",
        )
    return "plan_required", f"the {st.plan.key} plan does not include {feature} (/subscribe)"


class EntitlementGate:
    """The risk chain's plan gate: the order's owner must be entitled to it right now."""

    name = "entitlement"

    def __init__(self, catalog: PlanCatalog) -> None:
        self._catalog = catalog

    async def check(self, ctx: TradeContext) -> Refusal | None:
        if ctx.user is None or ctx.reduces:
            return None  # the operator's own account is not on a subscriber's plan; closes are free
        st = await standing(ctx.session, ctx.user.id, self._catalog, ctx.now)
        auto = ctx.via == VIA_AUTO
        needed = [execution_entitlement(ctx.account.kind)] + ([AUTO_EXECUTE] if auto else [])
        for entitlement in needed:
            if not st.allows(entitlement):
                code, message = refusal_for(st, entitlement)
                return Refusal(self.name, code, message, {"plan": st.plan.key})
        if auto:
            prefs = await ctx.session.get(AutoTradeSettings, ctx.user.id)
            if prefs is None or not prefs.enabled:
                return Refusal(self.name, "auto_disabled", "auto-execution was turned off by the subscriber")
        return None
