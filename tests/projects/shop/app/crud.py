from __future__ import annotations

from sqlmodel import Session, func, select

from .models import Category, Item, User

ADMIN = "admin@example.com"


def create_user(session: Session, email: str, full_name: str = "") -> User:
    user = User(email=email, full_name=full_name)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def get_user(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email)).first()


def users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.id)))


def create_item(session: Session, owner: User, title: str, category: str | None = None) -> Item:
    category_id = None
    if category is not None:
        found = session.exec(select(Category).where(Category.name == category)).one()
        category_id = found.id
    assert owner.id is not None
    item = Item(title=title, owner_id=owner.id, category_id=category_id)
    session.add(item)
    session.commit()
    session.refresh(item)
    return item


def items_of(session: Session, owner: User) -> list[Item]:
    return list(session.exec(select(Item).where(Item.owner_id == owner.id).order_by(Item.id)))


def count(session: Session, model: type) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())
