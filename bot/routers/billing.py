"""Plans and Telegram Stars payments: /subscribe, invoices, pre-checkout, payments, refunds.

- ``/subscribe`` lists the plans with the subscriber's current one and a button per paid plan.
- A tap issues the invoice in ``XTR`` with exactly one price: a recurring plan as a Stars
  subscription link (``createInvoiceLink`` with ``subscription_period=2592000``), a one-off
  period with ``sendInvoice``.
- ``pre_checkout_query`` is validated (plan, price, payload, buyer) and answered well inside
  Telegram's 10 s: the check reads two rows and is bounded by ``CHECKOUT_TIMEOUT_SECONDS``.
- ``successful_payment`` (first payments and ``is_recurring`` renewals) is recorded exactly once
  per charge id; the receipt follows through the outbox. ``refunded_payment`` and subscription
  updates (cancelled, failed, active) are applied as well.
- Admin ``/refund <user> <charge id>`` calls ``refundStarPayment`` and revokes the period.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    BotSubscriptionUpdated,
    CallbackQuery,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.utils.i18n import gettext as _
from loguru import logger

from bot.billing_texts import BillingCb, checkout_error, pay_keyboard, plans_keyboard, plans_text
from bot.context import BotContext
from bot.render import esc
from engine.accounts.subscribers import actor_for
from engine.billing.invoices import BillingError
from engine.billing.plans import CURRENCY
from engine.store.models import User

CHECKOUT_TIMEOUT_SECONDS = 8.0  # Telegram drops the checkout if the answer takes over 10 s


async def subscribe(message: Message, ctx: BotContext, user: User | None) -> None:
    billing = ctx.engine.billing
    if not billing.catalog.billing:
        await message.answer(
            _("Billing is off on this bot: every feature is included, there is nothing to buy.")
        )
        return
    st = await billing.standing(message.from_user.id) if message.from_user else None
    await message.answer(plans_text(billing.catalog, st), reply_markup=plans_keyboard(billing.catalog, st))


async def buy(query: CallbackQuery, callback_data: BillingCb, ctx: BotContext, user: User | None) -> None:
    billing = ctx.engine.billing
    if user is None:
        await query.answer(_("Please send /start to the bot first."), show_alert=True)
        return
    try:
        invoice = billing.invoice(callback_data.plan, query.from_user.id)
    except BillingError:
        await query.answer(
            _("This plan is no longer offered. Send /subscribe to see the plans."), show_alert=True
        )
        return
    bot = query.bot
    assert bot is not None
    title = _(invoice.plan.title)[:32]
    description = _(invoice.plan.description)[:255]
    prices = [LabeledPrice(label=title, amount=invoice.stars)]
    await query.answer()
    if invoice.subscription_period is not None:
        link = await bot.create_invoice_link(
            title=title,
            description=description,
            payload=invoice.payload,
            currency=CURRENCY,
            prices=prices,
            subscription_period=invoice.subscription_period,
        )
        text = _(
            "⭐ <b>{plan}</b>: {description}\nTelegram renews it every 30 days; cancel any time."
        ).format(plan=esc(title), description=esc(description))
        await bot.send_message(query.from_user.id, text, reply_markup=pay_keyboard(link, invoice.stars))
    else:
        await bot.send_invoice(
            chat_id=query.from_user.id,
            title=title,
            description=description,
            payload=invoice.payload,
            currency=CURRENCY,
            prices=prices,
        )


async def pre_checkout(query: PreCheckoutQuery, ctx: BotContext) -> None:
    billing = ctx.engine.billing
    try:
        refusal = await asyncio.wait_for(
            billing.check_checkout(
                query.from_user.id, query.currency, query.total_amount, query.invoice_payload
            ),
            CHECKOUT_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        logger.error("pre-checkout {} not validated in time", query.id)
        await query.answer(ok=False, error_message=_("Please try again in a minute."))
        return
    if refusal is None:
        await query.answer(ok=True)
        return
    await query.answer(ok=False, error_message=checkout_error(refusal))


async def paid(message: Message, ctx: BotContext) -> None:
    payment = message.successful_payment
    if payment is None or message.from_user is None:
        return
    await ctx.engine.billing.record_payment(
        message.from_user.id,
        currency=payment.currency,
        total_amount=payment.total_amount,
        invoice_payload=payment.invoice_payload,
        charge_id=payment.telegram_payment_charge_id,
        provider_charge_id=payment.provider_payment_charge_id or None,
        is_recurring=bool(payment.is_recurring),
        is_first_recurring=bool(payment.is_first_recurring),
        subscription_expiration_date=payment.subscription_expiration_date,
    )


async def refunded(message: Message, ctx: BotContext) -> None:
    """Telegram's notice of a refund (ours, or one made elsewhere): revoke the period (idempotent)."""
    refund = message.refunded_payment
    if refund is not None:
        await ctx.engine.billing.refund(refund.telegram_payment_charge_id, "telegram")


async def subscription_changed(update: BotSubscriptionUpdated, ctx: BotContext) -> None:
    await ctx.engine.billing.renewal_changed(update.user.id, update.invoice_payload, update.state)


async def refund(message: Message, command: CommandObject, ctx: BotContext) -> None:
    sender = message.from_user.id if message.from_user else None  # an admin (bot.admin_gate)
    args = (command.args or "").split()
    if len(args) != 2:
        await message.answer(_("Usage: /refund &lt;user id or @username&gt; &lt;charge id&gt;"))
        return
    target = await ctx.subscribers.find(args[0])
    billing = ctx.engine.billing
    payment = await billing.payment(args[1])
    if target is None or payment is None or payment.user_id != target.id:
        await message.answer(_("No payment with that charge id for that user."))
        return
    bot = message.bot
    assert bot is not None and sender is not None
    try:
        await bot.refund_star_payment(user_id=target.telegram_id, telegram_payment_charge_id=args[1])
    except TelegramBadRequest as exc:
        if "CHARGE_ALREADY_REFUNDED" not in exc.message:
            await message.answer(_("Telegram refused the refund: {error}").format(error=esc(exc.message)))
            return
    outcome = await billing.refund(args[1], actor_for(sender))
    if outcome.is_recurring:
        with suppress(TelegramAPIError):  # stop Telegram from charging this subscription again
            await bot.edit_user_star_subscription(target.telegram_id, args[1], is_canceled=True)
    if outcome.already:
        await message.answer(_("This payment was already refunded."))
        return
    await message.answer(
        _("Refunded {amount} ⭐ to {user}; their plan is now <b>{plan}</b>.").format(
            amount=payment.amount,
            user=target.telegram_id,
            plan=esc(outcome.standing.plan.key if outcome.standing else "?"),
        )
    )


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="billing")
    router.message.register(subscribe, Command("subscribe", "plans"), F.chat.type == "private")
    router.callback_query.register(buy, BillingCb.filter(F.action == "buy"))
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(paid, F.successful_payment)
    router.message.register(refunded, F.refunded_payment)
    router.subscription.register(subscription_changed)
    router.message.register(refund, Command("refund"))
    return router
