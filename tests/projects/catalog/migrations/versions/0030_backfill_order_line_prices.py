"""Backfill order line prices."""

from __future__ import annotations

from alembic import op

revision = "0030"
down_revision = "0029"


def upgrade() -> None:
    op.execute("UPDATE purchase_line SET unit_cents = 0 WHERE unit_cents IS NULL")


def downgrade() -> None:
    op.execute("SELECT 1")
