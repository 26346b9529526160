"""The command layer: one implementation of every admin action, for Telegram, the CLI and the REST API.

Each action takes a ``Scope`` (everything, one account, one subscriber) and the actor
(``tg:<telegram id>``, ``cli`` or ``token:<name>``), acts on the database (and, for close-all,
on the brokers) and writes one audit line, ``admin.<action>``, with the scope as its target and
the result as its details; it returns plain data (``engine.ops.views``). So the same action
gives the same result and the same audit line from any front end.

Acting on the database is what lets the CLI work whether or not ``tradebot run`` is up: the
global pause and each account's trading state are read on every order (``engine.risk.chain``),
so a running instance obeys them from its next order; ``engine.paused``/``engine.resumed`` go
through the domain events its relay polls. Close-all acts directly through the brokers the
composition root builds from settings, on the exactly-once path of ``PositionCloser`` (a position
is claimed CLOSING before the broker is asked, and a close carries a client id derived from the
position), so a close-all from the CLI beside a running instance never closes anything twice.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from engine.accounts.names import actor_display
from engine.execution.positions import CloseSummary, PositionCloser, Refresh
from engine.ingest.producers import ProducerInfo, ProducerService
from engine.ops.queries import OpsQueries, book_currency, scope_accounts
from engine.ops.views import (
    AccountChange,
    AccountStatus,
    CloseAllResult,
    EngineStatus,
    PauseResult,
    PositionsReport,
    Scope,
)
from engine.risk.control import write_pause
from engine.risk.drawdown import DrawdownGuard, ResumeOutcome
from engine.states import TRADING, TradingState
from engine.store.audit import audit
from engine.store.db import Database
from engine.store.events import EventRelay
from engine.store.models import ExecutionAccount

CLOSEALL_REASON = "closeall"  # Position.close_reason of positions closed by an admin
PAUSED_BY_ADMIN = "admin"  # ExecutionAccount.paused_reason of an account an admin paused


class OpsService:
    def __init__(
        self,
        db: Database,
        queries: OpsQueries,
        closer: PositionCloser,
        guard: DrawdownGuard,
        producers: ProducerService,
        relay: EventRelay | None = None,
        refresh: Refresh | None = None,
    ) -> None:
        """``refresh``: reconciles an account (``engine.loop.trading.reconcile_hook``), so close-all
        also closes what filled or was traded by hand since the store last looked."""
        self._db = db
        self._queries = queries
        self._closer = closer
        self._guard = guard
        self._producers = producers
        self._relay = relay
        self._refresh = refresh

    # ------------------------------------------------------------------ reads

    async def status(self, *, limit: int = 20, live_seconds: float | None = 3.0) -> EngineStatus:
        return await self._queries.status(limit=limit, live_seconds=live_seconds)

    async def positions(self, scope: Scope | None = None, *, limit: int = 30) -> PositionsReport:
        return await self._queries.positions(scope or Scope.everything(), limit=limit)

    async def accounts(self, *, live_seconds: float | None = None) -> tuple[AccountStatus, ...]:
        status = await self._queries.status(limit=10_000, live_seconds=live_seconds)
        return status.accounts

    async def producers(self) -> tuple[ProducerInfo, ...]:
        return tuple(await self._producers.list())

    # ------------------------------------------------------------------ pause / resume

    async def pause(self, scope: Scope, actor: str) -> PauseResult:
        """Everything: the global pause. An account or a subscriber: ``reducing`` (closes only)."""
        async with self._db.session() as session:
            ids = await scope_accounts(session, scope)
            if ids is None:
                changed = await write_pause(session, True, actor)
                result = PauseResult(scope, "pause", changed)
            else:
                changes = []
                for account_id in ids:
                    account = await session.get(ExecutionAccount, account_id, with_for_update=True)
                    assert account is not None
                    if account.trading_state == TradingState.ACTIVE:
                        TRADING.move(account, TradingState.REDUCING, "trading_state")
                        account.paused_reason = PAUSED_BY_ADMIN
                        changes.append(AccountChange(account_id, "changed", account.trading_state))
                    else:
                        changes.append(AccountChange(account_id, "unchanged", account.trading_state))
                result = PauseResult(
                    scope, "pause", any(c.outcome == "changed" for c in changes), tuple(changes)
                )
            self._audit_pause(session, actor, result)
        self._notify()
        return result

    async def resume(self, scope: Scope, actor: str) -> PauseResult:
        """Everything: lift the global pause. An account or a subscriber: back to ``active``, unless
        the drawdown guard's hard tier has not re-armed (``still_in_drawdown``)."""
        async with self._db.session() as session:
            ids = await scope_accounts(session, scope)
            if ids is None:
                changed = await write_pause(session, False, actor)
                result = PauseResult(scope, "resume", changed)
                self._audit_pause(session, actor, result)
        if ids is not None:
            changes = []
            for account_id in ids:
                outcome = await self._guard.resume_account(account_id, actor)
                label = {
                    ResumeOutcome.RESUMED: "changed",
                    ResumeOutcome.STILL_IN_DRAWDOWN: "still_in_drawdown",
                }.get(outcome.outcome, "unchanged")
                async with self._db.session() as session:
                    account = await session.get(ExecutionAccount, account_id)
                    assert account is not None
                    changes.append(AccountChange(account_id, label, account.trading_state))
            result = PauseResult(
                scope, "resume", any(c.outcome == "changed" for c in changes), tuple(changes)
            )
            async with self._db.session() as session:
                self._audit_pause(session, actor, result)
        self._notify()
        return result

    @staticmethod
    def _audit_pause(session: AsyncSession, actor: str, result: PauseResult) -> None:
        audit(
            session,
            actor,
            f"admin.{result.action}",
            result.scope.describe(),
            changed=result.changed,
            accounts={str(c.account_id): c.outcome for c in result.accounts},
        )

    # ------------------------------------------------------------------ close-all

    async def close_all(self, scope: Scope, actor: str) -> CloseAllResult:
        """Cancel the pending orders and close the positions of the scope, through the closer."""
        async with self._db.session() as session:
            ids = await scope_accounts(session, scope)
            currency = await book_currency(session, ids)
            actor_name = await actor_display(session, actor)
        if ids is None:
            summary = await self._closer.close_everything(CLOSEALL_REASON, actor, refresh=self._refresh)
        else:
            summary = CloseSummary()
            for account_id in ids:
                summary.add(
                    await self._closer.close_account(
                        account_id, CLOSEALL_REASON, actor, refresh=self._refresh
                    )
                )
        result = CloseAllResult(
            scope=scope,
            requested=summary.requested,
            closed=summary.closed,
            failed=summary.failed,
            pnl=summary.pnl,
            orders_requested=summary.orders_requested,
            orders_cancelled=summary.orders_cancelled,
            orders_failed=summary.orders_failed,
            errors=tuple(summary.errors[:20]),
            currency=currency,
            actor=actor,
            actor_name=actor_name,
        )
        async with self._db.session() as session:
            audit(
                session,
                actor,
                "admin.closeall",
                scope.describe(),
                requested=result.requested,
                closed=result.closed,
                failed=result.failed,
                pnl=str(result.pnl),
                orders_requested=result.orders_requested,
                orders_cancelled=result.orders_cancelled,
                orders_failed=result.orders_failed,
            )
        return result

    def _notify(self) -> None:
        if self._relay is not None:
            self._relay.notify()
