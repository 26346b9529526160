"""Execution accounts: the paper default, linking and unlinking MT5 logins, listing and removing.

One service for the bot's ``/account`` screen and the operator's ``tradebot account ...``
commands. A subscriber has at most one *active* account, the one their approvals execute on.
Linking MT5 first logs in through the MT5 broker (a failed login stores nothing), then keeps
the password encrypted with ``SECRET_KEY``; unlinking returns the subscriber to paper.
An account with open positions is never unlinked or removed: its positions would be orphaned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

from loguru import logger
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.users import new_user
from engine.brokers.base import AccountSnapshot, Broker, BrokerPosition
from engine.brokers.registry import BrokerRegistry
from engine.settings import BrokerKind, Settings
from engine.states import PositionStatus
from engine.store.audit import audit
from engine.store.crypto import SecretBox
from engine.store.db import Database
from engine.store.models import ExecutionAccount, Position, User

# (login, password, server, gateway) -> an MT5 broker, not yet connected.
Mt5Connector = Callable[[int, str, str, str | None], Awaitable[Broker]]

KIND_PAPER = "paper"
KIND_MT5 = "mt5"
VERIFY_TIMEOUT_SECONDS = 30.0


class AccountError(Exception):
    """A refused account operation; ``code`` is stable (the bot maps it to a localized message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class AccountView:
    account: ExecutionAccount
    snapshot: AccountSnapshot | None = None
    positions: list[BrokerPosition] = field(default_factory=list)
    error: str | None = None


def default_mt5_connector(settings: Settings) -> Mt5Connector:
    async def connect(login: int, password: str, server: str, gateway: str | None) -> Broker:
        from engine.brokers.mt5 import create_mt5_broker
        from engine.brokers.remote import configure_from_settings, module_for

        configure_from_settings(settings)
        return create_mt5_broker(
            module_for(settings.mt5_module, gateway),
            login=login,
            password=password,
            server=server,
            path=settings.mt5_path,
            magic=settings.mt5_magic,
        )

    return connect


class AccountService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        registry: BrokerRegistry,
        secrets_box: SecretBox | None,
        mt5_connector: Mt5Connector | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._registry = registry
        self._box = secrets_box
        self._connect_mt5 = mt5_connector or default_mt5_connector(settings)

    # ------------------------------------------------------------------ queries

    async def active_account(self, session: AsyncSession, user_id: int) -> ExecutionAccount | None:
        return await session.scalar(
            select(ExecutionAccount)
            .where(ExecutionAccount.owner_id == user_id, ExecutionAccount.active.is_(True))
            .order_by(ExecutionAccount.id.desc())
            .limit(1)
        )

    async def account_of(self, telegram_id: int) -> ExecutionAccount | None:
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            return None if user is None else await self.active_account(session, user.id)

    async def list_accounts(
        self, telegram_id: int | None = None, *, include_inactive: bool = False
    ) -> list[tuple[ExecutionAccount, User | None]]:
        async with self._db.session() as session:
            query = select(ExecutionAccount, User).outerjoin(User, User.id == ExecutionAccount.owner_id)
            if telegram_id is not None:
                query = query.where(User.telegram_id == telegram_id)
            if not include_inactive:
                query = query.where(ExecutionAccount.active.is_(True))
            rows = (await session.execute(query.order_by(ExecutionAccount.id))).all()
            return [(account, user) for account, user in rows]

    async def open_positions(self, session: AsyncSession, account_id: int) -> int:
        count = await session.scalar(
            select(func.count(Position.id)).where(
                Position.account_id == account_id,
                Position.status.in_([PositionStatus.OPEN.value, PositionStatus.CLOSING.value]),
            )
        )
        return int(count or 0)

    async def view(self, account: ExecutionAccount, seconds: float = 10.0) -> AccountView:
        """Balance, equity and open positions as the broker reports them now."""
        view = AccountView(account)
        try:
            async with asyncio.timeout(seconds):
                broker = await self._registry.get(account)
                view.snapshot = await broker.account()
                view.positions = await broker.positions()
        except Exception as exc:
            logger.warning("account {}: broker unavailable: {!r}", account.id, exc)
            view.error = str(exc) or type(exc).__name__
        return view

    # ------------------------------------------------------------------ changes

    async def ensure_default(self, session: AsyncSession, user: User) -> ExecutionAccount | None:
        """On consent: the user's active account, or a new paper one when ``BROKER=paper``."""
        account = await self.active_account(session, user.id)
        if account is not None or self._settings.broker is not BrokerKind.PAPER:
            return account
        return await self._new_paper(session, user, None, f"tg:{user.telegram_id}")

    async def _ensure_user(self, session: AsyncSession, telegram_id: int) -> User:
        user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
        if user is None:
            user = new_user(telegram_id)
            session.add(user)
            await session.flush()
            audit(session, "operator", "user.created", f"user:{user.id}", telegram_id=telegram_id)
        return user

    async def _deactivate_others(self, session: AsyncSession, user_id: int, keep: int | None) -> None:
        query = update(ExecutionAccount).where(
            ExecutionAccount.owner_id == user_id, ExecutionAccount.active.is_(True)
        )
        if keep is not None:
            query = query.where(ExecutionAccount.id != keep)
        await session.execute(query.values(active=False))

    async def _new_paper(
        self, session: AsyncSession, user: User, balance: Decimal | None, actor: str
    ) -> ExecutionAccount:
        amount = balance if balance is not None else self._settings.paper_balance
        if amount <= 0:
            raise AccountError("bad_balance", "the paper balance must be positive")
        await self._deactivate_others(session, user.id, None)
        account = ExecutionAccount(
            owner_id=user.id,
            kind=KIND_PAPER,
            label="paper",
            balance=amount,
            reference_equity=amount,
            high_water_equity=amount,
            active=True,
        )
        session.add(account)
        await session.flush()
        audit(
            session, actor, "account.created", f"account:{account.id}", kind=KIND_PAPER, balance=str(amount)
        )
        return account

    async def create_paper(
        self, telegram_id: int, balance: Decimal | None = None, actor: str = "operator"
    ) -> ExecutionAccount:
        async with self._db.session() as session:
            user = await self._ensure_user(session, telegram_id)
            return await self._new_paper(session, user, balance, actor)

    async def verify_mt5(
        self, login: int, password: str, server: str, gateway: str | None = None
    ) -> AccountSnapshot:
        """Log in through the MT5 broker and read the account; raises ``AccountError`` on failure."""
        broker: Broker | None = None
        try:
            broker = await self._connect_mt5(login, password, server, gateway)
            await asyncio.wait_for(broker.connect(), VERIFY_TIMEOUT_SECONDS)
            snapshot = await asyncio.wait_for(broker.account(), VERIFY_TIMEOUT_SECONDS)
        except AccountError:
            raise
        except Exception as exc:
            raise AccountError("login_failed", str(exc) or type(exc).__name__) from None
        finally:
            if broker is not None:
                try:
                    await broker.close()
                except Exception as exc:
                    logger.warning("closing the MT5 verification session failed: {!r}", exc)
        if str(snapshot.login) not in ("", str(login)):
            raise AccountError("login_failed", f"the terminal is logged in to {snapshot.login}, not {login}")
        return snapshot

    async def link_mt5(
        self,
        telegram_id: int,
        login: str | int,
        password: str,
        server: str,
        actor: str,
        gateway: str | None = None,
    ) -> tuple[ExecutionAccount, AccountSnapshot]:
        """Verify the login, then store it (password encrypted) as the user's active account.

        ``gateway``: the MT5 gateway (a name in MT5_GATEWAYS, or ``default``) the terminal is on;
        None uses MT5_MODULE as configured."""
        login_text = str(login).strip()
        server = server.strip()
        if not login_text.isdigit() or len(login_text) > 20:
            raise AccountError("bad_login", "the MT5 login is a number")
        if not server or len(server) > 128:
            raise AccountError("bad_server", "the MT5 server name is missing or too long")
        if not password:
            raise AccountError("bad_password", "the password is empty")
        if gateway is not None and gateway not in self._settings.gateway_names():
            known = ", ".join(self._settings.gateway_names()) or "none (MT5_GATEWAY_URL / MT5_GATEWAYS)"
            raise AccountError("bad_gateway", f"no MT5 gateway named {gateway!r}; configured: {known}")
        if self._box is None:
            raise AccountError("no_secret_key", "SECRET_KEY is not set: credentials cannot be stored")
        snapshot = await self.verify_mt5(int(login_text), password, server, gateway)
        encrypted = self._box.encrypt(password)
        async with self._db.session() as session:
            user = await self._ensure_user(session, telegram_id)
            account = await session.scalar(
                select(ExecutionAccount).where(
                    ExecutionAccount.owner_id == user.id,
                    ExecutionAccount.kind == KIND_MT5,
                    ExecutionAccount.login == login_text,
                    ExecutionAccount.server == server,
                )
            )
            if account is None:
                account = ExecutionAccount(owner_id=user.id, kind=KIND_MT5, login=login_text, server=server)
                session.add(account)
            account.label = f"MT5 {login_text}"
            account.gateway = gateway
            account.credentials_enc = encrypted
            account.currency = snapshot.currency or "USD"
            account.active = True
            if account.reference_equity is None:
                account.reference_equity = snapshot.equity
                account.high_water_equity = snapshot.equity
            await session.flush()
            await self._deactivate_others(session, user.id, account.id)
            audit(
                session,
                actor,
                "account.linked",
                f"account:{account.id}",
                kind=KIND_MT5,
                login=login_text,
                server=server,
                gateway=gateway,
            )
            account_id = account.id
        await self._registry.forget(account_id)  # credentials may have changed
        return account, snapshot

    async def unlink_mt5(self, telegram_id: int, actor: str) -> ExecutionAccount:
        """Back to paper: the MT5 account is deactivated and its stored password erased."""
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
            current = None if user is None else await self.active_account(session, user.id)
            if user is None or current is None or current.kind != KIND_MT5:
                raise AccountError("not_linked", "no MT5 account is linked")
            if await self.open_positions(session, current.id):
                raise AccountError("open_positions", "close the open positions of this account first")
            current.active = False
            current.credentials_enc = None
            audit(session, actor, "account.unlinked", f"account:{current.id}", login=current.login)
            old_id = current.id
            paper = await session.scalar(
                select(ExecutionAccount)
                .where(ExecutionAccount.owner_id == user.id, ExecutionAccount.kind == KIND_PAPER)
                .order_by(ExecutionAccount.id.desc())
                .limit(1)
            )
            if paper is None:
                paper = await self._new_paper(session, user, None, actor)
            else:
                paper.active = True
                audit(session, actor, "account.reactivated", f"account:{paper.id}")
        await self._registry.forget(old_id)
        return paper

    async def remove(self, account_id: int, actor: str = "operator") -> ExecutionAccount:
        """Retire an account (kept for history): inactive, credentials erased."""
        async with self._db.session() as session:
            account = await session.get(ExecutionAccount, account_id)
            if account is None or not account.active:
                raise AccountError("not_found", f"no active account {account_id}")
            if await self.open_positions(session, account.id):
                raise AccountError("open_positions", f"account {account_id} has open positions")
            account.active = False
            account.credentials_enc = None
            audit(session, actor, "account.removed", f"account:{account.id}", kind=account.kind)
        await self._registry.forget(account_id)
        return account
