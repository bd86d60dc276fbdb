"""What an xdist worker's own databases are called, and every variable and URL that names
them, rewritten for the worker (pure logic: no server)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from pytest_pyairtable.model.spec import StackSpec, load_stack
from pytest_pyairtable.state.workerenv import copy_name, plan


def stack(tmp_path: Path, text: str) -> StackSpec:
    path = tmp_path / "docker-compose.yml"
    path.write_text(textwrap.dedent(text))
    return load_stack(path, environ={})


SHOP = """
    services:
      db:
        image: postgres:16
        environment: {POSTGRES_USER: shop, POSTGRES_PASSWORD: pw, POSTGRES_DB: shop}
        ports: ["55432:5432"]
      cache:
        image: redis:7
        ports: ["56379:6379"]
      backend:
        image: x
        environment:
          DATABASE_URL: postgresql+psycopg://shop:pw@db:5432/shop
          ASYNC_URL: postgresql+asyncpg://shop:pw@db/shop?ssl=disable
          JDBC_URL: jdbc:postgresql://127.0.0.1:55432/shop
          DSN: host=db port=5432 dbname=shop user=shop
          POSTGRES_DB: shop
          POSTGRES_USER: shop
          POSTGRES_SERVER: db
          REDIS_URL: redis://cache:6379/0
          CELERY_BROKER_URL: redis://cache:6379/1
          RESULTS: redis://127.0.0.1:56379?db=1
          ELSEWHERE: postgresql://shop:pw@other-host:5432/shop
          OTHER_DB: postgresql://shop:pw@db:5432/analytics_not_copied
"""


def test_every_form_a_client_names_a_database_by_is_rewritten(tmp_path: Path) -> None:
    spec = stack(tmp_path, SHOP)
    env = plan(spec, ["gw0", "gw1"], {}).environ("gw1", {}, spec)
    assert conninfo_to_dict(env.pop("DSN")) == {
        "host": "127.0.0.1",
        "port": "55432",
        "dbname": "shop_gw1",
        "user": "shop",
    }
    assert env == {
        # the test process reaches the server at its published address, not db:5432
        "DATABASE_URL": "postgresql+psycopg://shop:pw@127.0.0.1:55432/shop_gw1",
        "ASYNC_URL": "postgresql+asyncpg://shop:pw@127.0.0.1:55432/shop_gw1?ssl=disable",
        "JDBC_URL": "jdbc:postgresql://127.0.0.1:55432/shop_gw1",
        "POSTGRES_DB": "shop_gw1",
        # Redis: each database the stack names gets its own, counted down from 15
        "REDIS_URL": "redis://127.0.0.1:56379/13",
        "CELERY_BROKER_URL": "redis://127.0.0.1:56379/12",
        "RESULTS": "redis://127.0.0.1:56379/12",
        # the database a client names is copied too (it is one of the server's)
        "OTHER_DB": "postgresql://shop:pw@127.0.0.1:55432/analytics_not_copied_gw1",
    }  # ELSEWHERE (another server), POSTGRES_USER and POSTGRES_SERVER are left alone


def test_this_process_own_values_win_and_those_naming_nothing_of_ours_stay(
    tmp_path: Path,
) -> None:
    spec = stack(tmp_path, SHOP)
    environ = {
        "DATABASE_URL": "postgresql://shop:pw@localhost:55432/shop",  # set by the developer
        "REDIS_URL": "redis://elsewhere:6379/0",  # not our server: left as it is
        "HOME": "/root",
    }
    env = plan(spec, ["gw0"], environ).environ("gw0", environ, spec)
    assert env["DATABASE_URL"] == "postgresql://shop:pw@localhost:55432/shop_gw0"
    assert "REDIS_URL" not in env and "HOME" not in env


def test_handles_urls_name_the_copy(tmp_path: Path) -> None:
    spec = stack(tmp_path, SHOP)
    layout = plan(spec, ["gw0", "gw1"], {})
    db = spec.services["db"].probe.target
    assert layout.url_for("db", db, "gw0").endswith("@127.0.0.1:55432/shop_gw0")
    assert layout.url_for("cache", spec.services["cache"].probe.target, "gw0").endswith("/15")
    assert sorted(layout.servers["db"].databases) == ["analytics_not_copied", "shop"]


def test_too_few_redis_databases_are_shared_and_said(tmp_path: Path) -> None:
    spec = stack(
        tmp_path,
        """
        services:
          cache:
            image: redis:7
            command: redis-server --databases 3
            ports: ["56379:6379"]
          app:
            image: x
            environment: {REDIS_URL: "redis://cache:6379/0", QUEUE: "redis://cache:6379/1"}
        """,
    )
    layout = plan(spec, ["gw0", "gw1"], {})  # 2 workers x 2 databases > the 1 left
    assert layout.shared == ["cache"]
    assert layout.environ("gw0", {}, spec) == {}


@pytest.mark.parametrize(
    ("database", "slot"), [("shop", "gw0"), ("d" * 60, "gw12"), ("é" * 40, "gw3")]
)
def test_copy_names_fit_postgres_identifiers(database: str, slot: str) -> None:
    name = copy_name(database, slot)
    assert len(name.encode()) <= 63 and name.endswith(f"_{slot}")
    assert copy_name(database, slot) == name  # the same in every process
    assert copy_name(database + "x", slot) != name
