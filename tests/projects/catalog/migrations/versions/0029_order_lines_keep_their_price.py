"""Order lines keep their price."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"


def upgrade() -> None:
    op.add_column("purchase_line", sa.Column("unit_cents", sa.Integer))


def downgrade() -> None:
    op.drop_column("purchase_line", "unit_cents")
