"""Telegram inbox; audit_log deletable only past the minimum retention window

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00

The inbox makes Telegram updates durable before they are confirmed. The audit_log guard still
refuses every UPDATE, and now refuses a DELETE of any row younger than
``AUDIT_RETENTION_MIN_DAYS`` (30): ``tradebot prune`` removes rows past ``AUDIT_RETENTION_DAYS``
(never below that floor), and nothing can remove a recent row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.store.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIN_DAYS = 30  # engine.store.retention.AUDIT_RETENTION_MIN_DAYS at the time of this migration


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_key", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", engine.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("received_at", engine.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_at", engine.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("bot_id", "update_id", name="uq_inbox_bot_update"),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_status_chat", ["status", "chat_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbox_received_at"), ["received_at"], unique=False)
    _audit_guard(keep_old_rows_deletable=True)


def downgrade() -> None:
    _audit_guard(keep_old_rows_deletable=False)
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_received_at"))
        batch_op.drop_index("ix_inbox_status_chat")
    op.drop_table("inbox")


def _audit_guard(*, keep_old_rows_deletable: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        when = f"WHEN OLD.at > datetime('now', '-{MIN_DAYS} days') " if keep_old_rows_deletable else ""
        op.execute(
            f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log {when}"
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )
        return
    past_window = (
        f"IF TG_OP = 'DELETE' AND OLD.at < now() - interval '{MIN_DAYS} days' THEN RETURN OLD; END IF; "
        if keep_old_rows_deletable
        else ""
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        f"BEGIN {past_window}RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql"
    )
