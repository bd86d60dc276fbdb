"""One engine for the process, with a connection pool, as the app and its tests share."""

from __future__ import annotations

from sqlmodel import create_engine

from .settings import settings

engine = create_engine(settings.database_url, pool_size=5, max_overflow=5)
