from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

url = os.environ["DATABASE_URL"]
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
