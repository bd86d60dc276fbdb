"""Products by vendor."""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"


def upgrade() -> None:
    op.create_index("ix_product_vendor_id", "product", ["vendor_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_product_vendor_id", table_name="product")
