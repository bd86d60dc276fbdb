"""Prices."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "price",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "product_id",
            sa.Integer,
            sa.ForeignKey("product.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("currency", sa.String(3), sa.ForeignKey("currency.code"), nullable=False),
        sa.Column("amount_cents", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("price")
