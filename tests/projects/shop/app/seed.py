"""The seed job: what every environment starts with (run once, after the migrations)."""

from __future__ import annotations

import redis
from sqlmodel import Session

from .crud import ADMIN
from .db import engine
from .models import Category, User
from .settings import settings


def main() -> None:
    with Session(engine) as session:
        session.add(User(email=ADMIN, full_name="Admin", is_superuser=True))
        for name in ("books", "games", "tools"):
            session.add(Category(name=name))
        session.commit()
    redis.Redis.from_url(settings.redis_url).set("config:currency", "EUR")


if __name__ == "__main__":
    main()
