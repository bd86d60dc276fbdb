"""Stars from 1 to 5."""

from __future__ import annotations

from alembic import op

revision = "0036"
down_revision = "0035"


def upgrade() -> None:
    op.execute("ALTER TABLE review ADD CONSTRAINT review_stars_range CHECK (stars BETWEEN 1 AND 5)")


def downgrade() -> None:
    op.execute("ALTER TABLE review DROP CONSTRAINT review_stars_range")
