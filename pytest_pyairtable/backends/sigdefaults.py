"""A service starts with its signals at their default actions, as a container's process
does, whatever this process inherited. An ignored signal survives exec: under
`nohup pytest` every service ignored SIGHUP, under a script's `pytest &` SIGINT and
SIGQUIT. A service stopped by one of those then did not end until the grace period ran
out and it was killed (a coverage-measured service lost its data on the way)."""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess

# What a stop or a user sends a service: the ones whose inherited ignore matters.
CHECKED = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def ignored() -> list[str]:
    """The names of the checked signals this process ignores (and a child would too)."""
    return [sig.name for sig in CHECKED if signal.getsignal(sig) is signal.SIG_IGN]


@functools.cache
def _resetting_env() -> str | None:
    """GNU env, if it resets signals (``--default-signal``: coreutils 8.31 and later)."""
    env = shutil.which("env")
    if env is None:
        return None
    try:
        done = subprocess.run(
            [env, "--default-signal", "--", "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return env if done.returncode == 0 else None


def with_default_signals(argv: list[str]) -> list[str]:
    """``argv``, run with every signal at its default action when this process ignores
    one a service may be stopped with (and env can reset them); else ``argv`` itself."""
    if not ignored():
        return argv
    env = _resetting_env()
    return [env, "--default-signal", "--", *argv] if env is not None else argv
