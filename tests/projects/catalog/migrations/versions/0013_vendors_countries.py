"""Vendors' countries."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    op.add_column("vendor", sa.Column("country", sa.String(2)))


def downgrade() -> None:
    op.drop_column("vendor", "country")
