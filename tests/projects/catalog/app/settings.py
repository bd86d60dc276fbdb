"""The app's settings, read from the environment once, at import."""

from __future__ import annotations

import os

DB_PORT = os.environ.get("CATALOG_DB_PORT", "55632")
CACHE_PORT = os.environ.get("CATALOG_CACHE_PORT", "56479")
DATABASE_URL = os.environ.get("DATABASE_URL") or (
    f"postgresql+psycopg://catalog:catalog-secret@127.0.0.1:{DB_PORT}/catalog"
)
REDIS_URL = os.environ.get("REDIS_URL") or f"redis://127.0.0.1:{CACHE_PORT}/0"
