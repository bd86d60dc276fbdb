"""Categories nest."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0047"
down_revision = "0046"


def upgrade() -> None:
    op.add_column("category", sa.Column("parent_id", sa.Integer, sa.ForeignKey("category.id")))


def downgrade() -> None:
    op.drop_column("category", "parent_id")
