"""/account: the subscriber's execution account, and linking or unlinking an MT5 login.

Linking is a short conversation (aiogram FSM): login, server, then password. The password
message is deleted as soon as it arrives, never kept in FSM storage, and checked by logging
in through the MT5 broker before anything is stored (encrypted).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from loguru import logger

from bot.callbacks import AccountCb
from bot.context import BotContext
from bot.keyboards import account_keyboard, cancel_keyboard
from bot.render import esc, money, price, side_label, signed_money
from bot.replies import edit_or_keep
from bot.status import pending_order_lines, trading_state_label
from engine.accounts.service import KIND_MT5, AccountError
from engine.accounts.subscribers import actor_for
from engine.observability.logs import register_secret
from engine.ops.views import Scope
from engine.store.models import User


class LinkMt5(StatesGroup):
    login = State()
    server = State()
    password = State()


_NOT_A_COMMAND = F.text & ~F.text.startswith("/")


def _error_text(error: AccountError) -> str:
    texts = {
        "login_failed": _("❌ Could not log in to MetaTrader 5: {reason}"),
        "bad_login": _("❌ The MT5 login is a number."),
        "bad_server": _("❌ The server name is missing or too long."),
        "bad_password": _("❌ The password is empty."),
        "no_secret_key": _("❌ Linking MT5 accounts is not available on this server."),
        "open_positions": _("❌ Close the open positions of this account first."),
        "not_linked": _("No MT5 account is linked."),
    }
    return texts.get(error.code, _("❌ {reason}")).format(reason=esc(error))


async def account_text(ctx: BotContext, telegram_id: int) -> tuple[str, str | None]:
    account = await ctx.accounts.account_of(telegram_id)
    if account is None:
        return _(
            "You have no execution account yet. Link your MetaTrader 5 account to receive signals."
        ), None
    if account.kind == KIND_MT5:
        lines = [
            _("<b>MT5 account {login}</b> · {server}").format(
                login=esc(account.login), server=esc(account.server)
            )
        ]
    else:
        lines = [_("<b>Paper account #{id}</b>").format(id=account.id)]
        if ctx.engine.paper_market.simulated:
            lines.append(_("⚠️ Simulated market: prices are a random walk, not a real market."))
    view = await ctx.accounts.view(account)
    if view.snapshot is None:
        lines.append(_("The broker is unavailable right now: {reason}").format(reason=esc(view.error or "?")))
        return "\n".join(lines), account.kind
    snap = view.snapshot
    lines.append(_("Balance: {amount}").format(amount=money(snap.balance, snap.currency)))
    lines.append(_("Equity: {amount}").format(amount=money(snap.equity, snap.currency)))
    lines.append(_("Open positions: {count}").format(count=len(view.positions)))
    for p in view.positions[:20]:
        lines.append(
            _("• {side} {volume} {symbol} at {price} · P&L {pnl}").format(
                side=side_label(p.side.value),
                volume=price(p.volume),
                symbol=esc(p.symbol),
                price=price(p.open_price),
                pnl=signed_money(p.profit, snap.currency),
            )
        )
    if ctx.engine.ops is not None:
        report = await ctx.engine.ops.positions(Scope.account(account.id), limit=20)
        if report.orders_total:
            lines.append(_("Pending orders: {count}").format(count=report.orders_total))
            lines.extend(pending_order_lines(report, with_owner=False))
    if account.trading_state != "active":
        lines.append(
            _("Trading on this account: {state}").format(state=trading_state_label(account.trading_state))
        )
    return "\n".join(lines), account.kind


def _needs_start(ctx: BotContext, user: User | None) -> bool:
    return user is None or user.status != "active" or not ctx.subscribers.has_consented(user)


async def show(message: Message, ctx: BotContext, user: User | None, state: FSMContext) -> None:
    await state.clear()
    if user is None or _needs_start(ctx, user):
        await message.answer(_("Please send /start and accept the risk disclaimer first."))
        return
    text, kind = await account_text(ctx, user.telegram_id)
    await message.answer(text, reply_markup=account_keyboard(kind))


async def cancel_command(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(_("Cancelled."))


async def account_button(
    query: CallbackQuery, callback_data: AccountCb, ctx: BotContext, user: User | None, state: FSMContext
) -> None:
    message = query.message if isinstance(query.message, Message) else None
    if user is None or _needs_start(ctx, user) or message is None:
        await query.answer(_("Please send /start and accept the risk disclaimer first."), show_alert=True)
        return
    action = callback_data.action
    if action == "cancel":
        await state.clear()
        await query.answer(_("Cancelled."))
        await edit_or_keep(message, _("Cancelled."))
        return
    if action == "link":
        await state.set_state(LinkMt5.login)
        await query.answer()
        await message.answer(_("Send your MT5 login (the account number)."), reply_markup=cancel_keyboard())
        return
    if action == "unlink":
        try:
            await ctx.accounts.unlink_mt5(user.telegram_id, actor_for(user.telegram_id))
        except AccountError as exc:
            await query.answer(_error_text(exc), show_alert=True)
            return
        await query.answer(_("Unlinked. You are back on a paper account."))
    else:
        await query.answer()
    text, kind = await account_text(ctx, user.telegram_id)
    await edit_or_keep(message, text, account_keyboard(kind))


async def got_login(message: Message, state: FSMContext) -> None:
    login = (message.text or "").strip()
    if not login.isdigit() or len(login) > 20:
        await message.answer(
            _("The login is a number, for example 5012345. Try again:"), reply_markup=cancel_keyboard()
        )
        return
    await state.update_data(login=login)
    await state.set_state(LinkMt5.server)
    await message.answer(
        _("Now send the server name as MetaTrader 5 shows it (for example Broker-Demo)."),
        reply_markup=cancel_keyboard(),
    )


async def got_server(message: Message, state: FSMContext) -> None:
    server = (message.text or "").strip()
    if not server or len(server) > 128:
        await message.answer(_("❌ The server name is missing or too long."), reply_markup=cancel_keyboard())
        return
    await state.update_data(server=server)
    await state.set_state(LinkMt5.password)
    await message.answer(
        _("Now send the password. I will delete your message at once and keep the password encrypted."),
        reply_markup=cancel_keyboard(),
    )


async def got_password(message: Message, state: FSMContext, ctx: BotContext) -> None:
    password = message.text or ""
    register_secret(password)
    try:
        await message.delete()
    except TelegramBadRequest as exc:
        logger.warning("could not delete the password message: {}", exc.message)
    data = await state.get_data()
    await state.clear()
    sender = message.from_user
    if sender is None:
        return
    progress = await message.answer(_("Checking the login with MetaTrader 5…"))
    try:
        account, snapshot = await ctx.accounts.link_mt5(
            sender.id, str(data.get("login", "")), password, str(data.get("server", "")), actor_for(sender.id)
        )
    except AccountError as exc:
        await progress.edit_text(_error_text(exc) + "\n" + _("Send /account to try again."))
        return
    await progress.edit_text(
        _("✅ Linked MT5 account {login} on {server}.\nBalance: {balance}\nEquity: {equity}").format(
            login=esc(account.login),
            server=esc(account.server),
            balance=money(snapshot.balance, snapshot.currency),
            equity=money(snapshot.equity, snapshot.currency),
        )
    )


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="account")
    router.message.filter(F.chat.type == "private")
    router.message.register(show, Command("account"))
    router.message.register(cancel_command, Command("cancel"))
    router.callback_query.register(account_button, AccountCb.filter())
    router.message.register(got_login, StateFilter(LinkMt5.login), _NOT_A_COMMAND)
    router.message.register(got_server, StateFilter(LinkMt5.server), _NOT_A_COMMAND)
    router.message.register(got_password, StateFilter(LinkMt5.password), _NOT_A_COMMAND)
    return router
