"""The app's settings, read from the environment once, at import (as pydantic-settings
does): a test process that imports this module from its conftest.py reads whatever its
environment says at that moment."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    database: str


def _read() -> Settings:
    port = os.environ.get("SHOP_DB_PORT", "55432")
    database = os.environ.get("POSTGRES_DB", "shop")
    url = os.environ.get("DATABASE_URL") or (
        f"postgresql+psycopg://shop:shop-secret@127.0.0.1:{port}/{database}"
    )
    cache = os.environ.get("SHOP_CACHE_PORT", "56379")
    redis_url = os.environ.get("REDIS_URL") or f"redis://127.0.0.1:{cache}/0"
    return Settings(url, redis_url, database)


settings = _read()
