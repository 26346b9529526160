"""Billing: plans and entitlements, Telegram Stars payments, expiry reminders (see docs/billing.md).

``install_billing(services)`` loads the plans (``PLANS_FILE``), builds the billing, referral and
auto-execution services onto ``EngineServices`` and adds the entitlement gate to the
risk chain. It is idempotent: the composition root calls it, and the bot calls it again
for engines built without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.billing.payments import BillingService

if TYPE_CHECKING:
    from engine.services import EngineServices


def install_billing(services: EngineServices) -> BillingService:
    if services.billing is not None:
        return services.billing
    from engine.approvals.auto_execute import AutoExecutor
    from engine.billing.entitlements import EntitlementGate
    from engine.billing.plans import load_plans
    from engine.billing.referrals import ReferralService
    from engine.billing.reminders import BillingSweeper

    catalog = load_plans(services.settings.plans_file or None)
    billing = BillingService(services.db, catalog, services.relay)
    services.billing = billing
    services.billing_sweeper = BillingSweeper(services.db, catalog, services.relay)
    services.referrals = ReferralService(services.db)
    services.execution.chain.add(EntitlementGate(catalog), before="drawdown")
    services.auto_execute = AutoExecutor(
        services.db,
        services.settings,
        catalog,
        services.relay,
        services.execution.submit_in_background,
        chain=services.execution.chain,
    )
    return billing
