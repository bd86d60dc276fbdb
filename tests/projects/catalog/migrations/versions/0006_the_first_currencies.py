"""The first currencies."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    table = sa.table("currency", sa.column("code"), sa.column("name"))
    op.bulk_insert(
        table,
        [
            {"code": "EUR", "name": "Euro"},
            {"code": "USD", "name": "US dollar"},
            {"code": "GBP", "name": "Pound sterling"},
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM currency WHERE code IN ('EUR', 'USD', 'GBP')")
