"""/stats and /export: performance, the equity and drawdown chart, and a CSV of closed trades.

A subscriber sees their own accounts (``Scope(user_id=...)``); an admin (``ADMIN_IDS``) sees
every account, plus a table per producer and per instrument. Conventions are in
``docs/analytics.md``; the texts come from ``bot.render_stats``.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _
from babel.numbers import format_percent
from sqlalchemy import select

from bot.context import BotContext
from bot.render import number, signed_money
from bot.render_stats import (
    chart_labels,
    describe_scope,
    render_export_caption,
    render_period_error,
    render_stats,
)
from engine.analytics import AnalyticsService, Period, PeriodError, Scope, parse_period
from engine.ops.queries import book_currency
from engine.store.db import utcnow
from engine.store.models import Producer, User

ADMIN_TABLE_ROWS = 15
CAPTION_LIMIT = 1024  # Telegram's limit on a photo caption
LIVE_TIMEOUT_SECONDS = 3.0


def _needs_start(ctx: BotContext, user: User | None) -> bool:
    return user is None or user.status != "active" or not ctx.subscribers.has_consented(user)


async def _prepare(
    message: Message, command: CommandObject, ctx: BotContext, user: User | None
) -> tuple[AnalyticsService, Scope, Period, str] | None:
    """The service, scope, period and locale for a /stats or /export, or None after replying."""
    sender = message.from_user.id if message.from_user else None
    admin = ctx.is_admin(sender)
    if not admin and (user is None or _needs_start(ctx, user)):
        await message.answer(_("Please send /start and accept the risk disclaimer first."))
        return None
    analytics = ctx.engine.analytics
    if analytics is None:
        await message.answer(_("Statistics are not available on this server."))
        return None
    locale = ctx.i18n.current_locale
    try:
        period = parse_period(command.args, utcnow())
    except PeriodError as exc:
        await message.answer(render_period_error(exc, i18n=ctx.i18n, locale=locale))
        return None
    if admin:
        scope = Scope()
    else:
        assert user is not None
        scope = Scope(user_id=user.id)
    return analytics, scope, period, locale


def _row(
    name: str, trades: int, net: Decimal, win_rate: Decimal | None, locale: str, currency: str | None
) -> str:
    rate = "—" if win_rate is None else format_percent(win_rate, format="#,##0%", locale=locale)
    return _("• {name}: {count} trades, net {net}, win rate {rate}").format(
        name=escape(name),
        count=trades,
        net=signed_money(net, currency) if currency else number(net),
        rate=rate,
    )


async def admin_tables(
    ctx: BotContext, analytics: AnalyticsService, period: Period, locale: str, currency: str | None = None
) -> str:
    """Per producer and per instrument: trades closed in the period, net P&L and win rate."""
    async with ctx.engine.db.session() as session:
        producers = (await session.execute(select(Producer.id, Producer.name).order_by(Producer.name))).all()
    everything = await analytics.load(Scope(), period)
    instruments = sorted({*ctx.settings.instruments, *(t.symbol.upper() for t in everything.trades)})
    sections: list[str] = []
    for heading, scopes in (
        (_("<b>By producer</b>"), [(str(name), Scope(producer_id=pid)) for pid, name in producers]),
        (_("<b>By instrument</b>"), [(symbol, Scope(instrument=symbol)) for symbol in instruments]),
    ):
        rows: list[tuple[Decimal, str]] = []
        for name, scope in scopes:
            m = await analytics.metrics(scope, period)
            if m.trades:
                rows.append((m.net_profit, _row(name, m.trades, m.net_profit, m.win_rate, locale, currency)))
        rows.sort(key=lambda r: r[0], reverse=True)
        lines = [text for _net, text in rows[:ADMIN_TABLE_ROWS]] or [_("No closed trades.")]
        sections.append("\n".join([heading, *lines]))
    return "\n\n".join(sections)


async def stats(message: Message, command: CommandObject, ctx: BotContext, user: User | None) -> None:
    prepared = await _prepare(message, command, ctx, user)
    if prepared is None:
        return
    analytics, scope, period, locale = prepared
    title = describe_scope(scope, i18n=ctx.i18n, locale=locale)
    metrics = await analytics.metrics(scope, period)
    book = scope == Scope()  # an admin: the whole book
    currency, equity_now = await _live_equity(ctx, user if not book else None)
    if book:
        async with ctx.engine.db.session() as session:
            currency = await book_currency(session)
    text = render_stats(
        metrics,
        title=title,
        period=period,
        i18n=ctx.i18n,
        locale=locale,
        currency=currency or "",
        equity_now=equity_now,
    )
    shown = (metrics.start, metrics.end) if period.start is None or metrics.start > period.start else None
    labels = chart_labels(title=title, period=period, i18n=ctx.i18n, locale=locale, shown=shown)
    png = await analytics.chart(scope, period, labels)
    photo = BufferedInputFile(png, "stats.png")
    if len(text) <= CAPTION_LIMIT:  # one message: the chart with the numbers as its caption
        await message.answer_photo(photo, caption=text)
    else:
        await message.answer_photo(photo, caption=escape(labels.title))
        await message.answer(text)
    if book:  # where the book's results came from
        await message.answer(await admin_tables(ctx, analytics, period, locale, currency))


async def _live_equity(ctx: BotContext, user: User | None) -> tuple[str | None, Decimal | None]:
    """The subscriber's account currency and equity now (live from the broker when it answers)."""
    if user is None:
        return None, None
    account = await ctx.accounts.account_of(user.telegram_id)
    if account is None:
        return None, None
    view = await ctx.accounts.view(account, seconds=LIVE_TIMEOUT_SECONDS)
    if view.snapshot is not None:
        return view.snapshot.currency, view.snapshot.equity
    return account.currency, None


async def export(message: Message, command: CommandObject, ctx: BotContext, user: User | None) -> None:
    prepared = await _prepare(message, command, ctx, user)
    if prepared is None:
        return
    analytics, scope, period, locale = prepared
    title = describe_scope(scope, i18n=ctx.i18n, locale=locale)
    exported = await analytics.export_csv(scope, period)
    await message.answer_document(
        BufferedInputFile(exported.content, exported.filename),
        caption=render_export_caption(
            exported.count, title=title, period=period, i18n=ctx.i18n, locale=locale
        ),
    )


def build_router() -> Router:
    """A fresh router (a router can belong to one dispatcher only)."""
    router = Router(name="stats")
    router.message.filter(F.chat.type == "private")
    router.message.register(stats, Command("stats"))
    router.message.register(export, Command("export"))
    return router
