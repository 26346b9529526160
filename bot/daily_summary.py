"""The daily summary: shortly after 00:00 UTC, the day that just ended goes to the ops chat and
to each subscriber who had trades that day and keeps notifications on.

Messages go through the outbox with dedupe keys ``daily:<date>:<chat>``, so a second run for
the same day (a restart, a second instance) sends nothing new.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from loguru import logger
from sqlalchemy import select

from bot.context import BotContext
from bot.outbox import Outgoing, enqueue
from bot.render_stats import render_daily_summary, render_ops_daily
from engine.states import UserStatus
from engine.store.db import utcnow
from engine.store.models import User

RUN_DELAY = timedelta(minutes=1)  # after midnight, so the day's last equity points are stored


def next_run(now: datetime) -> datetime:
    """The next run: ``RUN_DELAY`` after the coming 00:00 UTC (today's, if not yet reached)."""
    now = now.astimezone(UTC)
    today = datetime.combine(now.date(), time(0), tzinfo=UTC) + RUN_DELAY
    return today if now < today else today + timedelta(days=1)


def _message(day: date, chat_id: int, text: str) -> Outgoing:
    payload = {"chat_id": chat_id, "text": text, "parse_mode": "HTML"}
    return Outgoing(f"daily:{day.isoformat()}:{chat_id}", chat_id, "sendMessage", payload)


async def send_daily(ctx: BotContext, day: date) -> int:
    """Enqueue the summaries of ``day``; returns how many messages were offered to the outbox."""
    analytics = ctx.engine.analytics
    if analytics is None:
        return 0
    report = await analytics.daily_report(day)
    messages: list[Outgoing] = []
    ops_chat = ctx.settings.ops_chat_id
    if ops_chat is not None:
        text = render_ops_daily(report, i18n=ctx.i18n, locale=ctx.config.ops_language)
        messages.append(_message(day, ops_chat, text))
    wanted = [s for s in report.subscribers if s.notifications and s.summary.trades > 0]
    async with ctx.engine.db.session() as session:
        if wanted:
            active = set(
                await session.scalars(
                    select(User.id).where(
                        User.id.in_([s.user_id for s in wanted]), User.status == UserStatus.ACTIVE.value
                    )
                )
            )
            for sub in wanted:
                if sub.user_id not in active:
                    continue
                locale = (
                    sub.language if sub.language in ctx.i18n.available_locales else ctx.i18n.default_locale
                )
                text = render_daily_summary(sub.summary, i18n=ctx.i18n, locale=locale)
                messages.append(_message(day, sub.telegram_id, text))
        await enqueue(session, messages)
    if messages:
        ctx.wake_outbox()
    return len(messages)


async def run_daily(ctx: BotContext, clock: Callable[[], datetime] = utcnow) -> None:
    """Forever: sleep until just after midnight UTC, then send the day that ended."""
    while True:
        now = clock()
        due = next_run(now)
        await asyncio.sleep((due - now).total_seconds())
        day = due.date() - timedelta(days=1)
        try:
            count = await send_daily(ctx, day)
            logger.info("daily summary for {}: {} messages", day, count)
        except Exception as exc:
            logger.opt(exception=exc).error("daily summary for {} failed", day)
