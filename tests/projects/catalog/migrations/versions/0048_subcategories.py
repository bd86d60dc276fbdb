"""Subcategories."""

from __future__ import annotations

from alembic import op

revision = "0048"
down_revision = "0047"


def upgrade() -> None:
    op.create_index("ix_category_parent_id", "category", ["parent_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_category_parent_id", table_name="category")
