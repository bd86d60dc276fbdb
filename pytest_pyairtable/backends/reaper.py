"""The reaper: ends a run's services if pytest dies without stopping them (SIGKILL, OOM).

Started by a backend in its own session (its process: reaperproc.py), it reads commands
on stdin, a pipe from pytest. The kernel closes that pipe however pytest dies, so
end-of-file without a ``done`` first means pytest is gone: no polling, no delay. Then
it ends, through the one stopper, every recorded service and whatever else carries the
run's marker (a service that daemonised), and removes the run's directories. Commands:

    pg <pgid> <start-ticks> <service>   a service's process group to end
    cgroup <path>                       the run's cgroup: all in it to end, then removed
    dir <path>                          a directory of the run to remove
    project <name>                      a compose project whose containers to remove
    done                                clean exit: leave everything as it is
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import cgroups, stopper
from .procfs import RUN_ID_VAR, SERVICE_VAR

GRACE = 3.0
_PROCESS = Path(__file__).with_name("reaperproc.py")
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_MODULE_START = "from pytest_pyairtable.backends import reaperproc; reaperproc.main()"


class ReaperClient:
    """pytest's end of the pipe: start a reaper, tell it what to end, say ``done``.

    A reaper killed by someone else must not stop a clean shutdown, so writes to a closed
    pipe are ignored; several threads may launch services, so writes are serialised."""

    def __init__(self, run_id: str = "", environ: Mapping[str, str] | None = None) -> None:
        # Only the run id given here: one inherited from whoever started pytest would
        # make the reaper sweep someone else's run.
        env = {
            k: v for k, v in (environ or os.environ).items() if k not in (RUN_ID_VAR, SERVICE_VAR)
        }
        if run_id:
            env[RUN_ID_VAR] = run_id
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            _command(),
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,  # survives pytest's death, and its Ctrl-C
        )

    def tell(self, line: str) -> None:
        with self._lock:
            stdin = self._process.stdin
            if stdin is not None and not stdin.closed:
                with contextlib.suppress(OSError):
                    stdin.write(line.encode() + b"\n")
                    stdin.flush()

    EXIT_TIMEOUT = 10.0

    def done(self) -> None:
        """A clean end: the reaper exits and leaves everything as it is. It has exited
        when this returns (one that cannot, e.g. stopped, is killed), so nothing of the
        run outlives pytest."""
        self.tell("done")
        with self._lock, contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        if stopper.wait_child(self._process, self.EXIT_TIMEOUT) is None:
            self._process.kill()  # our own child: everything it guarded is stopped already
            self._process.wait()


def _command() -> list[str]:
    if _PROCESS.is_file():
        return [sys.executable, "-I", "-S", str(_PROCESS), _PACKAGE_PARENT]
    # Imported from an archive (a zip, a pex): no file to run; the module, as it is found.
    return [sys.executable, "-c", _MODULE_START]


def remove_project(project: str, *, volumes: bool = False, host: str = "") -> None:
    """Remove a compose project's containers and networks (and volumes) by its label, and
    the names of the images built for it, on the engine at ``host`` (else the one the
    docker CLI finds)."""
    label = f"label=com.docker.compose.project={project}"
    docker = ["docker", *(["-H", host] if host else [])]

    def ids(*listing: str) -> list[str]:
        done = subprocess.run(
            [*docker, *listing, "--filter", label],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return done.stdout.split()

    for kind, listing in (
        ("container", ("ps", "-aq")),
        ("network", ("network", "ls", "-q")),
        *((("volume", ("volume", "ls", "-q")),) if volumes else ()),
    ):
        found = ids(*listing)
        if found:
            rm = ["rm", "-f"] if kind == "container" else [kind, "rm"]
            subprocess.run([*docker, *rm, *found], capture_output=True, check=False, timeout=60)
    # The names compose gave the images it built for the project (<project>-<service>,
    # the project's own: its name is the run's); an image another name holds stays.
    names_of = f"reference={project}-*"
    listing = ["images", "--filter", names_of, "--format", "{{.Repository}}:{{.Tag}}"]
    listed = subprocess.run(
        [*docker, *listing],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout.split()
    names = sorted(n for n in listed if n.rsplit("/", 1)[-1].startswith(f"{project}-"))
    if names:
        subprocess.run([*docker, "rmi", *names], capture_output=True, check=False, timeout=60)


def reap(targets: list[stopper.Target], dirs: list[str]) -> None:
    if targets:
        stopper.end(targets, signal.SIGTERM, GRACE)
    for target in targets:
        if target.cgroup:
            cgroups.remove(target.cgroup)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def reap_commands(lines: Iterable[str]) -> int:
    """pytest is gone: end what its commands (all of them, ``done`` never came) name."""
    run_id = os.environ.get(RUN_ID_VAR, "")
    # Everything the run started, also what left its groups or was not announced yet.
    targets = [stopper.Target(run_id)] if run_id else []
    dirs: list[str] = []
    projects: list[tuple[str, str]] = []  # (project, the engine's host where it is not the default)
    for line in lines:
        command, _, rest = line.rstrip("\n").partition(" ")
        if command == "pg":
            pgid, ticks, service = [*rest.split(maxsplit=2), ""][:3]
            targets.append(stopper.Target(run_id, service, int(pgid), int(ticks)))
        elif command == "cgroup":  # whatever its services did to escape their group
            targets.append(stopper.Target(run_id, cgroup=rest))
        elif command == "dir":
            dirs.append(rest)
        elif command == "project":
            project, _, host = rest.partition(" ")
            projects.append((project, host))
    reap(targets, dirs)
    for project, host in projects:
        remove_project(project, host=host)
    return 0
