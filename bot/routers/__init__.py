"""aiogram routers, one per feature; ``all_routers`` builds them in the order they are included."""

from __future__ import annotations

from aiogram import Router


def all_routers() -> list[Router]:
    from bot.routers import account, admin, approvals, onboarding, settings, stats
    from bot.routers.billing import billing_routers

    # Approvals first (the hot path); onboarding last, as it holds the fallback for other text.
    return [
        approvals.build_router(),
        admin.build_router(),
        account.build_router(),
        settings.build_router(),
        stats.build_router(),  # analytics: /stats, /export
        *billing_routers(),  # billing: /subscribe, payments, /auto, referrals (bot/routers/billing.py)
        onboarding.build_router(),
    ]
