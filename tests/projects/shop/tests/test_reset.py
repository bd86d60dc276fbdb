"""Tests that start from the data the migrations and the seed left: a reset before each,
while the session-scoped session and the engine's pool stay connected (the pool has no
pre-ping: a connection a reset had ended would fail the test that next used it)."""

from __future__ import annotations

import pytest
from app import crud
from app.db import engine
from app.models import Category, Item
from sqlalchemy import event, text
from sqlmodel import Session

CONNECTIONS: list[object] = []  # every connection the pool opened in this process
event.listen(engine, "connect", lambda dbapi, record: CONNECTIONS.append(dbapi))
AFTER_FIRST: list[int] = []


@pytest.mark.pyairtable_reset("db")
@pytest.mark.parametrize("n", range(4))
def test_starts_from_the_seed(db: Session, n: int) -> None:
    admin = crud.get_user(db, crud.ADMIN)
    assert admin is not None and admin.full_name == "Admin"
    assert crud.count(db, Item) == 0 and crud.count(db, Category) == 3
    user = crud.create_user(db, f"reset{n}@example.com")
    assert user.id == 2  # the sequence was put back too
    item = crud.create_item(db, user, "gone after the test")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM item")).scalar_one() == 1
    db.delete(item)
    db.delete(user)
    admin.full_name = "Changed"  # left behind: the next reset puts it back
    db.add(admin)
    db.commit()
    if not AFTER_FIRST:
        AFTER_FIRST.append(len(CONNECTIONS))
    assert len(CONNECTIONS) == AFTER_FIRST[0]  # no reconnection: the resets ended none
