"""What the bot sells: an invoice for one plan, and the payload that names it.

The payload (``tb1:<plan>:<stars>:<days>:<buyer's Telegram id>``, at most 128 bytes as Telegram
requires) travels with the invoice and comes back in the ``pre_checkout_query`` and the
``successful_payment``, so the bot can tell which plan was paid, at which price and by whom,
without keeping invoices of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.billing.plans import Plan

PAYLOAD_PREFIX = "tb1"


@dataclass(frozen=True, slots=True)
class InvoicePayload:
    plan: str
    stars: int
    days: int
    telegram_id: int

    def pack(self) -> str:
        return f"{PAYLOAD_PREFIX}:{self.plan}:{self.stars}:{self.days}:{self.telegram_id}"

    @classmethod
    def parse(cls, text: str) -> InvoicePayload | None:
        parts = text.split(":")
        if len(parts) != 5 or parts[0] != PAYLOAD_PREFIX or not all(p.isdigit() for p in parts[2:]):
            return None
        return cls(parts[1], int(parts[2]), int(parts[3]), int(parts[4]))


@dataclass(frozen=True, slots=True)
class Invoice:
    plan: Plan
    payload: str
    stars: int
    subscription_period: int | None  # set: a subscription link (createInvoiceLink); None: sendInvoice


class CheckoutRefusal(StrEnum):
    BAD_PAYLOAD = "bad_payload"
    UNKNOWN_PLAN = "unknown_plan"
    FREE_PLAN = "free_plan"
    WRONG_CURRENCY = "wrong_currency"
    PRICE_CHANGED = "price_changed"  # the invoice's price is not the plan's price now
    WRONG_AMOUNT = "wrong_amount"
    NOT_YOURS = "not_yours"  # an invoice issued to someone else
    UNKNOWN_USER = "unknown_user"
    BANNED = "banned"
    DOWNGRADE = "downgrade"  # a lower plan while a higher one runs


class BillingError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
