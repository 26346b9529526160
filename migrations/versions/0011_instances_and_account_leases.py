"""scale-out: running instances, and which instance owns each MT5 account (a lease)

Several ``tradebot run`` instances share one PostgreSQL database. Each one records itself in
``instances`` (seen at every lease renewal: leadership, accounts owned, the Telegram budget's
state) and holds the MT5 accounts it runs in ``account_leases`` until ``expires_at``, so only one
instance opens a terminal session per account (engine.loop.cluster). ``orders.submitted_by`` names
the instance that claimed an order for sending: one left SUBMITTING by an instance that died is
looked up at the broker at once, not after the stale threshold.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", engine.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", engine.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("leader", sa.Boolean(), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )
    op.create_index(op.f("ix_instances_seen_at"), "instances", ["seen_at"], unique=False)
    op.create_table(
        "account_leases",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("expires_at", engine.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", engine.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["execution_accounts.id"],
            name=op.f("fk_account_leases_account_id_execution_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_leases")),
    )
    op.create_index(op.f("ix_account_leases_owner"), "account_leases", ["owner"], unique=False)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitted_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("submitted_by")
    op.drop_index(op.f("ix_account_leases_owner"), table_name="account_leases")
    op.drop_table("account_leases")
    op.drop_index(op.f("ix_instances_seen_at"), table_name="instances")
    op.drop_table("instances")
