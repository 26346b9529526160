"""trade management: signal updates, their per-position claim rows, subscribers' risk limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_T = engine.store.db.UTCDateTime(timezone=True)
_M = engine.store.db.Money()


def upgrade() -> None:
    op.create_table(
        "signal_updates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("signal_id", sa.String(length=36), nullable=False),
        sa.Column("producer_id", sa.String(length=36), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("position_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("received_at", _T, nullable=False),
        sa.Column("planned_at", _T, nullable=True),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name=op.f("fk_signal_updates_signal_id_signals")
        ),
        sa.ForeignKeyConstraint(
            ["producer_id"], ["producers.id"], name=op.f("fk_signal_updates_producer_id_producers")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_signal_updates_user_id_users")),
        sa.ForeignKeyConstraint(
            ["position_id"], ["positions.id"], name=op.f("fk_signal_updates_position_id_positions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_updates")),
        sa.UniqueConstraint("producer_id", "idempotency_key", name="uq_signal_updates_producer_key"),
        sa.UniqueConstraint("producer_id", "signature", name="uq_signal_updates_producer_signature"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_signal_updates_user_key"),
    )
    op.create_index(op.f("ix_signal_updates_signal_id"), "signal_updates", ["signal_id"])
    op.create_table(
        "position_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("update_id", sa.String(length=36), nullable=False),
        sa.Column("target", sa.String(length=48), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("position_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.String(length=31), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _T, nullable=False),
        sa.Column("claimed_at", _T, nullable=True),
        sa.Column("done_at", _T, nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["update_id"], ["signal_updates.id"], name=op.f("fk_position_changes_update_id_signal_updates")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["execution_accounts.id"],
            name=op.f("fk_position_changes_account_id_execution_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_position_changes_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["position_id"], ["positions.id"], name=op.f("fk_position_changes_position_id_positions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_changes")),
        sa.UniqueConstraint("update_id", "target", name="uq_position_changes_update_target"),
        sa.UniqueConstraint("client_id", name=op.f("uq_position_changes_client_id")),
    )
    op.create_index(op.f("ix_position_changes_update_id"), "position_changes", ["update_id"])
    op.create_index(op.f("ix_position_changes_account_id"), "position_changes", ["account_id"])
    op.create_index("ix_position_changes_status_next", "position_changes", ["status", "next_attempt_at"])
    op.create_table(
        "risk_limits",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sizing", sa.String(length=12), nullable=True),
        sa.Column("risk_percent", _M, nullable=True),
        sa.Column("fixed_lots", _M, nullable=True),
        sa.Column("max_lots", _M, nullable=True),
        sa.Column("max_positions", sa.Integer(), nullable=True),
        sa.Column("max_open_risk_percent", _M, nullable=True),
        sa.Column("daily_loss_percent", _M, nullable=True),
        sa.Column("min_rr", _M, nullable=True),
        sa.Column("instruments_off", sa.JSON(), nullable=False),
        sa.Column("paused_until", _T, nullable=True),
        sa.Column("updated_at", _T, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_risk_limits_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_risk_limits")),
    )


def downgrade() -> None:
    op.drop_table("risk_limits")
    op.drop_index("ix_position_changes_status_next", table_name="position_changes")
    op.drop_index(op.f("ix_position_changes_account_id"), table_name="position_changes")
    op.drop_index(op.f("ix_position_changes_update_id"), table_name="position_changes")
    op.drop_table("position_changes")
    op.drop_index(op.f("ix_signal_updates_signal_id"), table_name="signal_updates")
    op.drop_table("signal_updates")
