"""Shipping speeds."""

from __future__ import annotations

from alembic import op

revision = "0049"
down_revision = "0048"


def upgrade() -> None:
    op.execute("CREATE TYPE shipping_speed AS ENUM ('standard', 'express')")


def downgrade() -> None:
    op.execute("DROP TYPE shipping_speed")
