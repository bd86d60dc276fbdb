"""Order lines."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"


def upgrade() -> None:
    op.create_table(
        "purchase_line",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "purchase_id",
            sa.Integer,
            sa.ForeignKey("purchase.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("product.id"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("purchase_line")
