"""A command probe's run, within the attempt's limits (bounded.py).

The command gets a session of its own, so what it starts goes with it: on the deadline
or Ctrl-C its whole process group is killed, and so is what it left running when it
exits (while its own exit status is still unread, which keeps the group's id from being
reused). Its output is read as it comes and only the last ``OUTPUT_KEPT`` bytes kept
(``capture_output`` kept all of it: ``yes`` as a probe grew the run by GB/s), and the
attempt ends when the command exits, even if something it started still holds the pipe.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence

from .bounded import AttemptEnded, Limits

OUTPUT_KEPT = 4096


def run_command(
    argv: Sequence[str], env: Mapping[str, str] | None, limits: Limits
) -> tuple[int, bytes]:
    """(exit code, the output's last OUTPUT_KEPT bytes); raises OSError when it cannot
    start, AttemptEnded (after killing its group) when the limits end it first."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=None if env is None else dict(env),
        start_new_session=True,
    )
    assert proc.stdout is not None
    kept = bytearray()
    fd = proc.stdout.fileno()
    try:
        with proc.stdout:
            open_pipe = True
            while not _exited(proc):
                wait = limits.left()
                if not open_pipe:
                    select.select([], [], [], min(wait, 0.005))
                    continue
                if select.select([fd], [], [], wait)[0]:
                    data = os.read(fd, 65536)
                    open_pipe = bool(data)
                    kept += data
                    del kept[:-OUTPUT_KEPT]
            while open_pipe and select.select([fd], [], [], 0)[0]:  # what it wrote last
                data = os.read(fd, 65536)
                open_pipe = bool(data)
                kept += data
                del kept[:-OUTPUT_KEPT]
    except AttemptEnded:
        _kill_group(proc)
        proc.wait()
        raise
    _kill_group(proc)  # what it started and left behind
    return proc.wait(), bytes(kept)


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether it has exited; where the system allows, without reading its status, so
    its id (its group's id) is not reused before the group is killed."""
    if not hasattr(os, "waitid"):  # macOS: looking reaps it
        return proc.poll() is not None
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is not None:
        return  # reaped: its id may belong to another process by now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
