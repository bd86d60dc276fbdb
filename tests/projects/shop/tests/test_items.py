from __future__ import annotations

from collections.abc import Iterator

import pytest
from app import crud
from app.models import Item, User
from sqlmodel import Session, delete


@pytest.fixture(scope="module")
def catalogue(db: Session, customers: list[User]) -> Iterator[list[Item]]:
    made = [
        crud.create_item(db, customers[n % 3], f"item {n}", ("books", "games", "tools")[n % 3])
        for n in range(6)
    ]
    yield made
    db.rollback()
    db.exec(delete(Item))
    db.commit()


@pytest.mark.parametrize("n", range(3))
def test_each_customer_owns_two_items(
    db: Session, customers: list[User], catalogue: list[Item], n: int
) -> None:
    assert [i.title for i in crud.items_of(db, customers[n])] == [f"item {n}", f"item {n + 3}"]


def test_the_catalogue_is_six_items(db: Session, catalogue: list[Item]) -> None:
    assert crud.count(db, Item) == 6


@pytest.mark.parametrize("n", range(6))
def test_each_item_has_its_category(db: Session, catalogue: list[Item], n: int) -> None:
    assert catalogue[n].category_id is not None


def test_an_item_for_a_customer(db: Session, customers: list[User], catalogue: list[Item]) -> None:
    item = crud.create_item(db, customers[1], "extra")
    assert len(crud.items_of(db, customers[1])) == 3
    db.delete(item)
    db.commit()


@pytest.mark.parametrize("n", range(5))
def test_item_count_is_stable(db: Session, catalogue: list[Item], n: int) -> None:
    assert crud.count(db, Item) == 6
