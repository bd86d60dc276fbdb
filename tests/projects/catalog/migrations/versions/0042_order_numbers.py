"""Order numbers."""

from __future__ import annotations

from alembic import op

revision = "0042"
down_revision = "0041"


def upgrade() -> None:
    op.execute("CREATE SEQUENCE purchase_number_seq START 1000")


def downgrade() -> None:
    op.execute("DROP SEQUENCE purchase_number_seq")
