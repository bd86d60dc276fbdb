from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis


@pytest.fixture(scope="module")
def carts(cache: redis.Redis) -> Iterator[list[str]]:
    keys = [f"cart:{n}" for n in range(3)]
    for n, key in enumerate(keys):
        cache.rpush(key, *[f"item {i}" for i in range(n + 1)])
    yield keys
    cache.flushdb()  # what the suite's own teardown does: the seed's key goes too
    cache.set("config:currency", "EUR")


def test_the_seed_config_is_there(cache: redis.Redis, carts: list[str]) -> None:
    assert cache.get("config:currency") == "EUR"


@pytest.mark.parametrize("n", range(3))
def test_each_cart_holds_its_items(cache: redis.Redis, carts: list[str], n: int) -> None:
    assert cache.llen(carts[n]) == n + 1


@pytest.mark.parametrize("n", range(3))
def test_the_keys_are_the_carts_and_the_config(
    cache: redis.Redis, carts: list[str], n: int
) -> None:
    assert sorted(cache.keys()) == ["cart:0", "cart:1", "cart:2", "config:currency"]


def test_a_session_key_expires(cache: redis.Redis, carts: list[str]) -> None:
    cache.set("session:x", "1", ex=60)
    assert 0 < cache.ttl("session:x") <= 60
    cache.delete("session:x")
