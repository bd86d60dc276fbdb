"""One price per product and currency."""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_index(
        "ix_price_product_id_currency", "price", ["product_id", "currency"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_price_product_id_currency", table_name="price")
