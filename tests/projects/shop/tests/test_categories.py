from __future__ import annotations

import pytest
from app import crud
from app.models import Category
from sqlmodel import Session, select


def test_three_seed_categories(db: Session) -> None:
    assert [c.name for c in db.exec(select(Category).order_by(Category.name))] == [
        "books",
        "games",
        "tools",
    ]


@pytest.mark.parametrize("name", ["books", "games", "tools"])
def test_each_category_is_found(db: Session, name: str) -> None:
    assert db.exec(select(Category).where(Category.name == name)).one()


def test_a_new_category(db: Session) -> None:
    category = Category(name="garden")
    db.add(category)
    db.commit()
    assert crud.count(db, Category) == 4
    db.delete(category)
    db.commit()


@pytest.mark.parametrize("n", range(5))
def test_category_count_is_stable(db: Session, n: int) -> None:
    assert crud.count(db, Category) == 3
