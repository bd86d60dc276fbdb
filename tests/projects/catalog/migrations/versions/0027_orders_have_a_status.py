"""Orders have a status."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"


def upgrade() -> None:
    op.add_column(
        "purchase", sa.Column("status", sa.String(16), nullable=False, server_default="new")
    )


def downgrade() -> None:
    op.drop_column("purchase", "status")
