from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("n", range(2))
def test_the_api_is_healthy(pyairtable_api: object, n: int) -> None:
    assert httpx.get(f"{pyairtable_api.url}/health", timeout=10).status_code == 200  # type: ignore[attr-defined]
