"""A customer's orders, newest first."""

from __future__ import annotations

from alembic import op

revision = "0032"
down_revision = "0031"


def upgrade() -> None:
    op.create_index(
        "ix_purchase_customer_id_placed_at", "purchase", ["customer_id", "placed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_purchase_customer_id_placed_at", table_name="purchase")
