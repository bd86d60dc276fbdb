"""Prices in euros, as a view."""

from __future__ import annotations

from alembic import op

revision = "0040"
down_revision = "0039"


def upgrade() -> None:
    op.execute(
        "CREATE VIEW product_price_eur AS SELECT p.id, p.sku, p.title, pr.amount_cents FROM product p JOIN price pr ON pr.product_id = p.id AND pr.currency = 'EUR'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW product_price_eur")
