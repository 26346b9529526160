"""Telegram Stars payments: invoices, pre-checkout validation, payments, renewals, refunds.

The flow (Telegram's): the bot issues an invoice (``XTR``, exactly one price item; a recurring plan
as a subscription link with ``subscription_period=2592000``); the user pays; Telegram asks the
bot with a ``pre_checkout_query``, which must be answered within 10 s (``check_checkout`` reads
two rows); then the ``successful_payment`` message arrives, and ``record_payment`` extends the
subscriber's plan. Renewals of a Stars subscription arrive as further ``successful_payment``
messages (``is_recurring``, not first) without a pre-checkout.

Exactly once: a payment row is keyed by ``telegram_payment_charge_id`` (unique in the database),
so the same payment update delivered twice (a webhook retry, two instances) extends the plan and
credits the referrer once. The payload names the plan, the price, the period and the buyer, so
a stale invoice (the price changed since) or someone else's invoice is refused at pre-checkout.

Extending: a payment for the plan already running adds its period to the current end; a payment
for another plan starts that plan now (a lower plan cannot be bought while a higher one runs). A
refund (admin ``/refund``, or Telegram's ``refunded_payment``) takes that payment's period off
again (dropping the user to the default plan if nothing is left) and reverses the referral credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.users import new_user
from engine.billing.entitlements import ACTIVE, GRACE, Standing, standing, standing_of
from engine.billing.invoices import BillingError, CheckoutRefusal, Invoice, InvoicePayload
from engine.billing.plans import CURRENCY, SUBSCRIPTION_PERIOD_SECONDS, PlanCatalog
from engine.billing.referrals import credit_for_payment, reverse_for_payment
from engine.states import PAYMENT, SUBSCRIPTION, PaymentStatus, SubscriptionStatus, UserStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.events import EventRelay, emit
from engine.store.models import StarPayment, Subscription, User

PAYMENT_RECEIVED = "payment.received"
PAYMENT_REFUNDED = "payment.refunded"
SUBSCRIPTION_RENEWAL = "subscription.renewal"

STATUS_BANNED = UserStatus.BANNED.value
PAID = PaymentStatus.PAID.value
REFUNDED = PaymentStatus.REFUNDED.value
RENEWAL_STATES = ("active", "canceled", "failed")


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    created: bool  # False: this charge was already recorded (a repeated update)
    payment_id: int
    user_id: int
    telegram_id: int
    plan: str
    expires_at: datetime
    amount: Decimal


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    found: bool
    already: bool = False
    telegram_id: int | None = None
    plan: str | None = None
    is_recurring: bool = False
    standing: Standing | None = None


def _from_unix(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class BillingService:
    def __init__(self, db: Database, catalog: PlanCatalog, relay: EventRelay | None = None) -> None:
        self._db = db
        self.catalog = catalog
        self._relay = relay

    def _notify(self) -> None:
        if self._relay is not None:
            self._relay.notify()

    # ------------------------------------------------------------------ reading

    async def standing(self, telegram_id: int) -> Standing | None:
        async with self._db.session() as session:
            user_id = await session.scalar(select(User.id).where(User.telegram_id == telegram_id))
            if user_id is None:
                return None
            return await standing(session, user_id, self.catalog)

    async def payment(self, charge_id: str) -> StarPayment | None:
        async with self._db.session() as session:
            return await session.scalar(
                select(StarPayment).where(StarPayment.telegram_payment_charge_id == charge_id)
            )

    # ------------------------------------------------------------------ invoices

    def invoice(self, plan_key: str, telegram_id: int) -> Invoice:
        plan = self.catalog.get(plan_key)
        if plan is None:
            raise BillingError("unknown_plan", f"no plan {plan_key!r}")
        if plan.is_free:
            raise BillingError("free_plan", f"the {plan.key} plan is free")
        payload = InvoicePayload(plan.key, plan.price_stars, plan.period_days, telegram_id).pack()
        period = SUBSCRIPTION_PERIOD_SECONDS if plan.recurring else None
        return Invoice(plan, payload, plan.price_stars, period)

    async def check_checkout(
        self, telegram_id: int, currency: str, total_amount: int, invoice_payload: str
    ) -> CheckoutRefusal | None:
        """Validate a ``pre_checkout_query``; None means answer ok. A refusal is audited."""
        refusal = await self._checkout_refusal(telegram_id, currency, total_amount, invoice_payload)
        if refusal is not None:
            async with self._db.session() as session:
                audit(
                    session,
                    f"tg:{telegram_id}",
                    "payment.checkout_refused",
                    None,
                    reason=refusal.value,
                    payload=invoice_payload,
                    amount=total_amount,
                )
        return refusal

    async def _checkout_refusal(
        self, telegram_id: int, currency: str, total_amount: int, invoice_payload: str
    ) -> CheckoutRefusal | None:
        payload = InvoicePayload.parse(invoice_payload)
        if payload is None:
            return CheckoutRefusal.BAD_PAYLOAD
        plan = self.catalog.get(payload.plan)
        if plan is None:
            return CheckoutRefusal.UNKNOWN_PLAN
        if plan.is_free:
            return CheckoutRefusal.FREE_PLAN
        if currency != CURRENCY:
            return CheckoutRefusal.WRONG_CURRENCY
        if payload.stars != plan.price_stars or payload.days != plan.period_days:
            return CheckoutRefusal.PRICE_CHANGED
        if total_amount != plan.price_stars:
            return CheckoutRefusal.WRONG_AMOUNT
        if payload.telegram_id != telegram_id:
            return CheckoutRefusal.NOT_YOURS
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            if user is None:
                return CheckoutRefusal.UNKNOWN_USER
            if user.status == STATUS_BANNED:
                return CheckoutRefusal.BANNED
            st = await standing(session, user.id, self.catalog)
        if st.state == ACTIVE and st.plan.rank > plan.rank:
            return CheckoutRefusal.DOWNGRADE
        return None

    # ------------------------------------------------------------------ payments

    async def record_payment(
        self,
        telegram_id: int,
        *,
        currency: str,
        total_amount: int,
        invoice_payload: str,
        charge_id: str,
        provider_charge_id: str | None = None,
        is_recurring: bool = False,
        is_first_recurring: bool = False,
        subscription_expiration_date: int | None = None,
    ) -> PaymentOutcome:
        """Record a ``successful_payment`` and extend the plan, exactly once per charge id."""
        for _ in range(3):
            try:
                async with self._db.session() as session:
                    existing = await self._existing(session, charge_id)
                    if existing is not None:
                        return existing
                    outcome = await self._record(
                        session,
                        telegram_id,
                        currency=currency,
                        total_amount=total_amount,
                        invoice_payload=invoice_payload,
                        charge_id=charge_id,
                        provider_charge_id=provider_charge_id,
                        is_recurring=is_recurring,
                        is_first_recurring=is_first_recurring,
                        subscription_expiration_date=subscription_expiration_date,
                    )
                self._notify()
                return outcome
            except IntegrityError:
                continue  # the same charge recorded concurrently: read it back
        async with self._db.session() as session:
            existing = await self._existing(session, charge_id)
        if existing is None:
            raise RuntimeError(f"payment {charge_id} could not be recorded")
        return existing

    async def _existing(self, session: AsyncSession, charge_id: str) -> PaymentOutcome | None:
        row = await session.scalar(
            select(StarPayment).where(StarPayment.telegram_payment_charge_id == charge_id)
        )
        if row is None:
            return None
        user = await session.get(User, row.user_id)
        assert user is not None
        return PaymentOutcome(
            False, row.id, row.user_id, user.telegram_id, row.plan, row.period_end, row.amount
        )

    async def _user_for_payment(self, session: AsyncSession, telegram_id: int) -> User:
        user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
        if user is not None:
            return user
        # Money arrived from someone we do not know (never /started): keep the payment anyway.
        user = new_user(telegram_id)
        session.add(user)
        await session.flush()
        audit(session, "billing", "user.created", f"user:{user.id}", telegram_id=telegram_id)
        return user

    async def _record(
        self,
        session: AsyncSession,
        telegram_id: int,
        *,
        currency: str,
        total_amount: int,
        invoice_payload: str,
        charge_id: str,
        provider_charge_id: str | None,
        is_recurring: bool,
        is_first_recurring: bool,
        subscription_expiration_date: int | None,
    ) -> PaymentOutcome:
        now = utcnow()
        user = await self._user_for_payment(session, telegram_id)
        payload = InvoicePayload.parse(invoice_payload)
        plan_key = payload.plan if payload is not None else "?"
        amount = Decimal(total_amount)
        payment = StarPayment(
            user_id=user.id,
            plan=plan_key,
            currency=currency,
            amount=amount,
            invoice_payload=invoice_payload[:128],
            telegram_payment_charge_id=charge_id,
            provider_payment_charge_id=provider_charge_id,
            is_recurring=is_recurring,
            is_first_recurring=is_first_recurring,
            subscription_expires_at=_from_unix(subscription_expiration_date),
            period_start=now,
            period_end=now,
            status=PAID,
        )
        session.add(payment)
        # The unique charge id decides here; this first write also serializes the rest of the
        # transaction with any other payment (SQLite takes its write lock; PostgreSQL below locks the row).
        await session.flush()
        sub = await session.scalar(
            select(Subscription).where(Subscription.user_id == user.id).with_for_update()
        )
        plan = self.catalog.get(plan_key)
        running = False
        if payload is None or plan is None:
            # Not ours to interpret (or a plan since removed): keep the money on record, grant nothing.
            logger.error("payment {} has an unknown payload {!r}", charge_id, invoice_payload)
            start = end = now
        else:
            st = standing_of(sub, self.catalog, now)
            running = sub is not None and st.paid_plan == plan_key and st.state in (ACTIVE, GRACE)
            start = sub.expires_at if running and sub is not None else now
            end = start + plan.period
        payment.period_start, payment.period_end = start, end
        if end > start:
            if sub is None:
                sub = Subscription(
                    user_id=user.id,
                    plan=plan_key,
                    status=SubscriptionStatus.ACTIVE.value,
                    started_at=start,
                    expires_at=end,
                )
                session.add(sub)
            elif not running:  # a new plan, or the same one after it lapsed: it starts now
                sub.plan, sub.started_at = plan_key, start
            if sub.status != SubscriptionStatus.ACTIVE:
                SUBSCRIPTION.move(sub, SubscriptionStatus.ACTIVE)
            sub.expires_at = end
            sub.reminded_at = None
            if is_recurring:
                sub.recurring, sub.renewal_state, sub.last_charge_id = True, ACTIVE, charge_id
            elif not running:
                sub.recurring, sub.renewal_state = False, None
        credit = self.catalog.referral_credit(amount)
        await credit_for_payment(session, payment, user, self.catalog.referral_share_percent, credit)
        audit(
            session,
            f"tg:{telegram_id}",
            "payment.received",
            f"payment:{payment.id}",
            plan=plan_key,
            amount=str(amount),
            currency=currency,
            charge_id=charge_id,
            recurring=is_recurring,
            first_recurring=is_first_recurring,
            period_start=start.isoformat(),
            period_end=end.isoformat(),
        )
        emit(
            session,
            PAYMENT_RECEIVED,
            payment_id=payment.id,
            user_id=user.id,
            telegram_id=telegram_id,
            plan=plan_key,
            amount=str(amount),
            currency=currency,
            expires_at=end.isoformat(),
            is_recurring=is_recurring,
            is_first_recurring=is_first_recurring,
        )
        return PaymentOutcome(True, payment.id, user.id, telegram_id, plan_key, end, amount)

    # ------------------------------------------------------------------ refunds and renewals

    async def refund(self, charge_id: str, actor: str) -> RefundOutcome:
        """Revoke a refunded payment's period (idempotent: a second call changes nothing)."""
        now = utcnow()
        async with self._db.session() as session:
            # Claim the refund with a conditional write first: it decides who revokes (exactly once)
            # and serializes the rest of the transaction (SQLite's write lock; PostgreSQL's row locks).
            claimed = await session.execute(
                update(StarPayment)
                .where(
                    StarPayment.telegram_payment_charge_id == charge_id,
                    StarPayment.status.in_(PAYMENT.sources(REFUNDED)),
                )
                .values(status=REFUNDED, refunded_at=now)
            )
            payment = await session.scalar(
                select(StarPayment).where(StarPayment.telegram_payment_charge_id == charge_id)
            )
            if payment is None:
                return RefundOutcome(found=False)
            user = await session.get(User, payment.user_id)
            assert user is not None
            sub = await session.scalar(
                select(Subscription).where(Subscription.user_id == user.id).with_for_update()
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return RefundOutcome(
                    True,
                    True,
                    user.telegram_id,
                    payment.plan,
                    payment.is_recurring,
                    standing_of(sub, self.catalog, now),
                )
            if sub is not None and sub.plan == payment.plan and sub.status == ACTIVE:
                sub.expires_at = sub.expires_at - (payment.period_end - payment.period_start)
                if sub.expires_at <= now:
                    SUBSCRIPTION.move(sub, SubscriptionStatus.REVOKED)
                if payment.is_recurring:
                    sub.renewal_state = "canceled"
            await reverse_for_payment(session, payment)
            audit(
                session,
                actor,
                "payment.refunded",
                f"payment:{payment.id}",
                charge_id=charge_id,
                plan=payment.plan,
                amount=str(payment.amount),
            )
            st = standing_of(sub, self.catalog, now)
            emit(
                session,
                PAYMENT_REFUNDED,
                payment_id=payment.id,
                user_id=user.id,
                telegram_id=user.telegram_id,
                plan=payment.plan,
                amount=str(payment.amount),
                now_plan=st.plan.key,
                expires_at=st.expires_at.isoformat() if st.expires_at and st.state == ACTIVE else None,
            )
            outcome = RefundOutcome(True, False, user.telegram_id, payment.plan, payment.is_recurring, st)
        self._notify()
        return outcome

    async def renewal_changed(self, telegram_id: int, invoice_payload: str, state: str) -> bool:
        """A Stars subscription was canceled, re-activated, or its renewal charge failed."""
        if state not in RENEWAL_STATES:
            return False
        payload = InvoicePayload.parse(invoice_payload)
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            if user is None or payload is None:
                return False
            sub = await session.scalar(
                select(Subscription).where(Subscription.user_id == user.id).with_for_update()
            )
            if sub is None or sub.plan != payload.plan or not sub.recurring or sub.renewal_state == state:
                return False
            sub.renewal_state = state
            audit(
                session,
                f"tg:{telegram_id}",
                "subscription.renewal",
                f"user:{user.id}",
                plan=sub.plan,
                state=state,
            )
            emit(
                session,
                SUBSCRIPTION_RENEWAL,
                user_id=user.id,
                telegram_id=telegram_id,
                plan=sub.plan,
                state=state,
                expires_at=sub.expires_at.isoformat(),
            )
        self._notify()
        return True
