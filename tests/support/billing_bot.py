"""Acting as a subscriber who buys a plan, through the real bot and the Bot API emulator."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.billing_texts import BillingCb
from engine.store.models import StarPayment, Subscription, User
from tests.support.bot_world import World
from tests.support.telegram import buttons, url_buttons


async def buy(world: World, uid: int, plan: str = "pro") -> dict[str, Any]:
    """/subscribe, tap the plan's button, pay the invoice link; returns the emulator's outcome."""
    await world.say(uid, "/subscribe")
    data = BillingCb(action="buy", plan=plan).pack()
    panel = await world.wait_message(uid, lambda m: data in buttons(m))
    await world.tap(uid, uid, panel["message_id"], data)
    invoice = await world.wait_message(uid, lambda m: bool(url_buttons(m)))
    return await world.client.pay(uid, link=url_buttons(invoice)[0])


async def user_row(world: World, uid: int) -> User:
    async with world.db.session() as s:
        user = await s.scalar(select(User).where(User.telegram_id == uid))
        assert user is not None
        return user


async def payments(world: World) -> list[StarPayment]:
    async with world.db.session() as s:
        return list((await s.scalars(select(StarPayment).order_by(StarPayment.id))).all())


async def subscription_of(world: World, uid: int) -> Subscription | None:
    user = await user_row(world, uid)
    async with world.db.session() as s:
        return await s.scalar(select(Subscription).where(Subscription.user_id == user.id))
