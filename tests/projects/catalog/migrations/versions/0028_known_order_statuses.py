"""Known order statuses."""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0027"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE purchase ADD CONSTRAINT purchase_status_known CHECK (status IN ('new', 'paid', 'shipped', 'cancelled'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE purchase DROP CONSTRAINT purchase_status_known")
