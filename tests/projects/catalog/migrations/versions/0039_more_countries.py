"""More countries."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0039"
down_revision = "0038"


def upgrade() -> None:
    table = sa.table("country", sa.column("code"), sa.column("name"))
    op.bulk_insert(
        table,
        [
            {"code": "CH", "name": "Switzerland"},
            {"code": "SE", "name": "Sweden"},
            {"code": "IT", "name": "Italy"},
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM country WHERE code IN ('CH', 'SE', 'IT')")
