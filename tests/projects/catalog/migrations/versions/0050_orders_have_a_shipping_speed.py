"""Orders have a shipping speed."""

from __future__ import annotations

from alembic import op

revision = "0050"
down_revision = "0049"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE purchase ADD COLUMN shipping shipping_speed NOT NULL DEFAULT 'standard'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE purchase DROP COLUMN shipping")
