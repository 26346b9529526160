"""Billing: plans and entitlements, Telegram Stars payments, expiry reminders (see docs/billing.md).

Opt-in: with ``BILLING=off`` (the default, and no ``PLANS_FILE``) the catalog is one free plan with
every entitlement, so nothing is gated and nothing is for sale. The composition root
(``tradebot.app.build_services``) builds the billing, referral and auto-execution services once.
"""
