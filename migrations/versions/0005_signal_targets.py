"""signal targets, break-even and trailing; one order per target

Revision ID: 0005_signal_targets
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_signal_targets"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("targets", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("breakeven_after", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("trail_points", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_column("trail_points")
        batch_op.drop_column("breakeven_after")
        batch_op.drop_column("targets")
