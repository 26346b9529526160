"""The engine's services, built once by the composition root (``tradebot.app.build_services``).

Every field is required: the root builds each service exactly once, from settings, and nothing is
filled in or patched later. Handlers receive this object as the ``engine`` argument (aiogram
workflow data); nothing reaches for a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.accounts.service import AccountService
    from engine.accounts.subscribers import SubscriberService
    from engine.analytics import AnalyticsService
    from engine.approvals.auto_execute import AutoExecutor
    from engine.approvals.fanout import FanoutPlanner
    from engine.approvals.service import ApprovalService
    from engine.billing.payments import BillingService
    from engine.billing.referrals import ReferralService
    from engine.billing.reminders import BillingSweeper
    from engine.brokers.pricefeed import PaperMarket
    from engine.brokers.registry import BrokerRegistry
    from engine.execution.positions import PositionCloser
    from engine.execution.service import ExecutionService
    from engine.ingest.producers import ProducerService
    from engine.ingest.service import IngestService
    from engine.loop.cluster import Cluster
    from engine.loop.trading import TradingLoop
    from engine.management.changes import ChangeService
    from engine.management.updates import UpdateService
    from engine.ops.service import OpsService
    from engine.reconcile.service import Reconciler
    from engine.risk.control import EngineControl
    from engine.risk.drawdown import DrawdownGuard
    from engine.risk.limits import RiskLimitsService
    from engine.settings import Settings
    from engine.store.crypto import SecretBox
    from engine.store.db import Database
    from engine.store.events import EventRelay


@dataclass(frozen=True)
class EngineServices:
    settings: Settings
    db: Database
    relay: EventRelay
    secrets: SecretBox | None  # None when SECRET_KEY is not set (no MT5 links, no producers)
    control: EngineControl  # global pause/resume
    brokers: BrokerRegistry  # one broker per execution account, made on first use
    cluster: Cluster  # this instance among several: its name, the MT5 accounts it owns (leases)
    paper_market: PaperMarket  # where paper accounts get prices, and whether that market is simulated
    execution: ExecutionService  # idempotent order submission
    closer: PositionCloser  # closes positions (close-all, drawdown guard, subscriber's Close)
    accounts: AccountService  # execution accounts (bot /account, `tradebot account`)
    subscribers: SubscriberService  # Telegram subscribers, consent, preferences
    approvals: ApprovalService  # decisions on signals, exactly once
    fanout: FanoutPlanner  # plans an accepted signal's fan-out (the bot subscribes it to the relay)
    drawdown: DrawdownGuard  # drawdown guard; resume_account() for /resume
    reconciler: Reconciler  # store vs broker, per account
    trading_loop: TradingLoop  # started and stopped by the runtime
    producers: ProducerService  # producer credentials (webhook auth, `tradebot producer`)
    ingest: IngestService  # validate, dedupe and store incoming signals
    billing: BillingService  # plans, Stars payments, refunds (billing off: one plan with everything)
    billing_sweeper: BillingSweeper  # expiry reminders and drops to the free plan
    referrals: ReferralService  # referral ledger, summaries, payouts
    auto_execute: AutoExecutor  # opt-in auto-execution (relay subscriber)
    risk_limits: RiskLimitsService  # each subscriber's own limits (/settings → Risk), offer filter
    analytics: AnalyticsService  # metrics, charts, exports, daily summaries (/stats)
    updates: UpdateService  # producer updates and subscriber controls, stored once
    changes: ChangeService  # those updates applied to each position exactly once
    ops: OpsService  # the command layer: status, positions, pause/resume, close-all

    @property
    def billing_enabled(self) -> bool:
        """Plans, /subscribe and entitlement gating apply (``BILLING=on`` or a ``PLANS_FILE``)."""
        return self.billing.catalog.billing

    async def close(self) -> None:
        """Release what the services hold (broker connections, worker threads); the caller disposes
        of the database afterwards."""
        await self.cluster.release_all(self.brokers.forget)  # leases taken on first use, if any
        await self.brokers.close()
        self.analytics.close()
        await self.paper_market.close()
