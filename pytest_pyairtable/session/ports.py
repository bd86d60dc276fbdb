"""``--pyairtable-free-ports``: free host ports instead of the defaults a compose file
writes, so that two copies of a project run side by side with no edit.

Which variables: every one that alone makes the host port of a ``ports:`` entry and
has a default (``"${API_PORT:-8000}:8000"``), unless the user set it (shell, ``.env`` or
env file): that value is the user's choice (model/portvars.py). A literal port is kept.

How the value reaches every place the variable is used (ports, environment, local
commands, probes, ``x-pyairtable`` blocks): the stack is loaded again with the chosen
values as if they were set in the environment. Nothing is patched afterwards.

Keeping the ports free between choosing and binding: each chosen port is held by a
socket bound to it (with SO_REUSEADDR, so the service's own bind, or a server that sets
it, still succeeds) until its service is launched; and for the whole run by a lock, an
abstract Unix socket named after the port, which another copy of this tool checks before
choosing it (it vanishes with the process, leaving no file). Ports are chosen below the
kernel's ephemeral range, where outgoing connections do not take them. A port taken all
the same is named in the launch error as a lost race, with the fix.
"""

from __future__ import annotations

import contextlib
import random
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

_LOWEST = 15000  # below it, well-known servers' ports are dense
_TRIES = 500


def _candidate_range() -> range:
    """Below the ephemeral range (outgoing connections' source ports), from _LOWEST."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    return range(_LOWEST, ephemeral) if ephemeral - _LOWEST >= 1000 else range(0)


class PortHolds:
    """The ports chosen for a run, held (see the module's docstring) until released."""

    def __init__(self, source: str = "chosen") -> None:
        self.source = source  # chosen here, or given by the owner, or a kept stack's record
        self.chosen: dict[str, int] = {}  # variable -> port
        self._holds: dict[int, socket.socket] = {}
        self._locks: dict[int, socket.socket] = {}

    @classmethod
    def choose(cls, names: Iterable[str], avoid: Iterable[int] = ()) -> PortHolds:
        """A free port for each name, none of them in ``avoid`` (the file's literal ports)."""
        holds = cls()
        taken = set(avoid)
        candidates = _candidate_range()
        rng = random.SystemRandom()
        for name in names:
            for _ in range(_TRIES):
                port = rng.choice(candidates) if candidates else 0
                if port in taken:
                    continue
                held = holds.hold(port)
                if held is not None:
                    holds.chosen[name] = held
                    taken.add(held)
                    break
            else:
                holds.close()
                from ..support.errors import PrerequisiteError

                raise PrerequisiteError(
                    f"--pyairtable-free-ports found no free port for {name} in {_TRIES} tries. "
                    f"Fix: set {name} yourself, or free some ports."
                )
        return holds

    @classmethod
    def given(cls, chosen: Mapping[str, int], source: str = "owner") -> PortHolds:
        """Ports another process chose (the stack's owner, a kept stack): used, not held."""
        holds = cls(source)
        holds.chosen = dict(chosen)
        return holds

    def hold(self, port: int) -> int | None:
        """Lock and hold ``port`` (0: any the kernel gives); None if it is not free."""
        lock: socket.socket | None = None
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))  # no SO_REUSEADDR: fails while anything has it
            port = probe.getsockname()[1]
            if sys.platform.startswith("linux"):
                lock = socket.socket(socket.AF_UNIX)
                lock.bind(f"\0pytest-pyairtable/port/{port}")  # another copy holds it?
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError:
            probe.close()
            if lock is not None:
                lock.close()
            return None
        self._holds[port] = probe
        if lock is not None:
            self._locks[port] = lock
        return port

    def environ(self) -> dict[str, str]:
        return {name: str(port) for name, port in self.chosen.items()}

    def variable_of(self, port: int) -> str | None:
        return next((n for n, p in self.chosen.items() if p == port), None)

    def release(self, ports: Iterable[int]) -> None:
        """Let a service bind these now (its launch); the locks stay until ``close``."""
        for port in ports:
            hold = self._holds.pop(port, None)
            if hold is not None:
                hold.close()

    def close(self) -> None:
        for sock in [*self._holds.values(), *self._locks.values()]:
            with contextlib.suppress(OSError):
                sock.close()
        self._holds.clear()
        self._locks.clear()

    def describe(self) -> str:
        return ", ".join(f"{n}={p}" for n, p in sorted(self.chosen.items()))


def plan_ports(
    files: Sequence[Path],
    *,
    env_file: Path | None,
    profiles: Sequence[str],
    environ: Mapping[str, str],
    reuse: Mapping[str, int] | None = None,
) -> PortHolds:
    """The project's port variables (portvars.py) with a port each: ``reuse``'s (a kept
    stack's choice) when it names them all, else freshly chosen and held. Raises the
    loader's ConfigError for a broken file."""
    from ..model.loader import load_model
    from ..model.portvars import port_variables
    from ..model.project import Inputs

    inputs = Inputs(
        files=tuple(files),
        env_files=None if env_file is None else (env_file,),
        profiles=tuple(profiles),
        environ=dict(environ),
    )
    model = load_model(inputs, strict=False)
    wanted = port_variables(model.record.port_templates, model.variables)
    if reuse and wanted and all(name in reuse for name in wanted):
        return PortHolds.given({name: int(reuse[name]) for name in wanted}, source="record")
    literal = {
        int(str(entry.get("published")).split("-")[0])
        for body in model.services.values()
        for entry in body.get("ports") or ()
        if str(entry.get("published", "")).split("-")[0].isdigit()
    }
    return PortHolds.choose(wanted, avoid=literal)
