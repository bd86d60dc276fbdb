from __future__ import annotations

import pytest
from app import crud
from app.models import User
from sqlmodel import Session


def test_the_seed_admin_is_there(db: Session, customers: list[User]) -> None:
    admin = crud.get_user(db, crud.ADMIN)
    assert admin is not None and admin.is_superuser


def test_customers_and_admin_are_all_the_users(db: Session, customers: list[User]) -> None:
    assert [u.email for u in crud.users(db)] == [crud.ADMIN] + [c.email for c in customers]


@pytest.mark.parametrize("n", range(3))
def test_each_customer_is_found_by_email(db: Session, customers: list[User], n: int) -> None:
    found = crud.get_user(db, f"customer{n}@example.com")
    assert found is not None and found.id == customers[n].id


@pytest.mark.parametrize("n", range(3))
def test_customers_are_active(db: Session, customers: list[User], n: int) -> None:
    assert customers[n].is_active and not customers[n].is_superuser


def test_a_new_user_counts_once(db: Session, customers: list[User]) -> None:
    before = crud.count(db, User)
    user = crud.create_user(db, "newcomer@example.com")
    assert crud.count(db, User) == before + 1 == 5
    db.delete(user)
    db.commit()


def test_renaming_a_customer(db: Session, customers: list[User]) -> None:
    customer = customers[0]
    customer.full_name = "Renamed"
    db.add(customer)
    db.commit()
    assert crud.get_user(db, customer.email).full_name == "Renamed"  # type: ignore[union-attr]
    customer.full_name = "Customer 0"
    db.add(customer)
    db.commit()


def test_deactivating_a_customer(db: Session, customers: list[User]) -> None:
    customer = customers[2]
    customer.is_active = False
    db.add(customer)
    db.commit()
    assert sum(1 for u in crud.users(db) if not u.is_active) == 1
    customer.is_active = True
    db.add(customer)
    db.commit()


@pytest.mark.parametrize("n", range(8))
def test_user_count_is_stable(db: Session, customers: list[User], n: int) -> None:
    assert crud.count(db, User) == 4
