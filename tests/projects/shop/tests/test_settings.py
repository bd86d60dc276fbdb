from __future__ import annotations

import os
from pathlib import Path

from app.settings import settings
from sqlalchemy import text
from sqlmodel import Session


def test_the_settings_name_the_database_in_use(db: Session) -> None:
    in_use = db.exec(text("SELECT current_database()")).one()[0]  # type: ignore[call-overload]
    assert settings.database_url.rsplit("/", 1)[1] == in_use
    seen = os.environ.get("SHOP_SEEN")
    if seen:  # the harness that runs this suite asks which database each process used
        Path(seen, f"{os.getpid()}").write_text(in_use)
