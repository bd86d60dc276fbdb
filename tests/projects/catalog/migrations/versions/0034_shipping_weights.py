"""Shipping weights."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"


def upgrade() -> None:
    op.add_column("product", sa.Column("weight_grams", sa.Integer))


def downgrade() -> None:
    op.drop_column("product", "weight_grams")
