"""Stock per warehouse."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.create_table(
        "stock",
        sa.Column(
            "product_id",
            sa.Integer,
            sa.ForeignKey("product.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("warehouse_id", sa.Integer, sa.ForeignKey("warehouse.id"), primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("stock")
