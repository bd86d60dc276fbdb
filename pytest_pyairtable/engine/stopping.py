"""The one stop order: every service only after everything that depends on it has
stopped, and concurrently where no edge says otherwise (not tier by tier: a slow
service on one branch does not hold up another branch). The end of a run, Ctrl-C,
SIGTERM and `pyairtable down` of a kept stack all stop through here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..model import graph


def in_reverse_order(
    edges: Mapping[str, Sequence[str]],
    stop_one: Callable[[str], None],
    then: Callable[[str], Any] | None = None,
) -> None:
    """Call ``stop_one(name)`` for each service of ``edges`` (service -> dependencies),
    each once its dependents' calls have returned; then ``then(name)``, which its
    dependencies do not wait for (what follows a stop, e.g. saving its log, is off the
    chain of stops). Neither must raise."""
    users = graph.dependents({n: [d for d in deps if d in edges] for n, deps in edges.items()})
    done: set[str] = set()
    cv = threading.Condition()

    def run(name: str) -> None:
        with cv:
            cv.wait_for(lambda: users[name] <= done)
        try:
            stop_one(name)
        finally:
            with cv:
                done.add(name)
                cv.notify_all()
        if then is not None:
            then(name)

    threads = [
        threading.Thread(target=run, args=(name,), name=f"pyairtable-stop-{name}", daemon=True)
        for name in edges
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
