"""When customers joined."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"


def upgrade() -> None:
    op.add_column("customer", sa.Column("created_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("customer", "created_at")
