"""Data safety before a graceful stop (the seed's "backup checks"): a PostgreSQL
CHECKPOINT, and a Redis SAVE when it persists.

A built-in implementation of ``pytest_pyairtable_before_stop``, registered like any
plugin under the name ``pyairtable-data-safety``: it runs first (tryfirst), so a
project's own implementation finds its outcome in ``run.details["before_stop"]``; a
project that wants to replace it blocks it (``-p no:pyairtable-data-safety``) and
implements the hook itself. Failures are reported, never fatal: a stop must go on.
Emergency stops skip it, as they skip every before-stop hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ..engine.orchestrator import ServiceRun
    from ..model.spec import ServiceSpec

PLUGIN_NAME = "pyairtable-data-safety"
hookimpl = pluggy.HookimplMarker("pytest")


def checkpoint_postgres(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return "CHECKPOINT done"


def save_redis(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        config = client.config_get("save")
        aof = client.config_get("appendonly")
        if not config.get("save") and aof.get("appendonly") != "yes":
            return "not persistent: nothing to save"
        client.save()
        return "SAVE done"
    finally:
        client.close()


STEPS: dict[str, Callable[[str], str]] = {"postgres": checkpoint_postgres, "redis": save_redis}


def before_stop(svc: ServiceSpec) -> str | None:
    """Run the built-in step for this kind of service; return what happened, or None."""
    step = STEPS.get(svc.probe.kind)
    if step is None:
        return None
    try:
        return step(svc.probe.target)
    except Exception as exc:  # a data-safety step must never block the stop itself
        return f"skipped: {type(exc).__name__}: {exc}"


@hookimpl(tryfirst=True)
def pytest_pyairtable_before_stop(run: ServiceRun) -> None:
    if run.state.value != "ready":  # nothing to save in what never came up, or a job
        return
    outcome = before_stop(run.spec)
    if outcome:
        run.details["before_stop"] = outcome
