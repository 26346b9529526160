"""The engine's services, built once by the composition root and handed to the bot as one object.

Handlers receive it as the ``engine`` argument (aiogram workflow data); nothing reaches for a
module-level global.
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
    from engine.brokers.registry import BrokerRegistry
    from engine.execution.positions import PositionCloser
    from engine.execution.service import ExecutionService
    from engine.loop.trading import TradingLoop
    from engine.reconcile.service import Reconciler
    from engine.risk.control import EngineControl
    from engine.risk.drawdown import DrawdownGuard
    from engine.settings import Settings
    from engine.store.crypto import SecretBox
    from engine.store.db import Database
    from engine.store.events import EventRelay


@dataclass
class EngineServices:
    settings: Settings
    db: Database
    relay: EventRelay
    control: EngineControl
    brokers: BrokerRegistry
    execution: ExecutionService
    closer: PositionCloser
    secrets: SecretBox | None
    # Each part that adds a service adds a typed field here (with a default), never a dict of extras.
    accounts: AccountService | None = None  # execution accounts (bot /account, `tradebot account`)
    subscribers: SubscriberService | None = None  # Telegram subscribers, consent, preferences
    approvals: ApprovalService | None = None  # decisions on signals, exactly once
    fanout: FanoutPlanner | None = None  # plans an accepted signal's fan-out (the bot subscribes it)
    drawdown: DrawdownGuard | None = None  # drawdown guard; resume_account() for /resume
    reconciler: Reconciler | None = None  # store vs broker, per account
    trading_loop: TradingLoop | None = None  # started and stopped by the runtime
    billing: BillingService | None = None  # plans, Stars payments, refunds (engine.billing.install_billing)
    billing_sweeper: BillingSweeper | None = None  # expiry reminders and drops to the free plan
    referrals: ReferralService | None = None  # referral ledger, summaries, payouts
    auto_execute: AutoExecutor | None = None  # opt-in auto-execution (relay subscriber)
    analytics: AnalyticsService | None = None  # metrics, charts, exports, daily summaries (/stats)
