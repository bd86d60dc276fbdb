"""The suite's fixtures, as such backends write them: the app's settings and engine
imported at the top (they read the environment then), one session for the whole run,
module-scoped rows, and teardowns that delete all rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from app.crud import ADMIN, create_user
from app.db import engine
from app.models import Item, User
from app.settings import settings
from sqlmodel import Session, delete


@pytest.fixture(scope="session", autouse=True)
def db(pyairtable_api: object) -> Iterator[Session]:
    with Session(engine) as session:
        yield session
        session.rollback()
        session.exec(delete(Item))
        session.exec(delete(User).where(User.email != ADMIN))
        session.commit()


@pytest.fixture(scope="session")
def cache() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def customers(db: Session) -> Iterator[list[User]]:
    """Three customers for the module's tests; all rows but the seed's go after it."""
    made = [create_user(db, f"customer{n}@example.com", f"Customer {n}") for n in range(3)]
    yield made
    db.rollback()
    db.exec(delete(Item))
    db.exec(delete(User).where(User.email != ADMIN))
    db.commit()
