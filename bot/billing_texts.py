"""Texts and keyboards of billing, auto-execution and referrals (HTML, in the current locale).

Plan titles and descriptions come from the plans file in English and are looked up in the
catalogs (``locales/*/LC_MESSAGES/billing.po`` carries the shipped plans'), so an operator's own
plan names show as written when no translation exists.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot.render import esc, price, utc_time
from engine.billing.entitlements import ACTIVE, GRACE, Standing
from engine.billing.invoices import CheckoutRefusal
from engine.billing.plans import AUTO_EXECUTE, EXECUTE_MT5, EXECUTE_PAPER, SIGNALS, Plan, PlanCatalog


class BillingCb(CallbackData, prefix="bill"):
    action: str  # "buy"
    plan: str


class AutoCb(CallbackData, prefix="auto"):
    action: str  # "close" | "on" | "off"
    position_id: int = 0


def plan_title(plan: Plan | str, catalog: PlanCatalog | None = None) -> str:
    if isinstance(plan, str):
        found = catalog.get(plan) if catalog is not None else None
        return esc(_(found.title)) if found is not None else esc(plan)
    return esc(_(plan.title))


def stars(amount: int | Decimal | str) -> str:
    return f"{price(str(amount))} ⭐"


def when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return utc_time(moment)


def entitlement_lines(plan: Plan) -> list[str]:
    labels = {
        SIGNALS: _("signals in this chat"),
        EXECUTE_PAPER: _("execution on a paper account"),
        EXECUTE_MT5: _("execution on your MetaTrader 5 account"),
        AUTO_EXECUTE: _("auto-execution with your own risk settings (/auto)"),
    }
    return ["  • " + labels[e] for e in (SIGNALS, EXECUTE_PAPER, EXECUTE_MT5, AUTO_EXECUTE) if plan.allows(e)]


def standing_line(st: Standing) -> str:
    title = plan_title(st.plan)
    if st.state in (ACTIVE, GRACE) and st.expires_at is not None:
        if st.renewing:
            return _("Your plan: <b>{plan}</b>, renews automatically on {date}.").format(
                plan=title, date=when(st.expires_at)
            )
        return _("Your plan: <b>{plan}</b>, until {date}.").format(plan=title, date=when(st.expires_at))
    return _("Your plan: <b>{plan}</b>.").format(plan=title)


def plans_text(catalog: PlanCatalog, st: Standing | None) -> str:
    parts = [_("⭐ <b>Plans</b>")]
    if st is not None:
        parts.append(standing_line(st))
    for plan in catalog.plans:
        if plan.is_free:
            head = _("<b>{plan}</b>: free").format(plan=plan_title(plan))
        elif plan.recurring:
            head = _("<b>{plan}</b>: {price} a month, renews automatically").format(
                plan=plan_title(plan), price=stars(plan.price_stars)
            )
        else:
            head = _("<b>{plan}</b>: {price} for {days} days").format(
                plan=plan_title(plan), price=stars(plan.price_stars), days=plan.period_days
            )
        parts.append("\n".join([head, esc(_(plan.description)), *entitlement_lines(plan)]))
    parts.append(
        _("Payments are in Telegram Stars. Buying another plan replaces the current one from today.")
    )
    return "\n\n".join(parts)


def plans_keyboard(catalog: PlanCatalog, st: Standing | None) -> InlineKeyboardMarkup:
    rows = []
    for plan in catalog.paid:
        if st is not None and st.state == ACTIVE and st.plan.rank > plan.rank:
            continue  # a lower plan cannot be bought while a higher one runs
        label = _("Buy {plan} for {price}").format(plan=_(plan.title), price=stars(plan.price_stars))
        if st is not None and st.state in (ACTIVE, GRACE) and st.plan.key == plan.key:
            label = _("Extend {plan} for {price}").format(plan=_(plan.title), price=stars(plan.price_stars))
        rows.append(
            [InlineKeyboardButton(text=label, callback_data=BillingCb(action="buy", plan=plan.key).pack())]
        )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def pay_keyboard(link: str, amount: int) -> InlineKeyboardMarkup:
    label = _("Pay {price}").format(price=stars(amount))
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=label, url=link)]])


def checkout_error(refusal: CheckoutRefusal) -> str:
    texts = {
        CheckoutRefusal.BAD_PAYLOAD: _("This invoice is not valid. Send /subscribe for a new one."),
        CheckoutRefusal.UNKNOWN_PLAN: _("This plan is no longer offered. Send /subscribe to see the plans."),
        CheckoutRefusal.FREE_PLAN: _("This plan is free: there is nothing to pay."),
        CheckoutRefusal.WRONG_CURRENCY: _("This invoice is not valid. Send /subscribe for a new one."),
        CheckoutRefusal.PRICE_CHANGED: _(
            "The price of this plan has changed. Send /subscribe for a new invoice."
        ),
        CheckoutRefusal.WRONG_AMOUNT: _(
            "The amount does not match the plan. Send /subscribe for a new invoice."
        ),
        CheckoutRefusal.NOT_YOURS: _(
            "This invoice was issued to someone else. Send /subscribe for your own."
        ),
        CheckoutRefusal.UNKNOWN_USER: _("Please send /start to the bot first."),
        CheckoutRefusal.BANNED: _("Sorry, your account cannot buy plans."),
        CheckoutRefusal.DOWNGRADE: _("You have a higher plan running; it cannot be replaced by a lower one."),
    }
    return texts[refusal]


def receipt_text(p: dict[str, Any], catalog: PlanCatalog) -> str:
    if p.get("is_recurring") and not p.get("is_first_recurring"):
        head = _("🔁 Your <b>{plan}</b> plan was renewed: {price}.")
    else:
        head = _("✅ Payment received: {price} for <b>{plan}</b>.")
    text = head.format(plan=plan_title(str(p.get("plan")), catalog), price=stars(str(p.get("amount"))))
    text += "\n" + _("Your plan is active until {date}.").format(date=when(p.get("expires_at")))
    return text + "\n" + _("Receipt no. {number}. Thank you!").format(number=p.get("payment_id"))


def refund_text(p: dict[str, Any], catalog: PlanCatalog) -> str:
    text = _("↩️ Your payment of {price} for <b>{plan}</b> was refunded.").format(
        price=stars(str(p.get("amount"))), plan=plan_title(str(p.get("plan")), catalog)
    )
    if p.get("expires_at"):
        return text + "\n" + _("Your plan is active until {date}.").format(date=when(p.get("expires_at")))
    return (
        text
        + "\n"
        + _("You are now on the <b>{plan}</b> plan.").format(plan=plan_title(str(p.get("now_plan")), catalog))
    )


def reminder_text(p: dict[str, Any], catalog: PlanCatalog) -> str:
    plan = plan_title(str(p.get("plan")), catalog)
    if p.get("renewing"):
        return _("🔔 Your <b>{plan}</b> plan renews on {date}; Telegram charges your Stars then.").format(
            plan=plan, date=when(p.get("expires_at"))
        )
    return _("🔔 Your <b>{plan}</b> plan ends on {date}. Send /subscribe to extend it.").format(
        plan=plan, date=when(p.get("expires_at"))
    )


def expired_text(p: dict[str, Any], catalog: PlanCatalog) -> str:
    return _(
        "⌛ Your <b>{plan}</b> plan has ended; you are now on the <b>{free}</b> plan. "
        "Send /subscribe to get it back."
    ).format(
        plan=plan_title(str(p.get("plan")), catalog), free=plan_title(str(p.get("default_plan")), catalog)
    )


def renewal_text(p: dict[str, Any], catalog: PlanCatalog) -> str | None:
    plan, date = plan_title(str(p.get("plan")), catalog), when(p.get("expires_at"))
    state = p.get("state")
    if state == "canceled":
        return _("Your <b>{plan}</b> subscription will not renew; it stays active until {date}.").format(
            plan=plan, date=date
        )
    if state == "failed":
        return _(
            "❗ Telegram could not renew your <b>{plan}</b> subscription. It stays active until {date}; "
            "send /subscribe to pay again."
        ).format(plan=plan, date=date)
    if state == "active":
        return _("Your <b>{plan}</b> subscription renews automatically again.").format(plan=plan)
    return None
