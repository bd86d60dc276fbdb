"""Warehouse capacity."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0041"
down_revision = "0040"


def upgrade() -> None:
    op.add_column("warehouse", sa.Column("capacity", sa.Integer))


def downgrade() -> None:
    op.drop_column("warehouse", "capacity")
