"""The seed job: the catalogue every environment starts with (after the migrations).
Deterministic: the same rows, in the same order, at every run."""

from __future__ import annotations

import json

import redis
import sqlalchemy as sa

from .settings import DATABASE_URL, REDIS_URL

VENDORS = 20
PRODUCTS = 400


def main() -> None:
    engine = sa.create_engine(DATABASE_URL)
    with engine.begin() as conn:
        for n in range(1, 6):
            conn.execute(sa.text("INSERT INTO category (name) VALUES (:n)"), {"n": f"category {n}"})
        conn.execute(
            sa.text("INSERT INTO warehouse (code, city, capacity) VALUES (:c, :city, :cap)"),
            [
                {"c": "BER", "city": "Berlin", "cap": 5000},
                {"c": "LYS", "city": "Lyon", "cap": 3000},
            ],
        )
        countries = ["DE", "FR", "GB", "US", "NL"]
        conn.execute(
            sa.text("INSERT INTO vendor (name, country) VALUES (:name, :country)"),
            [{"name": f"vendor {n:02d}", "country": countries[n % 5]} for n in range(VENDORS)],
        )
        products = [
            {
                "sku": f"SKU-{n:05d}",
                "title": f"  product {n}  ",  # trimmed by the migrations' trigger
                "vendor": 1 + n % VENDORS,
                "category": 1 + n % 5,
                "grams": 100 + n,
            }
            for n in range(PRODUCTS)
        ]
        conn.execute(
            sa.text(
                "INSERT INTO product (sku, title, vendor_id, category_id, weight_grams) "
                "VALUES (:sku, :title, :vendor, :category, :grams)"
            ),
            products,
        )
        conn.execute(
            sa.text(
                "INSERT INTO price (product_id, currency, amount_cents) "
                "SELECT id, c.code, 100 * id + length(c.code) FROM product, "
                "(VALUES ('EUR'), ('USD')) AS c(code)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO stock (product_id, warehouse_id, quantity) "
                "SELECT p.id, w.id, (p.id * 7 + w.id) % 50 FROM product p, warehouse w"
            )
        )
    engine.dispose()
    cache = redis.Redis.from_url(REDIS_URL)
    cache.set("config:currency", "EUR")
    cache.set("catalog:featured", json.dumps([f"SKU-{n:05d}" for n in range(10)]))
    cache.close()


if __name__ == "__main__":
    main()
