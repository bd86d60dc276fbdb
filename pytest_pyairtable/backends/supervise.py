"""A host process under its compose restart policy, kept as the engine keeps a container:
when it exits on its own it is started again, after the engine's backoff (100 ms,
doubling to a minute, back to 100 ms once a run lasted 10 s); ``on-failure[:N]`` only
after a non-zero exit, at most N times. A stop or kill from this tool (the end of the
run, a fault, `down`) ends it for good, as `docker stop`/`docker kill` do: a policy never
fights a teardown or a fault.

While a restart is due, ``poll`` says None (the engine's "restarting"): the service is
not gone, and the tests that need it go on; once the policy gives up, the exit code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..model.spec import RestartPolicy
from .base import BaseRunning, Running

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # a run this long starts the backoff again from FIRST_DELAY


class Supervised(BaseRunning):
    def __init__(
        self, policy: RestartPolicy, first: Running, launch: Callable[[], Running]
    ) -> None:
        self.policy = policy
        self._launch = launch
        self._current = first
        self.log_path = first.log_path
        self.log_start = first.log_start
        self.restarted: list[tuple[float, int]] = []  # (wall clock, the exit that caused it)
        self._lock = threading.Lock()
        self._ended = threading.Event()  # stopped or killed by us: no more restarts
        self._started = time.monotonic()
        self._watcher = threading.Thread(target=self._watch, name="pyairtable-restart", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        delay = 0.0
        while True:
            code = self._current.wait(1.0)
            if self._ended.is_set():
                return
            if code is None:
                continue
            if time.monotonic() - self._started >= RESET_AFTER:
                delay = 0.0
            delay = FIRST_DELAY if delay == 0.0 else min(delay * 2, MAX_DELAY)
            if not self.policy.restarts(code, len(self.restarted)):
                return
            if self._ended.wait(delay):
                return
            with self._lock:
                if self._ended.is_set():
                    return
                self.restarted.append((time.time(), code))
                try:
                    self._current = self._launch()
                except Exception:  # cannot start again (a port taken): stays exited
                    self.restarted.pop()
                    return
                self._started = time.monotonic()

    @property
    def current(self) -> Running:
        """The launch it keeps now (the last one started)."""
        return self._current

    def policy_restarts(self) -> list[tuple[float, int]]:
        return list(self.restarted)

    def poll(self) -> int | None:
        with self._lock:
            code = self._current.poll()
            if code is None or self._ended.is_set():
                return code
            if self._watcher.is_alive() and self.policy.restarts(code, len(self.restarted)):
                return None  # restarting
            return code

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while (code := self.poll()) is None and time.monotonic() < deadline:
            self._current.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return code

    def _end(self) -> Running:
        with self._lock:  # no restart may begin once this is set
            self._ended.set()
            return self._current

    def stop(self, grace: float) -> int | None:
        return self._end().stop(grace)

    def end(self, grace: float) -> None:
        self._end().end(grace)

    def kill(self) -> None:
        self._end().kill()

    def let_go(self) -> None:
        """No restart from now on, and the launch it keeps left as it is: its backend
        closes (the run is over, or its stack kept: a kept stack's process goes on
        without its supervisor). A restart under way ends first; none begins after."""
        self._end()

    def pause(self) -> None:
        self._current.pause()

    def resume(self) -> None:
        self._current.resume()

    def sync_logs(self, moment: float | None = None) -> None:
        self._current.sync_logs(moment)

    def kept_state(self) -> dict[str, Any]:
        """A kept stack's process is kept without its supervisor: the process that held
        the policy is gone (document: policies hold while a run or `up` holds the stack)."""
        return self._current.kept_state()
