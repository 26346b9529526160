"""Plans and Stars payments end to end: the real aiogram bot against the Bot API emulator."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.callbacks import APPROVE, DecisionCb
from engine.store.models import AuditLog, Order, ReferralEntry, Subscription, User
from mt5sim import control
from tests.support.billing_bot import buy, payments, subscription_of, user_row
from tests.support.bot_world import ADMIN, World
from tests.support.telegram import buttons, url_buttons
from tests.support.waiting import eventually

LOGIN = 5101
PASSWORD = "pw-5101"
SERVER = "MT5Sim-Demo"
_ids = itertools.count(1)
SIGNAL = {"instrument": "EURUSD", "side": "buy", "sl": "1.09800", "tp": "1.10400"}


@pytest.fixture
def sim_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "mt5sim.sqlite3"
    monkeypatch.setenv("MT5SIM_STATE", str(path))
    control.ignore_market_hours(state=path)
    control.create_account(LOGIN, PASSWORD, server=SERVER, balance=10000, state=path)
    control.set_price("EURUSD", Decimal("1.10000"), Decimal("1.10010"), state=path)
    yield path
    control.close()


APPROVE_PREFIX = DecisionCb(action=APPROVE, decision_id="x").pack().removesuffix("x")


async def approve_next_signal(world: World, uid: int) -> dict:
    """Post a signal, tap Approve on its DM, return the DM once it shows the execution result."""
    posted = await world.post_signal({**SIGNAL, "id": f"sig-{next(_ids)}"})
    dm = await world.wait_message(  # the one with Approve (a filled one keeps its position's buttons)
        uid, lambda m: any(b.startswith(APPROVE_PREFIX) for b in buttons(m)) and "EURUSD" in m["text"]
    )
    await world.tap(uid, uid, dm["message_id"], buttons(dm)[0])

    def done(m: dict) -> bool:
        return m["message_id"] == dm["message_id"] and ("Filled" in m["text"] or "Not executed" in m["text"])

    result = await world.wait_message(uid, done, 15)
    assert posted["id"]
    return result


async def test_subscribe_pay_execute_remind_expire(world: World, sim_state: Path) -> None:
    await world.subscribe(801)
    assert world.services.accounts is not None and world.services.billing_sweeper is not None
    await world.services.accounts.link_mt5(801, LOGIN, PASSWORD, SERVER, actor="test")

    refused = await approve_next_signal(world, 801)  # the free plan does not execute on MT5
    assert (
        "Not executed" in refused["text"]
        and "your plan does not include this; see /subscribe" in refused["text"]
    )

    await world.say(801, "/subscribe")
    panel = await world.wait_text(801, "Plans")
    assert "Your plan: Free." in panel["text"]  # the emulator shows the text as parsed (no tags)
    assert "250 ⭐ a month" in panel["text"] and len(buttons(panel)) == 2  # Pro and Auto
    outcome = await buy(world, 801, "pro")
    assert outcome["status"] == "paid" and outcome["subscription_expiration_date"]
    receipt = await world.wait_text(801, "Payment received: 250 ⭐ for Pro")
    assert "active until" in receipt["text"]
    [payment] = await payments(world)
    assert (
        payment.telegram_payment_charge_id == outcome["telegram_payment_charge_id"] and payment.is_recurring
    )
    assert (payment.amount, payment.currency, payment.plan) == (Decimal(250), "XTR", "pro")

    filled = await approve_next_signal(world, 801)
    assert "Filled" in filled["text"]

    # Three days before the end: one reminder. At the end (no renewal came): the drop to free, with a message.
    sub = await subscription_of(world, 801)
    assert sub is not None
    async with world.db.session() as s:
        await s.execute(
            update(Subscription)
            .where(Subscription.id == sub.id)
            .values(expires_at=datetime.now(UTC) + timedelta(days=2), renewal_state="canceled")
        )
    await world.services.billing_sweeper.sweep()
    await world.services.billing_sweeper.sweep()
    await world.wait_text(801, "plan ends on")
    async with world.db.session() as s:
        await s.execute(
            update(Subscription)
            .where(Subscription.id == sub.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    await world.services.billing_sweeper.sweep()
    await world.wait_text(801, "you are now on the Free plan")
    texts = [m.get("text") or "" for m in await world.messages(801)]
    assert sum("plan ends on" in t for t in texts) == 1

    expired = await approve_next_signal(world, 801)
    assert "Not executed" in expired["text"] and "your plan has expired; see /subscribe" in expired["text"]
    async with world.db.session() as s:
        codes = (await s.scalars(select(Order.reason_code).order_by(Order.created_at))).all()
    assert codes == ["plan_required", None, "plan_expired"]


async def test_the_same_payment_update_twice_credits_once(world: World) -> None:
    await world.subscribe(810)
    referrer = await user_row(world, 810)
    await world.user(811)
    await world.say(811, f"/start ref_{referrer.referral_code}")
    await eventually(lambda: _referred(world, 811))
    outcome = await buy(world, 811, "pro")
    assert outcome["status"] == "paid"
    await world.wait_text(811, "Payment received")

    # Telegram delivers the very same update again (a retry, a second instance): replay it.
    everything = await world.client.messages(811, include_users=True)
    [service] = [m for m in everything if m.get("successful_payment")]
    runtime = world.rt()
    await runtime.dispatcher.feed_raw_update(runtime.bot, {"update_id": 10**9, "message": service})
    await runtime.dispatcher.feed_raw_update(runtime.bot, {"update_id": 10**9 + 1, "message": service})
    await world.services.relay.drain()

    assert len(await payments(world)) == 1
    async with world.db.session() as s:
        ledger = (await s.scalars(select(ReferralEntry))).all()
        lines = (await s.scalars(select(AuditLog).where(AuditLog.action == "payment.received"))).all()
    assert [(e.kind, e.amount) for e in ledger] == [("credit", Decimal(50))] and len(lines) == 1
    sub = await subscription_of(world, 811)
    assert sub is not None
    assert abs(
        sub.expires_at - datetime.fromtimestamp(outcome["subscription_expiration_date"], UTC)
    ) < timedelta(seconds=5)
    texts = [m.get("text") or "" for m in await world.messages(811)]
    assert sum("Payment received" in t for t in texts) == 1


async def _referred(world: World, uid: int) -> bool:
    async with world.db.session() as s:
        return (await s.scalar(select(User.referred_by_id).where(User.telegram_id == uid))) is not None


async def test_admin_refund_revokes_the_plan(world: World) -> None:
    await world.subscribe(820)
    await world.user(ADMIN, "Admin")
    outcome = await buy(world, 820, "pro")
    charge = outcome["telegram_payment_charge_id"]
    await world.wait_text(820, "Payment received")

    await world.say(820, f"/refund 820 {charge}")  # not an admin
    await world.wait_text(820, "for admins only")
    await world.say(ADMIN, f"/refund 820 {charge}")
    reply = await world.wait_text(ADMIN, "Refunded 250 ⭐ to 820")
    assert "their plan is now free" in reply["text"]
    notice = await world.wait_text(820, "was refunded")
    assert "You are now on the" in notice["text"]
    [payment] = await payments(world)
    assert payment.status == "refunded"
    sub = await subscription_of(world, 820)
    assert sub is not None and sub.status == "revoked"
    st = await world.services.billing.standing(820)  # type: ignore[union-attr]
    assert st is not None and st.plan.key == "free"

    await world.say(ADMIN, f"/refund 820 {charge}")
    await world.wait_text(ADMIN, "already refunded")
    await world.say(ADMIN, "/refund 820 stxNoSuchCharge")
    await world.wait_text(ADMIN, "No payment with that charge id")
    texts = [m.get("text") or "" for m in await world.messages(820)]
    assert sum("was refunded" in t for t in texts) == 1


async def test_pre_checkout_refuses_a_banned_buyer_and_someone_elses_invoice(world: World) -> None:
    await world.subscribe(830)
    await world.subscribe(831)
    await world.say(830, "/subscribe")
    panel = await world.wait_text(830, "Plans")
    await world.tap(830, 830, panel["message_id"], buttons(panel)[0])
    invoice = await world.wait_message(830, lambda m: bool(url_buttons(m)))
    link = url_buttons(invoice)[0]

    stranger = await world.client.pay(831, link=link)  # a forwarded link: issued to 830
    assert stranger["status"] == "declined" and "issued to someone else" in stranger["error_message"]
    async with world.db.session() as s:
        await s.execute(update(User).where(User.telegram_id == 830).values(status="banned"))
    banned = await world.client.pay(830, link=link)
    assert banned["status"] == "declined" and "cannot buy plans" in banned["error_message"]
    assert await payments(world) == []
    async with world.db.session() as s:
        refusals = (
            await s.scalars(select(AuditLog).where(AuditLog.action == "payment.checkout_refused"))
        ).all()
    assert sorted(r.details["reason"] for r in refusals) == ["banned", "not_yours"]


async def test_one_off_plans_use_send_invoice(world_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plans = tmp_path / "plans.toml"
    plans.write_text(
        'default_plan = "free"\n[plans.free]\ntitle = "Free"\ndescription = "Signals."\nprice_stars = 0\n'
        'entitlements = ["signals", "execute_paper"]\n[plans.week]\ntitle = "Week"\n'
        'description = "Seven days of everything."\nprice_stars = 40\nperiod_days = 7\n'
        'entitlements = ["signals", "execute_paper", "execute_mt5"]\n'
    )
    world = await world_factory(plans_file=str(plans))
    await world.subscribe(840, lang="es")
    await world.say(840, "/subscribe")
    panel = await world.wait_message(840, lambda m: bool(buttons(m)))
    assert "40 ⭐ por 7 días" in panel["text"]
    await world.tap(840, 840, panel["message_id"], buttons(panel)[0])
    invoice = await world.wait_message(840, lambda m: bool(m.get("invoice")))
    assert invoice["invoice"]["currency"] == "XTR" and invoice["invoice"]["total_amount"] == 40
    outcome = await world.client.pay(840, chat_id=840, message_id=invoice["message_id"])
    assert outcome["status"] == "paid" and "subscription_expiration_date" not in outcome
    receipt = await world.wait_text(840, "Pago recibido: 40 ⭐")
    assert "Recibo" in receipt["text"]
    sub = await subscription_of(world, 840)
    assert sub is not None and sub.plan == "week" and not sub.recurring
    assert abs(sub.expires_at - (datetime.now(UTC) + timedelta(days=7))) < timedelta(seconds=10)


async def test_renewals_subscription_updates_and_refunds_made_elsewhere(world: World) -> None:
    await world.subscribe(850)
    outcome = await buy(world, 850, "pro")
    await world.wait_text(850, "Payment received")
    first_end = (await subscription_of(world, 850)).expires_at  # type: ignore[union-attr]

    # Thirty days on, Telegram charges the subscription again: an is_recurring payment, no pre-checkout.
    renewed = await world.client.renew(850, outcome["telegram_payment_charge_id"])
    await world.wait_text(850, "Your Pro plan was renewed: 250 ⭐")
    sub = await subscription_of(world, 850)
    assert sub is not None and sub.expires_at == first_end + timedelta(days=30)
    assert sub.last_charge_id == renewed["telegram_payment_charge_id"] and len(await payments(world)) == 2
    runtime = world.rt()

    # Telegram tells the bot a subscription will not renew (Bot API 10.2 ``subscription`` update).
    sender = {"id": 850, "is_bot": False, "first_name": "User"}
    update = {"user": sender, "invoice_payload": "tb1:pro:250:30:850", "state": "canceled"}
    await runtime.dispatcher.feed_raw_update(runtime.bot, {"update_id": 10**9, "subscription": update})
    await world.wait_text(850, "subscription will not renew; it stays active until")
    sub = await subscription_of(world, 850)
    assert sub is not None and sub.renewal_state == "canceled" and sub.status == "active"

    # A refund made outside the bot (another tool): Telegram's refunded_payment message revokes the plan.
    await runtime.bot.refund_star_payment(850, renewed["telegram_payment_charge_id"])
    await world.wait_text(850, "was refunded")
    sub = await subscription_of(world, 850)
    assert (
        sub is not None and sub.status == "active" and sub.expires_at == first_end
    )  # the renewal month is gone
    await runtime.bot.refund_star_payment(850, outcome["telegram_payment_charge_id"])
    await eventually(lambda: _status(world, 850, "revoked"))


async def _status(world: World, uid: int, status: str) -> bool:
    sub = await subscription_of(world, uid)
    return sub is not None and sub.status == status
