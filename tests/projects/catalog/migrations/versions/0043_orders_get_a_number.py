"""Orders get a number."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0043"
down_revision = "0042"


def upgrade() -> None:
    op.add_column(
        "purchase",
        sa.Column(
            "number", sa.BigInteger, server_default=sa.text("nextval('purchase_number_seq')")
        ),
    )


def downgrade() -> None:
    op.drop_column("purchase", "number")
