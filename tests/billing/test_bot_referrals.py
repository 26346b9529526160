"""Referrals end to end: /invite, attribution on the first /start only, /referrals, admin payouts."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from engine.store.models import AuditLog, ReferralEntry
from tests.support.billing_bot import buy, user_row
from tests.support.bot_world import ADMIN, World
from tests.support.telegram import BOT_USERNAME
from tests.support.waiting import eventually


async def test_invite_attribution_and_balances(world: World) -> None:
    await world.subscribe(901)
    alice = await user_row(world, 901)
    await world.say(901, "/invite")
    invite = await world.wait_text(901, "Your invite link")
    link = f"https://t.me/{BOT_USERNAME}?start=ref_{alice.referral_code}"
    assert link in invite["text"] and "20%" in invite["text"]

    await world.user(902, "Bob")
    await world.say(902, f"/start ref_{alice.referral_code}")
    await world.wait_text(901, "joined with your invite link")
    bob = await user_row(world, 902)
    assert bob.referred_by_id == alice.id

    await world.subscribe(903)  # started without a link ...
    await world.say(903, f"/start ref_{alice.referral_code}")  # ... a later /start does not count
    await world.say(901, f"/start ref_{alice.referral_code}")  # nor does one's own link
    await eventually(lambda: _refusals(world, 2))
    assert (await user_row(world, 903)).referred_by_id is None
    assert (await user_row(world, 901)).referred_by_id is None

    await world.wait_text(902, "Risk disclaimer")
    outcome = await buy(world, 902, "pro")  # Bob pays before even consenting: the plan is his
    assert outcome["status"] == "paid"
    await world.wait_text(902, "Payment received")
    await world.say(901, "/referrals")
    summary = await world.wait_text(901, "Your referrals")
    assert "Invited: 1" in summary["text"] and "Paying: 1" in summary["text"]
    assert "Balance: 50 ⭐" in summary["text"] and "@user902" in summary["text"]

    await world.user(ADMIN, "Admin")
    await world.say(901, "/leaderboard")
    await world.wait_text(901, "for admins only")
    await world.say(ADMIN, "/leaderboard")
    board = await world.wait_text(ADMIN, "Referral leaderboard")
    assert "1. @user901 (901): invited 1, paying 1, earned 50 ⭐, balance 50 ⭐" in board["text"]
    await world.say(ADMIN, "/payout 901 80")
    await world.wait_text(ADMIN, "larger than the balance")
    await world.say(ADMIN, "/payout @user901 20.5 bank transfer")
    await world.wait_text(ADMIN, "Paid out 20.5 ⭐ to @user901; balance left: 29.5 ⭐")
    async with world.db.session() as s:
        ledger = (await s.scalars(select(ReferralEntry).order_by(ReferralEntry.id))).all()
    assert [(e.kind, e.amount, e.note) for e in ledger] == [
        ("credit", Decimal(50), "20% of 250 XTR"),
        ("payout", Decimal("-20.5"), "bank transfer"),
    ]
    await world.say(901, "/referrals")
    await world.wait_text(901, "Balance: 29.5 ⭐")


async def _refusals(world: World, count: int) -> bool:
    async with world.db.session() as s:
        rows = (await s.scalars(select(AuditLog).where(AuditLog.action == "referral.refused"))).all()
    outcomes = sorted(r.details["outcome"] for r in rows)
    return outcomes == ["not_first_start"] * count
