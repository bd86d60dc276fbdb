"""Titles are trimmed on every write."""

from __future__ import annotations

from alembic import op

revision = "0046"
down_revision = "0045"


def upgrade() -> None:
    op.execute(
        "CREATE TRIGGER product_touch BEFORE INSERT OR UPDATE ON product FOR EACH ROW EXECUTE FUNCTION product_touch()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER product_touch ON product")
