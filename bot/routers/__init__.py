"""aiogram routers, one per feature; ``all_routers`` builds them in the order they are included."""

from __future__ import annotations

from aiogram import Router


def all_routers() -> list[Router]:
    from bot.routers import (
        account,
        admin,
        approvals,
        autotrade,
        billing,
        miniapp,
        onboarding,
        positions,
        referrals,
        settings,
        settings_risk,
        stats,
    )

    # Approvals first (the hot path); onboarding last, as it holds the fallback for other text.
    return [
        approvals.build_router(),
        positions.build_router(),  # before admin: a subscriber's own /positions, position buttons
        admin.build_router(),
        account.build_router(),
        settings.build_router(),
        settings_risk.build_router(),  # /settings → Risk
        stats.build_router(),  # analytics: /stats, /export
        billing.build_router(),  # billing: /subscribe, payments (before onboarding's text fallback)
        autotrade.build_router(),  # /auto
        referrals.build_router(),  # /invite, /referrals, /leaderboard, /payout
        miniapp.build_router(),  # /app: the Mini App
        onboarding.build_router(),
    ]
