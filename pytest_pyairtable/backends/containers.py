"""Containers as running services, through the Engine API (dockerapi.py), and removing
the projects of killed runs (never a kept stack's: its record, beside the compose file
named in the project's labels, says it is kept). Which compose to run: composedetect.py.

(Over 350 lines: a container's stop, its end at the stack's end (through its pidfd where
that is provably the container's) and its restart policy share one state.)"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..model.spec import RestartPolicy
from . import markers
from .base import BaseRunning
from .builds import remove_run_names
from .containerstates import ContainerStates
from .dockerapi import CONFIG_LABEL, LIVE_STATES, PROJECT_LABEL, LogFollower
from .procfs import container_pidfd, pid_alive, pidfd_ended

# pyairtable-run-<pid>-<hex>-v2; pyairtable-run-<pid>-<hex> and pyairtable-<pid>-<hex>
# from earlier versions (the suffix keeps their looser clean-up off this version's)
_OUR_PROJECT = re.compile(r"^pyairtable-(?:run-)?((\d+)-[0-9a-f]+)(?:-v2)?$")


def _send(pidfd: int, name: str) -> bool:
    """``name`` (an image's STOPSIGNAL: SIGTERM, TERM, 15) sent through ``pidfd``; False
    where it names no signal (SIGRTMIN+3 goes through the engine), or the kernel refused."""
    name = name.strip().upper()
    try:
        if name.isdigit():
            sig = signal.Signals(int(name))
        else:
            sig = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
        signal.pidfd_send_signal(pidfd, sig)
    except (KeyError, ValueError, OSError, AttributeError):
        return False
    return True


def _kept(run_id: str, config_files: str) -> bool:
    """Whether a kept stack's record, beside the project's compose file, names this run."""
    return any(
        markers.recorded_run(markers.record_path(Path(f))) == run_id
        for f in config_files.split(",")
        if f
    )


def _of_stack(config_files: str, owner: markers.Owner) -> bool:
    """Whether compose made the project from ``owner``'s compose file (its labels name
    the files it read, the first one's directory being the project's)."""
    first = config_files.split(",", maxsplit=1)[0]
    return bool(first) and markers.Owner.of(Path(first)) == owner


def remove_stale_projects(api: Any, owner: markers.Owner | None, base: Path) -> list[str]:
    """Remove the containers and networks of this stack's projects whose pytest is gone
    (killed, and its reaper with it), unless they belong to a kept stack: one whose
    record names them, or, its record deleted, one this stack kept whose containers
    still run. Another project's containers are never touched, whatever their state."""
    if owner is None:
        return []
    projects: dict[str, list[dict[str, Any]]] = {}
    runs: dict[str, str] = {}
    for found in api.containers(all=True, filters={"label": PROJECT_LABEL}):
        labels = found.get("Labels") or {}
        project = labels.get(PROJECT_LABEL, "")
        match = _OUR_PROJECT.match(project)
        if match is None or not _of_stack(labels.get(CONFIG_LABEL, ""), owner):
            continue
        if not pid_alive(int(match.group(2))):
            projects.setdefault(project, []).append(found)
            runs[project] = match.group(1)
    kept = markers.kept_runs([base], owner) if projects else {}
    stale = []
    for project, found in projects.items():
        config = (found[0].get("Labels") or {}).get(CONFIG_LABEL, "")
        running = any(c.get("State") in LIVE_STATES for c in found)
        if _kept(runs[project], config) or (runs[project] in kept and running):
            continue
        remove_project(api, project)
        remove_run_names(api, project)  # names compose gave its builds (the reaper's too)
        stale.append(project)
    return sorted(stale)


def remove_project(api: Any, project: str, *, volumes: bool = False) -> None:
    """Remove a project's containers (all at once), then its networks (and volumes), by
    its label: what `compose down` removes, without compose's start-up."""
    label = {"label": f"{PROJECT_LABEL}={project}"}
    ids = [c["Id"] for c in api.containers(all=True, filters=label)]
    each(ids, lambda cid: api.remove_container(cid, force=True, v=volumes))
    for network in api.networks(filters=label):
        with contextlib.suppress(Exception):  # in use by a container of someone else's
            api.remove_network(network["Id"])
    if volumes:
        for volume in api.volumes(filters=label).get("Volumes") or ():
            with contextlib.suppress(Exception):
                api.remove_volume(volume["Name"])


def each(items: Iterable[str], call: Any) -> None:
    """``call(item)`` for every item at once (the engine works on them in parallel);
    an item that is already gone is no error."""

    def one(item: str) -> None:
        with contextlib.suppress(Exception):
            call(item)

    threads = [threading.Thread(target=one, args=(item,), daemon=True) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)


class ContainerService(BaseRunning):
    """A container, as the core sees a running service: started by this run (its log
    followed into a file) or adopted from a kept stack's record."""

    logs_late = True  # the engine's log, followed into the file

    def __init__(
        self,
        api: Any,
        service: str,
        cid: str,
        log_path: Path,
        states: ContainerStates | None,
        *,
        follower: LogFollower | None = None,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.api = api
        self.service = service
        self.cid = cid
        self.log_path = log_path
        self.states = states
        self.follower = follower
        self.inspected: dict[str, Any] = {}
        self.started_at = time.monotonic()  # (monotonic) the launch's, where it knows better
        self.first_wait = False  # set by a launch: its first wait may be foreseen
        self._paused = False
        self._polled: tuple[float, int | None] = (0.0, None)
        self._counted = 0.0  # when the engine's restart count was last asked
        self._engine_restarts = 0  # that count, once it said the policy is spent
        # The engine restarts it under its policy: an exit is final only once the policy
        # gives up, or once this tool stopped or killed it (no reason for a restart).
        self.policy = policy or RestartPolicy()
        self._first_start = states.starts(cid) if states is not None else 0
        self._followed = self._first_start  # the run whose output the follower reads
        self._ended = False

    def next_run(self) -> bool:
        """After one run of it ended: wait until its policy started it again (True), or
        until that is not to be (False)."""
        if self.states is None:
            return False
        while self.poll() is None:  # restarting, as far as its policy goes
            if self.states.await_start(self.cid, self._followed, timeout=0.2):
                self._followed = self.states.starts(self.cid)
                return not self._ended
        return False

    def refresh(self) -> dict[str, Any]:
        """The engine's view of it (config, ports, state), kept for later questions."""
        self.inspected = self._inspect()
        if self.states is not None:
            self.states.seed(self.cid, self.inspected)
        return self.inspected

    def _inspect(self) -> dict[str, Any]:
        """The engine's inspect of it. Podman reads the process's /proc while answering:
        a container that ended in that moment fails the call ("no such process"); asked
        again, it answers for the exited container."""
        for _ in range(2):
            try:
                return dict(self.api.inspect_container(self.cid))
            except Exception as exc:
                if "no such process" not in str(exc):
                    raise
        return dict(self.api.inspect_container(self.cid))  # a third time, for good

    def _inspected_state(self) -> dict[str, Any]:
        try:
            return dict(self._inspect().get("State") or {})
        except Exception:  # removed: as good as exited
            return {"Status": "removed", "ExitCode": -1}

    def poll(self) -> int | None:
        code = self._poll()
        restarting = code is not None and not self._ended
        if restarting and self.policy.restarts(code or 0, len(self.policy_restarts())):
            if self._engine_gave_up():
                return code
            return None  # the engine starts it again: restarting, not gone
        return code

    def _engine_gave_up(self) -> bool:
        """Whether the engine's own count says its policy is spent, where the events said
        one more restart is due: Podman drops a start or stop event now and then (about
        one policy run in 13 here), and its count goes on. Asked at most every 0.5 s."""
        now = time.monotonic()
        if now - self._counted < 0.5:
            return False
        self._counted = now
        try:
            inspected = self._inspect()
        except Exception:
            return False
        state = inspected.get("State") or {}
        if state.get("Status") not in ("exited", "dead") or state.get("Restarting"):
            return False
        code = int(state.get("ExitCode", 0) or 0)
        count = int(inspected.get("RestartCount") or 0)
        if self.policy.restarts(code, count):
            return False
        if self.states is not None:  # late events: give them a moment to land
            deadline = time.monotonic() + 2.0
            while (seen := self.states.starts(self.cid)) < self._first_start + count:
                left = deadline - time.monotonic()
                if left <= 0 or not self.states.await_start(self.cid, seen, timeout=left):
                    break
        self._engine_restarts = count
        return True

    def policy_restarts(self) -> list[tuple[float, int]]:
        if self.states is None:  # adopted from a record: the engine's count, no details
            count = int(self.inspected.get("RestartCount") or 0)
            return [(0.0, -1)] * count
        if self.policy.mode == "no":
            return []
        starts, exits = self.states.history(self.cid)
        mine = max(0, self._first_start - 1)  # the starts before this run of it
        seen = list(zip(starts[mine + 1 :], exits[mine:], strict=False))
        # restarts whose events never came (the engine counted them): when and how unknown
        return seen + [(0.0, -1)] * (self._engine_restarts - len(seen))

    def _poll(self) -> int | None:
        if self.states is not None and self.states.known(self.cid):
            return self.states.exit_code(self.cid)
        when, code = self._polled  # no events for it: inspect, briefly cached
        if time.monotonic() - when < 0.1:
            return code
        state = self._inspected_state()
        running = state.get("Status") not in ("exited", "dead", "removed", "created")
        code = None if running else int(state.get("ExitCode", -1))
        self._polled = (time.monotonic(), code)
        return code

    def wait(self, timeout: float | None = None) -> int | None:
        if self.policy.mode != "no" and not self._ended:
            return super().wait(timeout)  # through poll: an exit may be a restart
        if self.states is not None and self.states.known(self.cid):
            return self.states.wait_exit(self.cid, timeout)
        return super().wait(timeout)

    def health(self) -> str | None:
        if self.states is not None and self.states.known(self.cid):
            return self.states.health(self.cid)
        return (self._inspected_state().get("Health") or {}).get("Status")

    def last_health_output(self) -> str:
        log = (self._inspected_state().get("Health") or {}).get("Log") or [{}]
        return str(log[-1].get("Output", "")).strip()[-200:]

    def sync_logs(self, moment: float | None = None) -> None:
        """Before its log is read: the follower of an exited container finishes on its
        own (wait for it, or a tail may miss the container's last words); a running
        one's is brought up to the engine's newest line (it writes a little behind),
        after the engine has read what was written before ``moment``."""
        if self.follower is None:
            return
        if self._ended:  # stopped by this run (``end`` may return before the engine knows)
            self.wait(5)
        if self.poll() is not None:
            self.follower.join(3)
            return
        if moment is not None:
            self.follower.reach(moment)
        self.follower.catch_up(5)  # (a line without its newline is never written)

    def let_go(self) -> None:
        """The container is kept: its log goes on into the file after pytest."""
        if self.follower is not None:
            self.follower.hand_over()

    def end_follower(self) -> None:
        if self.follower is not None:
            self.follower.close()

    def stop(self, grace: float) -> int | None:
        """What `docker stop` does (the container's stop signal, SIGKILL after the grace
        period; a signal sent this way is no reason for its restart policy), but done
        once the process has died, as the event stream says: the engine's clean-up of
        the container goes on while the next service stops."""
        self._ended = True
        if self.states is None or not self.states.known(self.cid):
            with contextlib.suppress(Exception):  # already gone
                self.api.stop(self.cid, timeout=math.ceil(grace))
            self._polled = (0.0, None)
            return self.wait(30)
        self._signal_until(grace, lambda timeout: self.wait(timeout) is not None)
        return self.poll()

    def end(self, grace: float) -> None:
        """As ``stop``, but done the moment the kernel says its main process has ended
        (a pidfd), where this host sees the engine's processes: the engine's die event
        comes ~20 ms later, and on a chain each stop waits for the one before. Only
        where that process's end is the end of all of it: in a PID namespace of its own,
        whose other processes the kernel kills with it; and still its first run (a
        policy's restart is another process; a stop is no reason for a restart)."""
        host = self.inspected.get("HostConfig") or {}
        pid = int((self.inspected.get("State") or {}).get("Pid") or 0)
        own_pids = host.get("PidMode") in (None, "", "private")
        known = self.states is not None and self.states.known(self.cid)
        first_run = not self.policy_restarts()  # the process the inspect named still
        fd = container_pidfd(pid, self.cid) if own_pids and known and first_run else None
        if fd is None:
            self.stop(grace)
            return
        self._ended = True
        # Without a policy the engine has nothing to decide on a signal it did not send:
        # the kernel's, through the same pidfd (~4 ms to its end, ~18 ms through the API).
        direct = self.policy.mode == "no" and not self._paused

        def send(sig: str) -> None:
            if not (direct and _send(fd, sig)):
                self._api_kill(sig)

        try:
            self._signal_until(grace, lambda timeout: pidfd_ended(fd, timeout), send)
        finally:
            os.close(fd)

    def _api_kill(self, sig: str) -> None:
        with contextlib.suppress(Exception):  # not running (any more)
            self.api.kill(self.cid, signal=sig)

    def _signal_until(
        self,
        grace: float,
        ended: Callable[[float], bool],
        send: Callable[[str], None] | None = None,
    ) -> None:
        """Its stop signal, then SIGKILL once ``grace`` seconds pass without ``ended``
        (sent by ``send``, else through the engine)."""
        config = self.inspected.get("Config") or {}
        for sig in (config.get("StopSignal") or "SIGTERM", "SIGKILL"):
            (send or self._api_kill)(sig)
            if self._paused:
                with contextlib.suppress(Exception):  # a frozen process takes no signal
                    self.api.unpause(self.cid)
                self._paused = False
            if ended(grace if sig != "SIGKILL" else 30):
                return

    def kill(self) -> None:
        self._ended = True
        with contextlib.suppress(Exception):  # not running any more
            self.api.kill(self.cid)
        self._polled = (0.0, None)

    def pause(self) -> None:
        self.api.pause(self.cid)
        self._paused = True

    def resume(self) -> None:
        """Unpause it; one that is not paused (never was, or killed since) stays as it is,
        as SIGCONT leaves a process that is not stopped."""
        try:
            self.api.unpause(self.cid)
        except Exception as exc:
            if "not paused" not in str(exc) and "is not running" not in str(exc):
                raise
        self._paused = False

    def kept_state(self) -> dict[str, Any]:
        return {"cid": self.cid, "exit_code": self.poll()}
