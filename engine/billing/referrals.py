"""Referrals: attribution on a user's first /start, a ledger of what referrers earn, payouts.

Every user has a referral code (``User.referral_code``); their link is the bot's deep link
``start=ref_<code>``. ``attribute`` links a user to the referrer named by a start payload, once,
on the user's first /start only: a later /start never changes or adds a referrer, a user cannot
refer themselves, and a link that would close a cycle (A referred B, B's link used by A) is
refused. Each outcome is audited.

The ledger (``ReferralEntry``, append-only, Decimal Stars) gets a ``credit`` for every payment by
a referred user (the plans file's ``share_percent``), a ``reversal`` when that payment is
refunded, and a negative ``payout`` when an admin pays a referrer out. A referrer's balance is
the sum of their entries; a payout can never take it below zero. The unique (payment, kind)
pair makes crediting and reversing each payment happen at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.names import display_name
from engine.store.audit import audit
from engine.store.db import Database
from engine.store.events import emit
from engine.store.models import ReferralEntry, StarPayment, User

REFERRAL_PREFIX = "ref_"
REFERRAL_ATTRIBUTED = "referral.attributed"

CREDIT = "credit"
REVERSAL = "reversal"
PAYOUT = "payout"


class Attribution(StrEnum):
    ATTRIBUTED = "attributed"
    NO_REFERRAL = "no_referral"  # the payload is not a referral link
    UNKNOWN_CODE = "unknown_code"
    SELF_REFERRAL = "self_referral"
    CYCLE = "cycle"
    NOT_FIRST_START = "not_first_start"
    ALREADY_REFERRED = "already_referred"


@dataclass(frozen=True, slots=True)
class AttributionResult:
    outcome: Attribution
    referrer_id: int | None = None


def referral_code_of(start_payload: str | None) -> str | None:
    payload = (start_payload or "").strip()
    if not payload.startswith(REFERRAL_PREFIX):
        return None
    code = payload[len(REFERRAL_PREFIX) :].upper()
    return code or None


async def _creates_cycle(session: AsyncSession, user_id: int, referrer: User) -> bool:
    """True when ``user_id`` is already up the referrer's chain (or is the referrer)."""
    seen: set[int] = set()
    current: int | None = referrer.id
    while current is not None and current not in seen:
        if current == user_id:
            return True
        seen.add(current)
        current = await session.scalar(select(User.referred_by_id).where(User.id == current))
    return False


async def attribute(
    session: AsyncSession, user: User, start_payload: str | None, *, first_start: bool = True
) -> AttributionResult:
    """Link ``user`` to the referrer named by ``start_payload`` (``ref_<code>``), in the caller's
    transaction. ``first_start`` is whether this /start registered the user: only that one counts."""
    code = referral_code_of(start_payload)
    if code is None:
        return AttributionResult(Attribution.NO_REFERRAL)
    referrer = await session.scalar(select(User).where(User.referral_code == code))
    outcome: Attribution
    if referrer is None:
        outcome = Attribution.UNKNOWN_CODE
    elif user.referred_by_id is not None:
        # Registration may already have linked a new user from the same payload: that is this attribution.
        same = user.referred_by_id == referrer.id and first_start
        outcome = Attribution.ATTRIBUTED if same else Attribution.ALREADY_REFERRED
    elif not first_start:
        outcome = Attribution.NOT_FIRST_START
    elif referrer.id == user.id:
        outcome = Attribution.SELF_REFERRAL
    elif await _creates_cycle(session, user.id, referrer):
        outcome = Attribution.CYCLE
    else:
        user.referred_by_id = referrer.id
        outcome = Attribution.ATTRIBUTED
    referrer_id = referrer.id if referrer is not None else None
    action = "referral.attributed" if outcome is Attribution.ATTRIBUTED else "referral.refused"
    audit(
        session,
        f"tg:{user.telegram_id}",
        action,
        f"user:{user.id}",
        outcome=outcome.value,
        code=code,
        referrer_id=referrer_id,
    )
    if outcome is Attribution.ATTRIBUTED:
        emit(session, REFERRAL_ATTRIBUTED, user_id=user.id, referrer_id=referrer_id)
        return AttributionResult(outcome, referrer_id)
    return AttributionResult(outcome, None)


async def attribute_start(
    db: Database, user_id: int, start_payload: str | None, *, first_start: bool
) -> AttributionResult:
    """``attribute`` in its own transaction, for the /start handler."""
    if referral_code_of(start_payload) is None:
        return AttributionResult(Attribution.NO_REFERRAL)
    async with db.session() as session:
        user = await session.get(User, user_id, with_for_update=True)
        if user is None:
            return AttributionResult(Attribution.NOT_FIRST_START)
        return await attribute(session, user, start_payload, first_start=first_start)


# ---------------------------------------------------------------------- the ledger


async def credit_for_payment(
    session: AsyncSession, payment: StarPayment, payer: User, share_percent: Decimal, amount: Decimal
) -> ReferralEntry | None:
    """Credit the payer's referrer their share of ``payment`` (once per payment)."""
    if payer.referred_by_id is None or amount <= 0:
        return None
    entry = ReferralEntry(
        referrer_id=payer.referred_by_id,
        referred_user_id=payer.id,
        payment_id=payment.id,
        kind=CREDIT,
        amount=amount,
        actor="billing",
        note=f"{share_percent}% of {payment.amount} {payment.currency}",
    )
    session.add(entry)
    await session.flush()
    audit(
        session,
        "billing",
        "referral.credited",
        f"user:{payer.referred_by_id}",
        payment_id=payment.id,
        amount=str(amount),
    )
    return entry


async def reverse_for_payment(session: AsyncSession, payment: StarPayment) -> ReferralEntry | None:
    """Take back the credit of a refunded payment (once)."""
    credit = await session.scalar(
        select(ReferralEntry).where(ReferralEntry.payment_id == payment.id, ReferralEntry.kind == CREDIT)
    )
    if credit is None:
        return None
    done = await session.scalar(
        select(ReferralEntry.id).where(ReferralEntry.payment_id == payment.id, ReferralEntry.kind == REVERSAL)
    )
    if done is not None:
        return None
    entry = ReferralEntry(
        referrer_id=credit.referrer_id,
        referred_user_id=credit.referred_user_id,
        payment_id=payment.id,
        kind=REVERSAL,
        amount=-credit.amount,
        actor="billing",
        note="payment refunded",
    )
    session.add(entry)
    await session.flush()
    audit(
        session,
        "billing",
        "referral.reversed",
        f"user:{credit.referrer_id}",
        payment_id=payment.id,
        amount=str(entry.amount),
    )
    return entry


async def balance_of(session: AsyncSession, user_id: int) -> Decimal:
    """The sum of a referrer's entries, added up exactly in Python (SQLite's SUM over the
    decimal strings of ``Money`` would be a float)."""
    amounts = (
        await session.scalars(select(ReferralEntry.amount).where(ReferralEntry.referrer_id == user_id))
    ).all()
    return sum(amounts, Decimal(0))


class ReferralError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ReferralSummary:
    code: str
    invited: int
    paying: int
    earned: Decimal  # credits minus reversals
    paid_out: Decimal
    balance: Decimal
    invited_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LeaderRow:
    user_id: int
    telegram_id: int
    name: str
    invited: int
    paying: int
    earned: Decimal
    balance: Decimal


class ReferralService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _entries(
        self, session: AsyncSession, referrer_ids: list[int]
    ) -> dict[int, list[ReferralEntry]]:
        rows = (
            await session.scalars(select(ReferralEntry).where(ReferralEntry.referrer_id.in_(referrer_ids)))
        ).all()
        out: dict[int, list[ReferralEntry]] = {i: [] for i in referrer_ids}
        for row in rows:
            out[row.referrer_id].append(row)
        return out

    async def _paying(self, session: AsyncSession, referrer_ids: list[int]) -> dict[int, int]:
        rows = (
            await session.execute(
                select(User.referred_by_id, func.count(distinct(StarPayment.user_id)))
                .join(StarPayment, StarPayment.user_id == User.id)
                .where(User.referred_by_id.in_(referrer_ids), StarPayment.status == "paid")
                .group_by(User.referred_by_id)
            )
        ).all()
        return {int(r): int(n) for r, n in rows if r is not None}

    async def summary(self, telegram_id: int, *, names: int = 20) -> ReferralSummary | None:
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            if user is None:
                return None
            invited = (
                await session.scalars(
                    select(User).where(User.referred_by_id == user.id).order_by(User.created_at.desc())
                )
            ).all()
            entries = (await self._entries(session, [user.id]))[user.id]
            paying = (await self._paying(session, [user.id])).get(user.id, 0)
        earned = sum((e.amount for e in entries if e.kind != PAYOUT), Decimal(0))
        paid_out = -sum((e.amount for e in entries if e.kind == PAYOUT), Decimal(0))
        return ReferralSummary(
            code=user.referral_code,
            invited=len(invited),
            paying=paying,
            earned=earned,
            paid_out=paid_out,
            balance=earned - paid_out,
            invited_names=tuple(display_name(u) for u in invited[:names]),
        )

    async def leaderboard(self, limit: int = 10) -> list[LeaderRow]:
        """Referrers by what they earned, then by how many they invited."""
        async with self._db.session() as session:
            grouped = (
                await session.execute(
                    select(User.referred_by_id, func.count(User.id))
                    .where(User.referred_by_id.is_not(None))
                    .group_by(User.referred_by_id)
                )
            ).all()
            counts = {int(r): int(n) for r, n in grouped if r is not None}
            ids = list(counts)
            if not ids:
                return []
            users = {u.id: u for u in (await session.scalars(select(User).where(User.id.in_(ids)))).all()}
            entries = await self._entries(session, ids)
            paying = await self._paying(session, ids)
        rows = []
        for uid in ids:
            mine = entries.get(uid, [])
            earned = sum((e.amount for e in mine if e.kind != PAYOUT), Decimal(0))
            user = users[uid]
            rows.append(
                LeaderRow(
                    user_id=uid,
                    telegram_id=user.telegram_id,
                    name=display_name(user),
                    invited=counts[uid],
                    paying=paying.get(uid, 0),
                    earned=earned,
                    balance=sum((e.amount for e in mine), Decimal(0)),
                )
            )
        rows.sort(key=lambda r: (-r.earned, -r.invited, r.user_id))
        return rows[:limit]

    async def payout(self, referrer: User, amount: Decimal, actor: str, note: str | None = None) -> Decimal:
        """Record a payout (a negative entry); returns the balance left. Never below zero."""
        if not amount.is_finite() or amount <= 0:
            raise ReferralError("bad_amount", "the payout must be a positive amount")
        async with self._db.session() as session:
            # PostgreSQL: the referrer's row lock serializes payouts. SQLite: the entry is written
            # before the balance is read, and that first write takes the database's write lock.
            locked = await session.get(User, referrer.id, with_for_update=True)
            if locked is None:
                raise ReferralError("unknown_user", "no such user")
            session.add(
                ReferralEntry(
                    referrer_id=locked.id,
                    kind=PAYOUT,
                    amount=-amount,
                    actor=actor[:64],
                    note=(note or "")[:200],
                )
            )
            await session.flush()
            left = await balance_of(session, locked.id)
            if left < 0:
                raise ReferralError("insufficient_balance", f"the balance is {left + amount}")
            audit(session, actor, "referral.payout", f"user:{locked.id}", amount=str(amount))
            return left
