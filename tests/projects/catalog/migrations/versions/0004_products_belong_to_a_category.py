"""Products belong to a category."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("product", sa.Column("category_id", sa.Integer, sa.ForeignKey("category.id")))


def downgrade() -> None:
    op.drop_column("product", "category_id")
