"""Subscribers: registration from Telegram, consent to the risk disclaimer, preferences, leaving.

A subscriber is a ``User`` row keyed by Telegram id. Signals reach only users who are ``active``
and have consented to the *current* disclaimer version (``CONSENT_VERSION``): changing the
setting makes every subscriber consent again before anything more reaches them. Each user gets
a referral code at registration; a ``/start ref_<code>`` payload links the new user to the
referrer, and any start payload is kept as given (marketing attribution).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.service import AccountService
from engine.accounts.users import new_user
from engine.settings import Settings
from engine.states import USER, UserStatus
from engine.store.audit import audit
from engine.store.db import Database, utcnow
from engine.store.models import ExecutionAccount, User

STATUS_ACTIVE = UserStatus.ACTIVE.value

REFERRAL_PREFIX = "ref_"
MAX_PAYLOAD = 64


def recipients_query(consent_version: str) -> Select[int, int, str | None, int]:
    """Who a new signal goes to: (user id, Telegram id, consent version, account id) of every
    active user consented to ``consent_version`` with an active execution account (the newest)."""
    newest = (
        select(
            ExecutionAccount.owner_id.label("owner_id"),
            func.max(ExecutionAccount.id).label("account_id"),
        )
        .where(ExecutionAccount.active.is_(True))
        .group_by(ExecutionAccount.owner_id)
        .subquery()
    )
    return (
        select(User.id, User.telegram_id, User.consent_version, newest.c.account_id)
        .join(newest, newest.c.owner_id == User.id)
        .where(User.status == STATUS_ACTIVE, User.consent_version == consent_version)
        .order_by(User.id)
    )


def actor_for(telegram_id: int) -> str:
    """The audit actor of a Telegram user."""
    return f"tg:{telegram_id}"


class StaleConsent(Exception):
    """The user agreed to a disclaimer version that is no longer the current one."""


@dataclass(frozen=True, slots=True)
class Registration:
    user: User
    created: bool
    reactivated: bool


@dataclass(frozen=True, slots=True)
class ConsentResult:
    user: User
    account: ExecutionAccount | None  # the active account after consent (None: an MT5 link is needed)
    first_time: bool  # False when the user had already consented to this version


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int
    telegram_id: int
    language: str
    notifications: bool
    account_id: int
    consent_version: str


class SubscriberService:
    def __init__(self, db: Database, settings: Settings, accounts: AccountService) -> None:
        self._db = db
        self._settings = settings
        self._accounts = accounts

    @property
    def consent_version(self) -> str:
        return self._settings.consent_version

    def has_consented(self, user: User) -> bool:
        return user.consent_version == self._settings.consent_version

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self._settings.admin_ids

    async def get(self, telegram_id: int) -> User | None:
        async with self._db.session() as session:
            return await session.scalar(select(User).where(User.telegram_id == telegram_id))

    async def register(
        self,
        telegram_id: int,
        *,
        username: str | None = None,
        first_name: str | None = None,
        language: str | None = None,
        start_payload: str | None = None,
    ) -> Registration:
        """Create the subscriber on first ``/start``, or refresh and re-activate a known one."""
        payload = (start_payload or "").strip()[:MAX_PAYLOAD] or None
        for _ in range(5):
            try:
                return await self._register_once(telegram_id, username, first_name, language, payload)
            except IntegrityError:
                continue  # a concurrent /start created the row, or the referral code collided
        raise RuntimeError(f"could not register Telegram user {telegram_id}")

    async def _register_once(
        self,
        telegram_id: int,
        username: str | None,
        first_name: str | None,
        language: str | None,
        payload: str | None,
    ) -> Registration:
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            role = "admin" if self.is_admin(telegram_id) else "subscriber"
            if user is not None:
                user.username = username
                user.first_name = first_name
                user.role = role
                if user.consent_version is None and language is not None:
                    # Not onboarded yet (e.g. the operator created the account first): nobody chose
                    # a language in /settings, so Telegram's is the best guess.
                    user.language = language
                reactivated = USER.can(user.status, UserStatus.ACTIVE)  # not a ban
                if reactivated:
                    audit(
                        session,
                        actor_for(telegram_id),
                        "user.reactivated",
                        f"user:{user.id}",
                        was=user.status,
                    )
                    USER.move(user, UserStatus.ACTIVE)
                return Registration(user, created=False, reactivated=reactivated)
            user = new_user(
                telegram_id,
                username=username,
                first_name=first_name,
                language=language or "en",
                role=role,
                start_payload=payload,
                notifications=True,
            )
            if payload and payload.startswith(REFERRAL_PREFIX):
                code = payload[len(REFERRAL_PREFIX) :].upper()
                referrer = await session.scalar(select(User.id).where(User.referral_code == code))
                user.referred_by_id = referrer
            session.add(user)
            await session.flush()
            audit(
                session,
                actor_for(telegram_id),
                "user.registered",
                f"user:{user.id}",
                language=language,
                start_payload=payload,
                referred_by=user.referred_by_id,
            )
            return Registration(user, created=True, reactivated=False)

    async def consent(self, telegram_id: int, version: str) -> ConsentResult:
        """Record consent to ``version`` (must be the current one) and give the user an account."""
        if version != self._settings.consent_version:
            raise StaleConsent(version)
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id).with_for_update())
            if user is None:
                raise LookupError(f"no subscriber with Telegram id {telegram_id}")
            first_time = user.consent_version != version
            if first_time:
                user.consent_version = version
                user.consented_at = utcnow()
                audit(session, actor_for(telegram_id), "user.consented", f"user:{user.id}", version=version)
            account = await self._accounts.ensure_default(session, user)
            return ConsentResult(user, account, first_time)

    async def find(self, ref: str) -> User | None:
        """A user by Telegram id or @username (an admin's command argument)."""
        async with self._db.session() as session:
            if ref.lstrip("-").isdigit():
                return await session.scalar(select(User).where(User.telegram_id == int(ref)))
            name = ref.lstrip("@")
            return await session.scalar(select(User).where(User.username == name)) if name else None

    async def set_language(self, telegram_id: int, language: str) -> bool:
        return await self._update(telegram_id, "user.language", language=language)

    async def set_notifications(self, telegram_id: int, enabled: bool) -> bool:
        return await self._update(telegram_id, "user.notifications", notifications=enabled)

    async def unsubscribe(self, telegram_id: int) -> bool:
        """``/stop``: nothing more is sent until the user sends ``/start`` again."""
        return await self._set_status(telegram_id, UserStatus.LEFT, "user.left")

    async def mark_blocked(self, telegram_id: int) -> bool:
        """The user blocked the bot: stop sending to them (``/start`` re-activates)."""
        return await self._set_status(telegram_id, UserStatus.BLOCKED, "user.blocked")

    async def _update(self, telegram_id: int, action: str, **values: object) -> bool:
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            if user is None:
                return False
            for key, value in values.items():
                setattr(user, key, value)
            audit(session, actor_for(telegram_id), action, f"user:{user.id}", **values)
            return True

    async def _set_status(self, telegram_id: int, status: UserStatus, action: str) -> bool:
        async with self._db.session() as session:
            result = await session.execute(
                update(User)
                .where(User.telegram_id == telegram_id, User.status.in_(USER.sources(status)))
                .values(status=status.value)
                .returning(User.id)
            )
            user_id = result.scalar_one_or_none()
            if user_id is None:
                return False
            audit(session, actor_for(telegram_id), action, f"user:{user_id}")
            return True

    async def recipients(self, session: AsyncSession) -> list[Recipient]:
        """Who a new signal goes to (``recipients_query``), with their language and preferences."""
        query = recipients_query(self._settings.consent_version).add_columns(
            User.language, User.notifications
        )
        return [
            Recipient(
                user_id=user_id,
                telegram_id=telegram_id,
                language=language,
                notifications=notifications,
                account_id=account_id,
                consent_version=consent_version or "",
            )
            for user_id, telegram_id, consent_version, account_id, language, notifications in (
                await session.execute(query)
            )
        ]
