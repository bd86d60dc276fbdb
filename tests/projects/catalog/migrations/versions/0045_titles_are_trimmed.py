"""Titles are trimmed."""

from __future__ import annotations

from alembic import op

revision = "0045"
down_revision = "0044"


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION product_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := btrim(NEW.title); RETURN NEW; END $$"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION product_touch()")
