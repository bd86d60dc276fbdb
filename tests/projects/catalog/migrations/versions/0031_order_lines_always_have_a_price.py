"""Order lines always have a price."""

from __future__ import annotations

from alembic import op

revision = "0031"
down_revision = "0030"


def upgrade() -> None:
    op.execute("ALTER TABLE purchase_line ALTER COLUMN unit_cents SET NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE purchase_line ALTER COLUMN unit_cents DROP NOT NULL")
