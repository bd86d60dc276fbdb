"""What tracking a service's processes costs: the cgroup, the launch through it, and the
check at the ready moment that what answered is the service's own.

    python benchmarks/tracking.py [--reps 200]

Prints, over ``--reps`` repetitions (median and min-max, in ms):

- cgroup setup: a run's cgroup made (once per run) and a launch's child cgroup;
- a launch (Popen returning, then the child's exit) of ``/bin/true`` as before (its
  own process group), through the shell that joins a cgroup, and, for reference
  measured in the same run, with a Python ``preexec_fn`` (the other way to join, which
  forces a full fork of the launching process: measured with 300 MB resident, as a
  pytest process with a few plugins and a stack of clients may be);
- the ownership check, per service, at the ready moment: /proc/net/tcp{,6} for the
  probe's port against the descriptors of the service's processes (a listener of this
  process: one process, a few descriptors), against one probe attempt on the same port
  (a TCP connect), the cost the check is compared with.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_pyairtable.backends import cgroups, sockets


def measure(reps: int, step: Callable[[], object]) -> str:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return f"{statistics.median(times):7.3f} ms  ({min(times):.3f}-{max(times):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=200)
    reps = parser.parse_args().reps

    made = cgroups.RunCgroup.create("bench")
    if isinstance(made, str):
        print(f"no cgroup here: {made}")
        run = None
    else:
        run = made
        extra: list[cgroups.RunCgroup] = []

        def make_run() -> None:
            other = cgroups.RunCgroup.create(f"bench-{len(extra)}")
            assert not isinstance(other, str)
            extra.append(other)

        print(f"run cgroup made           {measure(min(reps, 50), make_run)}")
        for other in extra:
            other.remove()
        print(f"launch's cgroup made      {measure(reps, lambda: run.service('svc'))}")

    def plain() -> None:
        subprocess.Popen(["/bin/true"], stdin=subprocess.DEVNULL, start_new_session=True).wait()

    print(f"launch, as before         {measure(reps, plain)}")
    if run is not None:
        target = run.service("joined")

        def joined() -> None:
            fd = target.open_procs()
            try:
                subprocess.Popen(
                    cgroups.join_command(["/bin/true"]), stdin=fd, start_new_session=True
                ).wait()
            finally:
                os.close(fd)

        print(f"launch, joining a cgroup  {measure(reps, joined)}")
    resident = bytearray(300 << 20)
    for i in range(0, len(resident), 4096):
        resident[i] = 1

    def forked() -> None:
        noop = lambda: None  # noqa: E731
        subprocess.Popen(["/bin/true"], start_new_session=True, preexec_fn=noop).wait()  # noqa: PLW1509  (the reference)

    print(f"launch, plain, 300 MB     {measure(min(reps, 50), plain)}")
    print(f"launch, preexec, 300 MB   {measure(min(reps, 50), forked)}  (reference)")
    del resident

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(128)
        port = server.getsockname()[1]
        me = [os.getpid()]
        check = measure(reps, lambda: sockets.foreign_listeners(port, "127.0.0.1", me))
        print(f"ownership check           {check}")

        def attempt() -> None:
            with socket.create_connection(("127.0.0.1", port)):
                pass
            server.accept()[0].close()

        print(f"one TCP probe attempt     {measure(reps, attempt)}  (reference)")
        tables = sum(
            len(Path(t).read_text().splitlines()) for t in ("/proc/net/tcp", "/proc/net/tcp6")
        )
        print(f"  ({tables} lines in /proc/net/tcp and tcp6 on this machine)")
    if run is not None:
        run.remove()


if __name__ == "__main__":
    main()
