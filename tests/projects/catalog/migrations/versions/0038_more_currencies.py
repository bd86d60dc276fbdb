"""More currencies."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0038"
down_revision = "0037"


def upgrade() -> None:
    table = sa.table("currency", sa.column("code"), sa.column("name"))
    op.bulk_insert(
        table,
        [
            {"code": "CHF", "name": "Swiss franc"},
            {"code": "SEK", "name": "Swedish krona"},
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM currency WHERE code IN ('CHF', 'SEK')")
