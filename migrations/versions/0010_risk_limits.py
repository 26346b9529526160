"""risk limits: one home for a subscriber's sizing, and each account's trading-day start

Auto-execution's own risk % and volume cap become the subscriber's risk limits (``risk_limits``:
sizing ``risk_percent`` with that %, ``max_lots`` with that cap), which now size every order of
theirs; the per-decision copies of them go. Accounts get the start of the current trading day and
their equity then, for the daily loss limit.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_T = engine.store.db.UTCDateTime(timezone=True)
_M = engine.store.db.Money()


def upgrade() -> None:
    with op.batch_alter_table("execution_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("day_start_at", _T, nullable=True))
        batch_op.add_column(sa.Column("day_start_equity", _M, nullable=True))

    # A subscriber who set auto-execution's risk or cap keeps them, now as their risk limits
    # (risk_limits had no writer before this revision; a row there already is left as it is).
    op.execute(
        "INSERT INTO risk_limits (user_id, sizing, risk_percent, max_lots, instruments_off, updated_at) "
        "SELECT a.user_id, 'risk_percent', a.risk_percent, a.max_volume, '[]', a.updated_at "
        "FROM auto_trade_settings a "
        "WHERE NOT EXISTS (SELECT 1 FROM risk_limits r WHERE r.user_id = a.user_id)"
    )
    with op.batch_alter_table("auto_trade_settings", schema=None) as batch_op:
        batch_op.drop_column("max_volume")
        batch_op.drop_column("risk_percent")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("max_volume")
        batch_op.drop_column("risk_percent")


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("risk_percent", _M, nullable=True))
        batch_op.add_column(sa.Column("max_volume", _M, nullable=True))
    with op.batch_alter_table("auto_trade_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("risk_percent", _M, nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("max_volume", _M, nullable=True))
    op.execute(
        "UPDATE auto_trade_settings SET "
        "risk_percent = COALESCE((SELECT r.risk_percent FROM risk_limits r "
        "WHERE r.user_id = auto_trade_settings.user_id), risk_percent), "
        "max_volume = (SELECT r.max_lots FROM risk_limits r WHERE r.user_id = auto_trade_settings.user_id)"
    )
    with op.batch_alter_table("auto_trade_settings", schema=None) as batch_op:
        batch_op.alter_column("risk_percent", server_default=None)
    with op.batch_alter_table("execution_accounts", schema=None) as batch_op:
        batch_op.drop_column("day_start_equity")
        batch_op.drop_column("day_start_at")
