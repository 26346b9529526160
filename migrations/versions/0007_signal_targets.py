"""signal targets, break-even and trailing; one order per target

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("targets", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("breakeven_after", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("trail_points", sa.Integer(), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leg", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("targets", sa.JSON(), nullable=True))
        batch_op.drop_constraint("uq_orders_decision_id", type_="unique")
        batch_op.create_unique_constraint("uq_orders_decision_leg", ["decision_id", "leg"])
        batch_op.create_index("ix_orders_decision_id", ["decision_id"], unique=False)
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engine_sl", engine.store.db.Money(), nullable=True))
        batch_op.add_column(sa.Column("stop_managed", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("best_price", engine.store.db.Money(), nullable=True))
    op.create_table(
        "position_fills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("position_id", sa.Integer(), nullable=False),
        sa.Column("deal_ticket", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("volume", engine.store.db.Money(), nullable=False),
        sa.Column("price", engine.store.db.Money(), nullable=False),
        sa.Column("profit", engine.store.db.Money(), nullable=False),
        sa.Column("reason", sa.String(length=12), nullable=False),
        sa.Column("at", engine.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["execution_accounts.id"], name=op.f("fk_position_fills_account_id_execution_accounts")
        ),
        sa.ForeignKeyConstraint(["position_id"], ["positions.id"], name=op.f("fk_position_fills_position_id_positions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_fills")),
        sa.UniqueConstraint("account_id", "deal_ticket", name="uq_position_fills_account_deal"),
    )
    with op.batch_alter_table("position_fills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_position_fills_position_id"), ["position_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("position_fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_position_fills_position_id"))
    op.drop_table("position_fills")
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_column("best_price")
        batch_op.drop_column("stop_managed")
        batch_op.drop_column("engine_sl")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_decision_id")
        batch_op.drop_constraint("uq_orders_decision_leg", type_="unique")
        batch_op.create_unique_constraint("uq_orders_decision_id", ["decision_id"])
        batch_op.drop_column("targets")
        batch_op.drop_column("leg")
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_column("trail_points")
        batch_op.drop_column("breakeven_after")
        batch_op.drop_column("targets")
