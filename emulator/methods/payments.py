"""sendInvoice, createInvoiceLink, answerPreCheckoutQuery, refundStarPayment, editUserStarSubscription."""

from __future__ import annotations

import re
import secrets
from typing import Any

from emulator.errors import bad_request
from emulator.keyboards import first_button_is_pay
from emulator.methods.base import Call, method
from emulator.methods.messages import markup_for, send
from emulator.payments import (
    SUBSCRIPTION_PERIOD,
    Invoice,
    answer_checkout,
    edit_subscription,
    payments_of,
    refund,
)

MAX_SUBSCRIPTION_STARS = 10000


def _prices(call: Call) -> list[dict[str, Any]]:
    raw = call.params.json_value("prices", "prices")
    if not isinstance(raw, list):
        raise bad_request("Expected an Array of labeled prices")
    if not raw:
        raise bad_request("There must be at least one price")
    prices: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise bad_request("Can't parse labeled price: LabeledPrice must be an Object")
        label, amount = item.get("label"), item.get("amount")
        if not isinstance(label, str) or not label:
            raise bad_request("Can't parse labeled price: LabeledPrice label must be non-empty")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise bad_request('Can\'t parse labeled price: Field "amount" must be of type Number')
        prices.append({"label": label, "amount": amount})
    return prices


def parse_invoice(call: Call, *, link: bool) -> Invoice:
    p = call.params
    title, description, payload = (
        p.string("title") or "",
        p.string("description") or "",
        p.string("payload") or "",
    )
    currency = (p.string("currency") or "").upper()
    if not 1 <= len(title) <= 32:
        raise bad_request("INVOICE_TITLE_INVALID")
    if not 1 <= len(description) <= 255:
        raise bad_request("INVOICE_DESCRIPTION_INVALID")
    if not 1 <= len(payload.encode("utf-8")) <= 128:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise bad_request("CURRENCY_INVALID")
    prices = _prices(call)
    total = sum(price["amount"] for price in prices)
    stars = currency == "XTR"
    if stars and (p.has("provider_token") or len(prices) != 1):
        raise bad_request("STARS_INVOICE_INVALID")
    if not stars and not p.has("provider_token"):
        raise bad_request("PAYMENT_PROVIDER_INVALID")
    if total <= 0:
        raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    period = p.integer("subscription_period") if link else None
    if p.has("subscription_period") and link:
        if period != SUBSCRIPTION_PERIOD or not stars:
            raise bad_request("SUBSCRIPTION_PERIOD_INVALID")
        if total > MAX_SUBSCRIPTION_STARS:
            raise bad_request("SUBSCRIPTION_PRICE_INVALID")
    return Invoice(title, description, payload, currency, total, period)


@method("sendInvoice")
async def send_invoice(call: Call) -> Any:
    chat = call.core.resolve_chat(call.bot, call.params.raw("chat_id"), for_send=True)
    invoice = parse_invoice(call, link=False)
    markup = markup_for(call, chat)
    if markup is None:
        label = (
            f"Pay ⭐️{invoice.amount}"
            if invoice.currency == "XTR"
            else f"Pay {invoice.currency} {invoice.amount}"
        )
        markup = {"inline_keyboard": [[{"text": label, "pay": True}]]}
    elif not first_button_is_pay(markup):
        raise bad_request("REPLY_MARKUP_BUY_EMPTY")
    fields: dict[str, Any] = {
        "invoice": {
            "title": invoice.title,
            "description": invoice.description,
            "start_parameter": call.params.string("start_parameter") or "",
            "currency": invoice.currency,
            "total_amount": invoice.amount,
        },
        "reply_markup": markup,
    }
    message = send(call, chat, fields)
    payments_of(call.bot).invoices[(chat.id, message["message_id"])] = invoice
    return message


@method("createInvoiceLink")
async def create_invoice_link(call: Call) -> Any:
    invoice = parse_invoice(call, link=True)
    slug = secrets.token_urlsafe(12)
    payments_of(call.bot).links[slug] = invoice
    return f"{call.core.base_url}/_emulator/invoice/${slug}"


@method("answerPreCheckoutQuery")
async def answer_pre_checkout_query(call: Call) -> Any:
    p = call.params
    answer_checkout(
        call.core, call.bot, p.string("pre_checkout_query_id") or "", p.flag("ok"), p.string("error_message")
    )
    return True


@method("refundStarPayment")
async def refund_star_payment(call: Call) -> Any:
    p = call.params
    refund(call.core, call.bot, p.integer("user_id", 0) or 0, p.string("telegram_payment_charge_id") or "")
    return True


@method("editUserStarSubscription")
async def edit_user_star_subscription(call: Call) -> Any:
    p = call.params
    edit_subscription(
        call.bot,
        p.integer("user_id", 0) or 0,
        p.string("telegram_payment_charge_id") or "",
        p.flag("is_canceled"),
    )
    return True
