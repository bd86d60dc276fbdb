"""Stock is never negative."""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.execute("ALTER TABLE stock ADD CONSTRAINT stock_quantity_non_negative CHECK (quantity >= 0)")


def downgrade() -> None:
    op.execute("ALTER TABLE stock DROP CONSTRAINT stock_quantity_non_negative")
