"""Products by category."""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"


def upgrade() -> None:
    op.create_index("ix_product_category_id", "product", ["category_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_product_category_id", table_name="product")
