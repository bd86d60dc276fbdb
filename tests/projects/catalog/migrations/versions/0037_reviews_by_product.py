"""Reviews by product."""

from __future__ import annotations

from alembic import op

revision = "0037"
down_revision = "0036"


def upgrade() -> None:
    op.create_index("ix_review_product_id", "review", ["product_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_review_product_id", table_name="review")
