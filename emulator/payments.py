"""Telegram Stars payments: invoices and links, pre-checkout queries with a deadline, charges,
subscriptions, refunds. The bot-facing methods live in ``emulator.methods.payments``; the user side
(paying, renewing) is driven by the control API."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from emulator.core import EmulatorCore
from emulator.errors import QUERY_TOO_OLD, ControlError, bad_request
from emulator.state import BotState, Chat, User

SUBSCRIPTION_PERIOD = 2592000


@dataclass
class Invoice:
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    subscription_period: int | None = None


@dataclass
class Checkout:
    id: str
    user_id: int
    invoice: Invoice
    chat_id: int
    created: float
    outcome: asyncio.Future[dict[str, Any]]
    answered: bool = False


@dataclass
class Charge:
    id: str
    user_id: int
    invoice: Invoice
    provider_charge_id: str
    expires: int | None = None
    refunded: bool = False
    canceled: bool = False


@dataclass
class BotPayments:
    links: dict[str, Invoice] = field(default_factory=dict)
    invoices: dict[tuple[int, int], Invoice] = field(default_factory=dict)
    checkouts: dict[str, Checkout] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    counter: int = 0


def payments_of(bot: BotState) -> BotPayments:
    if bot.payments is None:
        bot.payments = BotPayments()
    state: BotPayments = bot.payments
    return state


def find_link(bot: BotState, link: str) -> Invoice | None:
    slug = link.rstrip("/").rsplit("/", 1)[-1].lstrip("$")
    return payments_of(bot).links.get(slug)


def start_checkout(core: EmulatorCore, bot: BotState, user: User, invoice: Invoice, chat_id: int) -> Checkout:
    """The user confirmed the payment form: the bot gets a ``pre_checkout_query``."""
    checkout = Checkout(
        id=str(secrets.randbits(63)),
        user_id=user.id,
        invoice=invoice,
        chat_id=chat_id,
        created=core.clock(),
        outcome=asyncio.get_running_loop().create_future(),
    )
    payments_of(bot).checkouts[checkout.id] = checkout
    core.push_update(
        bot,
        "pre_checkout_query",
        {
            "id": checkout.id,
            "from": user.json(),
            "currency": invoice.currency,
            "total_amount": invoice.amount,
            "invoice_payload": invoice.payload,
        },
    )
    return checkout


def answer_checkout(
    core: EmulatorCore, bot: BotState, query_id: str, ok: bool, error_message: str | None
) -> None:
    if not ok and not error_message:
        raise bad_request('Parameter "error_message" is required')
    checkout = payments_of(bot).checkouts.get(query_id)
    if checkout is None or checkout.answered:
        raise bad_request(QUERY_TOO_OLD)
    if core.clock() - checkout.created > core.config.pre_checkout_timeout:
        checkout.answered = True
        _settle(checkout, {"status": "expired", "pre_checkout_query_id": checkout.id})
        raise bad_request(QUERY_TOO_OLD)
    checkout.answered = True
    if not ok:
        _settle(
            checkout,
            {"status": "declined", "pre_checkout_query_id": checkout.id, "error_message": error_message},
        )
        return
    charge = _charge(core, bot, checkout.user_id, checkout.invoice)
    chat = core.world.chats[checkout.chat_id]
    _successful_payment(core, bot, chat, charge, first=True)
    outcome: dict[str, Any] = {
        "status": "paid",
        "pre_checkout_query_id": checkout.id,
        "telegram_payment_charge_id": charge.id,
    }
    if charge.expires is not None:
        outcome["subscription_expiration_date"] = charge.expires
    _settle(checkout, outcome)


def expire_checkout(checkout: Checkout) -> dict[str, Any]:
    """The deadline passed without an answer: later answers get 400."""
    checkout.answered = True
    _settle(checkout, {"status": "expired", "pre_checkout_query_id": checkout.id})
    return checkout.outcome.result()


def _settle(checkout: Checkout, outcome: dict[str, Any]) -> None:
    if not checkout.outcome.done():
        checkout.outcome.set_result(outcome)


def _charge(core: EmulatorCore, bot: BotState, user_id: int, invoice: Invoice) -> Charge:
    state = payments_of(bot)
    state.counter += 1
    charge = Charge(
        id="stx" + secrets.token_urlsafe(30),
        user_id=user_id,
        invoice=invoice,
        provider_charge_id=f"{user_id}_{state.counter}",
    )
    if invoice.subscription_period:
        charge.expires = core.now() + invoice.subscription_period
    state.charges[charge.id] = charge
    return charge


def _successful_payment(
    core: EmulatorCore, bot: BotState, chat: Chat, charge: Charge, *, first: bool
) -> None:
    invoice = charge.invoice
    payment: dict[str, Any] = {
        "currency": invoice.currency,
        "total_amount": invoice.amount,
        "invoice_payload": invoice.payload,
    }
    if charge.expires is not None:
        payment.update(
            subscription_expiration_date=charge.expires, is_recurring=True, is_first_recurring=first
        )
    payment.update(telegram_payment_charge_id=charge.id, provider_payment_charge_id=charge.provider_charge_id)
    user = core.world.users[charge.user_id]
    stored = core.store_user_message(bot, user, chat, {"successful_payment": payment})
    core.push_update(bot, "message", stored.view())


def renew(core: EmulatorCore, bot: BotState, user_id: int, charge_id: str) -> Charge:
    """A subscription period ends and Telegram charges the user again."""
    charge = payments_of(bot).charges.get(charge_id)
    if charge is None or charge.user_id != user_id or charge.expires is None:
        raise ControlError(404, "no subscription charge with that id for that user")
    if charge.canceled or charge.refunded:
        raise ControlError(409, "the subscription is canceled")
    renewed = _charge(core, bot, user_id, charge.invoice)
    renewed.expires = charge.expires + (charge.invoice.subscription_period or SUBSCRIPTION_PERIOD)
    charge.canceled = True  # the old charge's period is over; the new one carries the subscription
    _successful_payment(core, bot, core.world.chats[user_id], renewed, first=False)
    return renewed


def refund(core: EmulatorCore, bot: BotState, user_id: int, charge_id: str) -> None:
    charge = payments_of(bot).charges.get(charge_id)
    if charge is None or charge.user_id != user_id:
        raise bad_request("CHARGE_NOT_FOUND")
    if charge.refunded:
        raise bad_request("CHARGE_ALREADY_REFUNDED")
    charge.refunded = True
    invoice = charge.invoice
    refunded = {
        "currency": invoice.currency,
        "total_amount": invoice.amount,
        "invoice_payload": invoice.payload,
        "telegram_payment_charge_id": charge.id,
        "provider_payment_charge_id": charge.provider_charge_id,
    }
    user = core.world.users[user_id]
    stored = core.store_user_message(bot, user, core.world.chats[user_id], {"refunded_payment": refunded})
    core.push_update(bot, "message", stored.view())


def edit_subscription(bot: BotState, user_id: int, charge_id: str, canceled: bool) -> None:
    charge = payments_of(bot).charges.get(charge_id)
    if charge is None or charge.user_id != user_id:
        raise bad_request("CHARGE_NOT_FOUND")
    if charge.expires is None:
        raise bad_request("SUBSCRIPTION_NOT_FOUND")
    charge.canceled = canceled
