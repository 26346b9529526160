"""A subscriber's own positions: /positions, and Close / Close 50 % / Stop → entry.

The buttons are under a filled signal's message (acting on every position that approval opened:
one per target on a hedging account) and under /positions (one row per position). Closing asks
to confirm first; Stop → entry acts at once. Every action goes through the engine
(``UpdateService.subscriber_update``): stored once per position, then applied exactly once by
the ``ChangeService``; the outcome comes as a reply to the signal message (``bot.notifier``).

A double tap on *Yes, close* is the same request (its key is the confirmation message), a tap
while an earlier change is still under way is answered "still being carried out", and a tap on a
closed position or on somebody else's gets a clear answer; none of them reaches the broker.

Admins keep the command layer's /positions (every account); ``/positions mine`` shows their own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

from aiogram import F, Router
from aiogram.filters import Command, Filter
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.admin_gate import MINE, own_positions_args
from bot.callbacks import CLOSE_HALF, CONTROL_NAMES, NO, STOP_TO_ENTRY, PositionCb, PositionConfirmCb
from bot.context import BotContext
from bot.keyboards import close_confirm_keyboard, positions_keyboard
from bot.render import esc, price, side_label, signed_money
from bot.render_trades import change_reason
from bot.replies import edit_or_keep
from engine.accounts.subscribers import STATUS_ACTIVE
from engine.brokers.base import BrokerPosition
from engine.management.controls import ControlOutcome, OwnPosition, Target, Verdict
from engine.store.models import User

MAX_LISTED = 10  # positions shown with buttons by /positions
MAX_COUNTED = 500


class OwnPositions(Filter):
    """A private /positions that means the sender's own: any non-admin, or an admin's ``mine``."""

    async def __call__(self, message: Message, ctx: BotContext) -> bool:
        if message.chat.type != "private" or message.from_user is None:
            return False
        if ctx.is_admin(message.from_user.id):
            return own_positions_args((message.text or "").split(maxsplit=1)[1:]) == MINE
        return True  # anything else a non-admin adds was refused by the admin gate


def target_of(ref: str) -> Target | None:
    if ref.startswith("p") and ref[1:].isdigit():
        return Target(position_id=int(ref[1:]))
    if ref.startswith("d") and 1 < len(ref) <= 37:
        return Target(decision_id=ref[1:])
    return None


# ---------------------------------------------------------------- texts


def verdict_text(outcome: ControlOutcome, control: str) -> tuple[str, bool]:
    """(answer to the tap, as an alert) for an engine verdict."""
    v = outcome.verdict
    if v is Verdict.ACCEPTED:
        if control == "stop_to_entry":
            return _("🔒 Moving the stop to entry… The result follows as a reply to the signal."), False
        return _("⏳ Closing… The result follows as a reply to the signal."), False
    if v is Verdict.REPLAYED:
        if outcome.state == "refused":
            return _(
                "This request was refused: {reason}. Tap the button under the position to try again."
            ).format(reason=change_reason(outcome.reason_code, outcome.reason)), True
        if outcome.state == "applied":
            return _("Already done: this request was carried out."), True
        return _("Already under way: the result follows as a reply to the signal."), True
    if v is Verdict.NOT_YOURS:
        return _("This button is not yours."), True
    if v is Verdict.CLOSED:
        return _("This position is already closed."), True
    if v is Verdict.BUSY:
        return _("An earlier change to this position is still being carried out. Wait for its result."), True
    if v is Verdict.AT_ENTRY:
        return _("The stop is already at the entry."), True
    if v is Verdict.MANUAL:
        return _("This position was opened in the terminal, not from a signal: manage it there."), True
    return _("This position is no longer available."), True


def _lots(positions: Sequence[OwnPosition]) -> str:
    return price(sum((p.volume for p in positions), Decimal(0)))


def confirm_question(action: str, positions: Sequence[OwnPosition]) -> str:
    first = positions[0]
    values = {
        "side": side_label(first.side),
        "symbol": esc(first.symbol),
        "volume": _lots(positions),
    }
    if action == CLOSE_HALF:
        return _("⚠️ Close 50 % of your {side} {symbol} position ({volume} lots) at market?").format(**values)
    return _("⚠️ Close your {side} {symbol} position ({volume} lots) at market?").format(**values)


def positions_text(
    positions: Sequence[OwnPosition],
    live: dict[tuple[int, str], BrokerPosition],
    currency: dict[int, str],
    unavailable: Sequence[str],
    total: int,
) -> str:
    if not positions:
        return _("You have no open positions.")
    lines = [_("<b>Your open positions ({count})</b>").format(count=total)]
    for n, p in enumerate(positions, 1):
        now = live.get((p.account_id, p.ticket))
        pnl = signed_money(now.profit, currency.get(p.account_id, "")) if now is not None else "—"
        line = _("{n}. {side} {volume} {symbol} at {price} · SL {sl} · TP {tp} · P/L {pnl}").format(
            n=n,
            side=side_label(p.side),
            volume=price(p.volume),
            symbol=esc(p.symbol),
            price=price(p.open_price),
            sl=price(p.sl),
            tp=price(p.tp),
            pnl=pnl,
        )
        if p.signal_id is None:
            line += " · " + _("opened in the terminal")
        elif p.status != "open":
            line += " · " + _("closing…")
        lines.append(line)
    if total > len(positions):
        lines.append(_("…and {count} more.").format(count=total - len(positions)))
    for reason in unavailable:
        lines.append(_("The broker is unavailable right now: {reason}").format(reason=esc(reason)))
    return "\n".join(lines)


# ---------------------------------------------------------------- handlers


async def show(message: Message, ctx: BotContext, user: User | None) -> None:
    if user is None or user.status != STATUS_ACTIVE or not ctx.subscribers.has_consented(user):
        await message.answer(_("Please send /start and accept the risk disclaimer first."))
        return
    found = await ctx.engine.updates.subscriber_positions(user.telegram_id, limit=MAX_COUNTED)
    shown = found[:MAX_LISTED]
    live: dict[tuple[int, str], BrokerPosition] = {}
    currency: dict[int, str] = {}
    unavailable: list[str] = []
    wanted = {p.account_id for p in shown}
    for account, _owner in await ctx.accounts.list_accounts(user.telegram_id, include_inactive=True):
        if account.id not in wanted:
            continue
        view = await ctx.accounts.view(account)
        currency[account.id] = view.snapshot.currency if view.snapshot is not None else account.currency
        if view.error is not None:
            unavailable.append(view.error)
        for bp in view.positions:
            live[(account.id, bp.ticket)] = bp
    text = positions_text(shown, live, currency, unavailable, len(found))
    controlled = [p.id for p in shown if p.signal_id is not None]
    await message.answer(text, reply_markup=positions_keyboard(controlled) if controlled else None)


async def tap(query: CallbackQuery, callback_data: PositionCb, ctx: BotContext) -> None:
    target = target_of(callback_data.ref)
    control = CONTROL_NAMES.get(callback_data.action)
    message = query.message if isinstance(query.message, Message) else None
    if target is None or control is None or message is None:
        await query.answer(_("This position is no longer available."), show_alert=True)
        return
    updates = ctx.engine.updates
    if callback_data.action == STOP_TO_ENTRY:
        # Acts at once; each tap has its own key, and the engine refuses a second one while the
        # first is under way (busy) or once the stop is there (at entry).
        outcome = await updates.subscriber_update(query.from_user.id, target, control, f"tap:{query.id}")
        text, alert = verdict_text(outcome, control)
        await query.answer(text, show_alert=alert)
        return
    check = await updates.subscriber_target(query.from_user.id, target)
    if check.verdict is not Verdict.ACCEPTED:
        text, alert = verdict_text(check, control)
        await query.answer(text, show_alert=alert)
        return
    await query.answer(_("Please confirm below."))
    await message.reply(
        confirm_question(callback_data.action, check.positions),
        reply_markup=close_confirm_keyboard(callback_data.action, callback_data.ref),
    )


async def confirmed(query: CallbackQuery, callback_data: PositionConfirmCb, ctx: BotContext) -> None:
    message = query.message if isinstance(query.message, Message) else None
    target = target_of(callback_data.ref)
    if callback_data.action == NO:
        await query.answer(_("Cancelled."))
        if message is not None:
            await edit_or_keep(message, _("Cancelled: nothing was closed."))
        return
    control = CONTROL_NAMES.get(callback_data.action)
    if message is None or target is None or control is None or control == "stop_to_entry":
        await query.answer(_("This position is no longer available."), show_alert=True)
        return
    if time.time() - callback_data.issued > ctx.config.close_confirm_seconds:
        await query.answer(
            _("This confirmation has expired. Tap Close under the position again."), show_alert=True
        )
        return
    # The confirmation message is the request's identity: tapping it again is the same request.
    key = f"confirm:{message.chat.id}:{message.message_id}"
    outcome = await ctx.engine.updates.subscriber_update(query.from_user.id, target, control, key)
    text, alert = verdict_text(outcome, control)
    await query.answer(text, show_alert=alert)
    if outcome.verdict is Verdict.ACCEPTED:
        await edit_or_keep(message, text)
    elif outcome.verdict in (Verdict.CLOSED, Verdict.NOT_FOUND):
        await edit_or_keep(message, _("Nothing to close: the position is already closed."))


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="positions")
    router.message.register(show, Command("positions"), F.chat.type == "private", OwnPositions())
    router.callback_query.register(tap, PositionCb.filter())
    router.callback_query.register(confirmed, PositionConfirmCb.filter())
    return router
