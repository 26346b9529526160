"""ops: account trading state (active | reducing | halted) and admin API tokens

The boolean ``execution_accounts.paused`` becomes ``trading_state``: a paused account (the
drawdown guard's hard tier) becomes ``halted``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trading_state", sa.String(length=12), nullable=False, server_default="active")
        )
    op.execute("UPDATE execution_accounts SET trading_state = 'halted' WHERE paused")
    with op.batch_alter_table("execution_accounts", schema=None) as batch_op:
        batch_op.drop_column("paused")

    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", engine.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", engine.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", engine.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("digest", name=op.f("uq_admin_tokens_digest")),
        sa.UniqueConstraint("name", name=op.f("uq_admin_tokens_name")),
    )


def downgrade() -> None:
    op.drop_table("admin_tokens")
    with op.batch_alter_table("execution_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE execution_accounts SET paused = (trading_state <> 'active')")
    with op.batch_alter_table("execution_accounts", schema=None) as batch_op:
        batch_op.drop_column("trading_state")
