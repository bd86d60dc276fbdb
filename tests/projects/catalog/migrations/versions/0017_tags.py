"""Tags."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"


def upgrade() -> None:
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(40), nullable=False, unique=True),
    )


def downgrade() -> None:
    op.drop_table("tag")
