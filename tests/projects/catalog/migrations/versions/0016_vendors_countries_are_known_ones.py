"""Vendors' countries are known ones."""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE vendor ADD CONSTRAINT vendor_country_fkey FOREIGN KEY (country) REFERENCES country (code)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE vendor DROP CONSTRAINT vendor_country_fkey")
