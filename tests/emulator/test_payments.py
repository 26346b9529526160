"""Telegram Stars: invoices, invoice links, pre-checkout deadline, successful payments, refunds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import LabeledPrice, Update

from emulator.control import EmulatorClient, EmulatorControlError
from tests.support.emulator_world import CheckedClient, EmulatorFactory, make_bot

PRICE = [LabeledPrice(label="Pro month", amount=250)]


async def next_update(bot: Bot, offset: int = 0) -> Update:
    [update] = await bot.get_updates(offset=offset, timeout=3)
    return update


async def pay_and_answer(
    bot: Bot, ctl: EmulatorClient, user_id: int, ok: bool = True, **target: Any
) -> tuple[dict[str, Any], Update]:
    """The user pays; the bot answers the pre-checkout query; returns the outcome and the next update."""
    paying = asyncio.create_task(ctl.pay(user_id, **target))
    update = await next_update(bot)
    query = update.pre_checkout_query
    assert query is not None and query.from_user.id == user_id
    await bot.answer_pre_checkout_query(query.id, ok=ok, error_message=None if ok else "Sold out")
    outcome = await paying
    if not ok:
        return outcome, update
    return outcome, await next_update(bot, offset=update.update_id + 1)


async def test_invoice_payment_and_refund(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    invoice = await bot.send_invoice(alice, "Pro", "Signals for a month", "plan:pro:1001", "XTR", PRICE)
    assert (
        invoice.invoice is not None
        and invoice.invoice.currency == "XTR"
        and invoice.invoice.total_amount == 250
    )
    assert invoice.reply_markup is not None and invoice.reply_markup.inline_keyboard[0][0].pay is True
    outcome, update = await pay_and_answer(bot, ctl, alice, chat_id=alice, message_id=invoice.message_id)
    assert outcome["status"] == "paid"
    message = update.message
    assert message is not None and message.successful_payment is not None
    payment = message.successful_payment
    assert (payment.currency, payment.total_amount, payment.invoice_payload) == ("XTR", 250, "plan:pro:1001")
    assert payment.telegram_payment_charge_id == outcome["telegram_payment_charge_id"]
    assert payment.subscription_expiration_date is None and payment.is_recurring is None

    assert await bot.refund_star_payment(alice, payment.telegram_payment_charge_id) is True
    [refunded] = await bot.get_updates(offset=update.update_id + 1)
    assert refunded.message is not None and refunded.message.refunded_payment is not None
    assert refunded.message.refunded_payment.telegram_payment_charge_id == payment.telegram_payment_charge_id
    with pytest.raises(TelegramBadRequest, match="Bad Request: CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(alice, payment.telegram_payment_charge_id)


async def test_refunds_must_name_a_charge_of_that_user(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    await ctl.add_user(2002, "Mallory")
    invoice = await bot.send_invoice(alice, "Pro", "Month", "p", "XTR", PRICE)
    outcome, _ = await pay_and_answer(bot, ctl, alice, message_id=invoice.message_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(2002, outcome["telegram_payment_charge_id"])
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(alice, "stxNoSuchCharge")


async def test_charge_ids_are_unique(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    invoice = await bot.send_invoice(alice, "Pro", "Month", "p", "XTR", PRICE)
    first, _ = await pay_and_answer(bot, ctl, alice, message_id=invoice.message_id)
    await bot.get_updates(offset=-1)
    updates = await bot.get_updates()
    await bot.get_updates(offset=updates[-1].update_id + 1)
    second, _ = await pay_and_answer(bot, ctl, alice, message_id=invoice.message_id)
    assert first["telegram_payment_charge_id"] != second["telegram_payment_charge_id"]


async def test_a_declined_checkout_charges_nothing(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    invoice = await bot.send_invoice(alice, "Pro", "Month", "p", "XTR", PRICE)
    outcome, update = await pay_and_answer(bot, ctl, alice, ok=False, message_id=invoice.message_id)
    assert outcome == {"status": "declined", "pre_checkout_query_id": outcome["pre_checkout_query_id"],
                       "error_message": "Sold out"}  # fmt: skip
    assert await bot.get_updates(offset=update.update_id + 1) == []
    with pytest.raises(TelegramBadRequest, match='Bad Request: parameter "error_message" is required'):
        await bot.answer_pre_checkout_query(outcome["pre_checkout_query_id"], ok=False)


async def test_a_late_pre_checkout_answer_is_too_old(make_emulator: EmulatorFactory) -> None:
    emulator = await make_emulator(pre_checkout_timeout=0.3)
    bot = make_bot(emulator.base_url)
    async with EmulatorClient(emulator.base_url) as ctl:
        try:
            await bot.get_me()
            await ctl.add_user(5, "Eve")
            invoice = await bot.send_invoice(5, "Pro", "Month", "p", "XTR", PRICE)
            outcome = await ctl.pay(5, message_id=invoice.message_id)
            assert outcome["status"] == "expired"
            [update] = await bot.get_updates()
            assert update.pre_checkout_query is not None
            with pytest.raises(TelegramBadRequest, match="query is too old"):
                await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
            assert await bot.get_updates(offset=update.update_id + 1) == []
        finally:
            await bot.session.close()


async def test_subscription_links_renewals_and_cancellation(bot: Bot, ctl: CheckedClient, alice: int) -> None:
    link = await bot.create_invoice_link(
        "Pro", "Monthly", "sub:pro", "XTR", PRICE, subscription_period=2592000
    )
    assert link.startswith(ctl.base_url)
    outcome, update = await pay_and_answer(bot, ctl, alice, link=link)
    payment = update.message.successful_payment if update.message else None
    assert payment is not None and payment.is_recurring is True and payment.is_first_recurring is True
    assert payment.subscription_expiration_date is not None
    assert payment.subscription_expiration_date == outcome["subscription_expiration_date"]
    renewed = await ctl.renew(alice, payment.telegram_payment_charge_id)
    [again] = await bot.get_updates(offset=update.update_id + 1)
    second = again.message.successful_payment if again.message else None
    assert second is not None and second.is_first_recurring is False
    assert second.telegram_payment_charge_id == renewed["telegram_payment_charge_id"]
    assert second.subscription_expiration_date == payment.subscription_expiration_date + 2592000
    assert await bot.edit_user_star_subscription(alice, second.telegram_payment_charge_id, is_canceled=True)
    with pytest.raises(EmulatorControlError, match="canceled"):
        await ctl.renew(alice, second.telegram_payment_charge_id)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (
            {"prices": [LabeledPrice(label="a", amount=1), LabeledPrice(label="b", amount=2)]},
            "STARS_INVOICE_INVALID",
        ),
        ({"provider_token": "tok"}, "STARS_INVOICE_INVALID"),
        ({"currency": "USD"}, "PAYMENT_PROVIDER_INVALID"),
        ({"prices": [LabeledPrice(label="a", amount=0)]}, "CURRENCY_TOTAL_AMOUNT_INVALID"),
        ({"payload": "x" * 129}, "INVOICE_PAYLOAD_INVALID"),
        ({"title": "x" * 33}, "INVOICE_TITLE_INVALID"),
        ({"prices": []}, "there must be at least one price"),
    ],
)
async def test_invalid_invoices(bot: Bot, alice: int, kwargs: dict[str, Any], error: str) -> None:
    args: dict[str, Any] = {
        "title": "Pro",
        "description": "Month",
        "payload": "p",
        "currency": "XTR",
        "prices": PRICE,
    }
    args.update(kwargs)
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_invoice(alice, **args)


async def test_subscription_rules(bot: Bot, alice: int) -> None:
    with pytest.raises(TelegramBadRequest, match="SUBSCRIPTION_PERIOD_INVALID"):
        await bot.create_invoice_link("Pro", "Weekly", "p", "XTR", PRICE, subscription_period=604800)
    with pytest.raises(TelegramBadRequest, match="SUBSCRIPTION_PRICE_INVALID"):
        big = [LabeledPrice(label="x", amount=10001)]
        await bot.create_invoice_link("Pro", "Monthly", "p", "XTR", big, subscription_period=2592000)
