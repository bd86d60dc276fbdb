"""The first countries."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    table = sa.table("country", sa.column("code"), sa.column("name"))
    op.bulk_insert(
        table,
        [
            {"code": "DE", "name": "Germany"},
            {"code": "FR", "name": "France"},
            {"code": "GB", "name": "United Kingdom"},
            {"code": "US", "name": "United States"},
            {"code": "NL", "name": "Netherlands"},
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM country WHERE code IN ('DE', 'FR', 'GB', 'US', 'NL')")
