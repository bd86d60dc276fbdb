"""Customers by email, once."""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"


def upgrade() -> None:
    op.create_index("ix_customer_email", "customer", ["email"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_customer_email", table_name="customer")
