"""A container's healthcheck, run by us inside the container at our own cadence.

The engine runs a healthcheck first one ``interval`` after the container starts, then
every ``interval``; compose then polls the engine's verdict. A service ready in 0.5 s
is seen after 1-2 s. We run the same test (the container's effective healthcheck: the
compose file's, else the image's) through the Engine API, as the engine would: as the
container's user, in its environment and working directory, ``CMD-SHELL`` through the
container's shell.

Each exec costs the engine a runtime process (~60 ms). So the test runs as a child of
one shell kept open in the container for the whole wait (one exec: execsession.py): an attempt then
costs what the test itself costs (~1 ms for ``sh -c``, ~10 ms for curl, 30-60 ms of CPU
for ``python3 -c "urllib.request.urlopen(...)"``). A container without a shell gets one
exec per attempt, at most every ``EXEC_GAP``. The engine's own verdict, from the event
stream, counts too: 'healthy' passes, 'unhealthy' ends the wait.

Attempts cost what they must. A test that targets a port the container does not listen
on yet is not run (healthgate.py): it runs the moment that port takes connections (one
that would pass whatever the port says is still seen: the engine runs it every
``interval``, and its verdict counts), or, foreseen from the service's earlier launches,
just ahead of the opening: a volley of runs in the kept shell's background, one of them
connecting just after it (readyforecast.py, healthvolley.py). The shell of a foreseen wait is opened
just before its runs, not as the container starts: an exec's CPU, taken from a service
that is starting, delays the very opening waited for (~17 ms a link, measured). Each
run's cost (its wall time, or the CPU the shell's ``times`` reports, whichever is more)
sets the least pause before the next: ``REST_PER_COST`` times the cost, at most
``REST_MAX`` and the test's interval, so a test holds at most a third of a core while
the services it waits for start on the same cores (a foreseen volley excepted: two runs
at once, for about one cost and the openings' spread); a shell built-in still runs
every few milliseconds. Each service's test has its own shell, exec and thread: independent
services' tests never wait on each other.
Where the engine gives no verdicts (Podman without systemd), the same verdict is judged
here as the engine would: ``retries`` failures in a row at its ``interval``, once
``start_period`` is over.

One module, one probe's state: the test, its pacing by cost, its gate and forecast, and
the verdict judged where the engine gives none; the kept shell (execsession.py) and the
volley (healthvolley.py) are apart.

The test is the compose file's, as written, where it declares one (an engine may store
an exec form altered: Podman 4 splits CMD's arguments on whitespace); an image's own
healthcheck is read from the container's inspect.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..probes.checks import BaseProbe, ProbeFailed
from ..probes.waiting import WATCH_EVERY, Gone
from .execsession import ShellSession, exec_once
from .healthgate import PortGate
from .healthvolley import run_volley
from .readyforecast import VOLLEY_FROM_COST, WAITS_INSIDE, Seen

if TYPE_CHECKING:
    from ..probes.checks import Watch
    from .containers import ContainerService
    from .readyforecast import ReadyTimes

NS = 1_000_000_000
EXEC_GAP = 0.1  # between attempts that each cost an exec (no shell to keep open)
REST_PER_COST = 2.0  # after an attempt, a pause at least twice what it cost ...
REST_MAX = 1.0  # ... up to this (and never above the check's own interval)
SESSION_AHEAD = 0.15  # a shell opens in ~50 ms: this long before the runs it is for
AWAITED_AGAIN = 0.02  # runs held back for a service nothing waits for: asked again


@dataclass(frozen=True)
class HealthTest:
    """A container's effective healthcheck, as the engine holds it (Config.Healthcheck)."""

    test: tuple[str, ...]  # ("CMD", argv...) or ("CMD-SHELL", command)
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    start_interval: float = 5.0
    retries: int = 3

    @classmethod
    def of(
        cls, inspected: dict[str, Any], declared: Mapping[str, Any] | None = None
    ) -> HealthTest | None:
        """The container's effective healthcheck; its test as ``declared`` in the compose
        file, where it declares one, and the engine's timings (the file's or the image's)."""
        config = (inspected.get("Config") or {}).get("Healthcheck") or {}
        test = tuple(config.get("Test") or ())
        written = tuple(str(t) for t in (declared or {}).get("test") or ())
        if test[:1] == written[:1] and len(written) >= 2:
            test = written
        if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
            return None  # none, NONE (disabled), or an image's inherited nothing

        def seconds(key: str, default: float) -> float:
            value = config.get(key) or 0
            return value / NS if value else default

        return cls(
            test=test,
            interval=seconds("Interval", 30.0),
            timeout=seconds("Timeout", 30.0),
            start_period=seconds("StartPeriod", 0.0),
            start_interval=seconds("StartInterval", 5.0),
            retries=int(config.get("Retries") or 3),
        )

    def argv(self, shell: list[str]) -> list[str]:
        if self.test[0] == "CMD":
            return list(self.test[1:])
        return [*shell, self.test[1]]

    def cadence(self) -> float:
        """How often the engine runs the test while the container starts."""
        return min(self.interval, self.start_interval) if self.start_period else self.interval

    def describe(self) -> str:
        shown = shlex.join(self.test[1:]) if self.test[0] == "CMD" else self.test[1]
        return f"healthcheck inside the container: {shown}"


class ContainerHealthcheck(BaseProbe):
    """The container's healthcheck test, run inside it at the gate's cadence, each
    attempt paced by what the last one cost (see the module's docstring)."""

    def __init__(
        self,
        api: Any,
        running: ContainerService,
        test: HealthTest,
        watch: Watch | None,
        *,
        engine_verdicts: bool = True,
        ready_times: ReadyTimes | None = None,
        ready_key: str = "",
        awaited: Callable[[], bool] = lambda: True,
    ) -> None:
        self.api = api
        self.awaited = awaited  # whether a test or a dependent waits for it yet
        self.running = running
        self.test = test
        self.watch = watch
        shell = (running.inspected.get("Config") or {}).get("Shell") or ["/bin/sh", "-c"]
        self.shell = list(shell)
        self.argv = test.argv(self.shell)
        # time for the engine's verdict on the same test (its checks each get `timeout`);
        # where the engine gives none, time for one check more, so that our own verdict
        # (judged at the engine's pace) comes before the budget's end
        self.engine_verdicts = engine_verdicts
        per_check = min(test.timeout, 10.0)
        self.extra_budget = test.retries * per_check + 2.0 if engine_verdicts else per_check + 1.0
        self._session: ShellSession | None = None
        self._no_session = False
        self._started = time.monotonic()
        self._failing: list[float] = []  # when the failures in a row at `interval` came
        self._rest = 0.0
        self._wall = 0.0
        self.attempts = 0  # the test's runs (a gated attempt is not one)
        self.last_cost = 0.0  # what the last run cost: its wall time, or its CPU if more
        # What the next launch's forecast learns from this wait (readyforecast.py):
        self.ready_times, self.ready_key = ready_times, ready_key
        self._seen_closed = False  # an opening seen after a refusal is one to keep
        self._open_cost: float | None = None  # a pass that began with the port open
        self._waits_inside = False
        self._fails_fast = False  # a foreseen run failed before the opening: no waiting inside
        self._pass_began = 0.0  # when the foreseen run that passed began
        self._foreseen: float | None = None  # when to run ahead of the port opening
        self._forecast = ready_times.forecast(ready_key) if ready_times else None
        self._volleys = False  # the foreseen runs are a volley, not one run
        self._plan(watch if isinstance(watch, PortGate) else None)

    def rest(self) -> float:
        return self._rest

    def check(self) -> dict[str, Any]:
        self._rest = 0.0
        verdict = self.running.health()
        if verdict == "healthy":
            return {"engine_health": verdict}
        if verdict == "unhealthy":
            raise Gone(
                "was reported unhealthy by the engine's healthcheck "
                f"({self.running.last_health_output() or 'no output'})",
                exited=False,
            )
        gate = self.watch if isinstance(self.watch, PortGate) else None
        self._open_session_when_due(gate)  # while the service starts, not once it is up
        foreseen = False
        if gate is not None and not gate.open_now():
            self._seen_closed = True
            foreseen = self._foreseen_now()
            if not foreseen:
                # The test's own port refuses: it cannot pass, and costs the container
                # nothing. (A test that passes whatever that port says is still seen: the
                # engine runs it too, every interval, and its verdict counts above.)
                host, port = gate.address
                self._judge(f"{host}:{port} refused connections")
                raise ProbeFailed(f"{host}:{port} does not accept connections yet")
        try:
            if foreseen and gate is not None:
                ahead = self._volley if self._volleys and self._session else self._looking_at
                code, output = ahead(gate)
            else:
                code, output = self._attempt()
        except ProbeFailed as exc:  # it hung: a failed check, for the engine too
            self._judge(str(exc))
            raise
        if code == 0:
            self._failing.clear()
            self._passed(foreseen, gate)
            return {"healthcheck": "passed inside the container"}
        if foreseen and gate is not None and gate.open_now():
            # Early by a little: the port opened during the run. The next runs at once,
            # not after the rest its cost asks (the gate's opening is past: its watch
            # would not end that pause).
            self._rest, gate.due = 0.0, 0.0
        tail = output.strip()[-200:]
        failure = f"healthcheck exit code {code}" + (f": {tail}" if tail else "")
        self._judge(failure)
        raise ProbeFailed(failure)

    def _passed(self, foreseen: bool, gate: PortGate | None) -> None:
        if not foreseen:
            self._open_cost = self._wall  # (a foreseen run's wall time holds the wait)
            return
        opened = gate.opened_at if gate is not None else None
        if self._forecast is not None and opened is not None and not self._fails_fast:
            late = time.monotonic() - max(opened, self._pass_began)  # (one begun at the opening)
            self._waits_inside = late > WAITS_INSIDE * self._forecast.cost + 0.02

    def _plan(self, gate: PortGate | None) -> None:
        """When to run ahead of the foreseen opening (its shell opened ``SESSION_AHEAD``
        before): a volley's first run, or the one run of a test that costs too little for
        a volley to gain more than it spends."""
        if self._forecast is None or gate is None:
            return
        self._volleys = self._forecast.cost >= VOLLEY_FROM_COST
        ahead = self._forecast.volley()[0] if self._volleys else self._forecast.lead()
        self._foreseen = self.running.started_at + ahead
        gate.due = self._foreseen - SESSION_AHEAD

    def _open_session_when_due(self, gate: PortGate | None) -> None:
        """The shell kept for the test: at once, or just ahead of the runs foreseen (an
        exec's CPU, taken while the service starts, delays the opening it waits for).
        Without a shell, the one run foreseen is aimed a little late."""
        if self._session is not None or self._no_session:
            return
        if self._foreseen is None or gate is None:
            self._open_session()
            return
        if time.monotonic() < self._foreseen - SESSION_AHEAD and not gate.open_now():
            return
        self._open_session()
        if self._session is None and self._volleys and self._forecast is not None:
            self._foreseen, self._volleys = self.running.started_at + self._forecast.lead(), False
        gate.due = self._foreseen

    def _foreseen_now(self) -> bool:
        """Whether the runs foreseen ahead of the port's opening are due (their
        connections come after their start-up: see readyforecast.py). Only for a service
        something waits for: one nothing waits for yet (a leaf beside a chain) gets the
        run at the opening, soon enough for it, and its runs ahead would take the cores
        the awaited services start on; asked again shortly, as a test may come to it,
        until the latest opening foreseen (after which the gate's run it is)."""
        now = time.monotonic()
        if self._foreseen is None or now < self._foreseen:
            return False
        if not self.awaited():
            assert self._forecast is not None  # (what _foreseen was planned from)
            forecast = self._forecast
            latest = self.running.started_at + forecast.opens_after + forecast.width / 2
            if now < latest and isinstance(self.watch, PortGate):
                self.watch.due = now + AWAITED_AGAIN
            else:
                self._foreseen = None
            return False
        self._foreseen = None
        return True

    def _looking_at(self, gate: PortGate) -> tuple[int, str]:
        """The foreseen run, the port looked at meanwhile: when it opened is what the next
        forecast needs, whether this run passes or not (were only the runs that missed to
        say it, the forecasts would drift late)."""
        done = threading.Event()

        def look() -> None:
            while not gate.open_now() and not done.wait(WATCH_EVERY):
                pass

        looking = threading.Thread(target=look, name="pyairtable-opening", daemon=True)
        looking.start()
        self._pass_began = time.monotonic()
        try:
            return self._attempt()
        finally:
            done.set()
            looking.join()
            gate.open_now()  # (a run that passed within a look's pause: open by now)

    def _volley(self, gate: PortGate) -> tuple[int, str]:
        """The foreseen runs as a volley (healthvolley.py): (0, "") or the last
        failure's code; the gate's refusal where no run could start."""
        assert self._session is not None and self._forecast is not None
        slots = self.ready_times.volley_slots if self.ready_times else None
        try:
            command = shlex.join(self.argv)
            volley = run_volley(
                self._session, gate, command, self._forecast, timeout=self.test.timeout, slots=slots
            )
        except (TimeoutError, EOFError, OSError):
            self._session.close()  # a run hung: its shell is given up, the next opens another
            self._session = None
            raise ProbeFailed(f"healthcheck did not finish within {self.test.timeout:g}s") from None
        finally:
            self._rest = 0.0  # missed: the gate's opening ends the pause
        self.attempts += volley.runs
        self._fails_fast = self._fails_fast or volley.failed_early
        self._pass_began = volley.pass_began
        if not volley.runs:  # others' volleys held every slot: as if not foreseen
            host, port = gate.address
            raise ProbeFailed(f"{host}:{port} does not accept connections yet")
        return volley.code, ""

    def _judge(self, failure: str) -> None:
        """Where the engine gives no verdicts, give its verdict here: unhealthy after
        ``retries`` failures in a row, each at least ``interval`` after the one before,
        none counted during ``start_period`` (as the engine counts its own checks)."""
        if self.engine_verdicts:
            return
        now = time.monotonic()
        if now - self._started < self.test.start_period:
            return
        if not self._failing or now - self._failing[-1] >= self.test.interval:
            self._failing.append(now)
        if len(self._failing) >= max(1, self.test.retries):
            raise Gone(
                f"failed its healthcheck {len(self._failing)} times in a row, "
                f"{self.test.interval:g}s apart, which makes it unhealthy (judged by "
                f"pyairtable as the engine would; this engine runs no healthchecks): {failure}",
                exited=False,
            )

    def _open_session(self) -> None:
        if self._session is not None or self._no_session:
            return
        try:
            self._session = ShellSession(
                self.api, self.running.cid, self.shell[0], min(self.test.timeout, 10.0)
            )
        except (TimeoutError, EOFError, OSError):
            self._no_session = True  # no shell to keep open: one exec per attempt
        except Exception as exc:  # the engine refused (container not running, gone)
            raise ProbeFailed(f"healthcheck could not run: {str(exc)[:200]}") from None

    def _attempt(self) -> tuple[int, str]:
        started = time.monotonic()
        cpu: float | None = None
        try:
            if self._session is not None:
                result = self._in_session()
                cpu = self._session.last_cpu if self._session is not None else None
                return result
            return self._exec()
        finally:
            # What this attempt took from the cores is what the next one waits for:
            # a 40 ms interpreter start-up is not repeated every few milliseconds.
            ended = time.monotonic()
            self.attempts += 1
            self._wall = ended - started
            self.last_cost = max(self._wall, cpu or 0.0)
            floor = EXEC_GAP if self._session is None else 0.0  # each exec costs the engine
            bound = min(REST_MAX, self.test.cadence())
            self._rest = max(floor, min(REST_PER_COST * self.last_cost, bound))

    def _in_session(self) -> tuple[int, str]:
        assert self._session is not None
        timeout = self.test.timeout
        try:
            return self._session.run(shlex.join(self.argv), timeout)
        except (TimeoutError, EOFError, OSError):
            # a test hung (its shell is given up: the next attempt opens another),
            # or the container stopped
            self._session.close()
            self._session = None
            raise ProbeFailed(f"healthcheck did not finish within {timeout:g}s") from None

    def _exec(self) -> tuple[int, str]:
        timeout = self.test.timeout
        try:
            return exec_once(self.api, self.running.cid, self.argv, timeout)
        except TimeoutError:
            raise ProbeFailed(f"healthcheck did not finish within {timeout:g}s") from None
        except Exception as exc:
            raise ProbeFailed(f"healthcheck could not run: {str(exc)[:200]}") from None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        gate = self.watch if isinstance(self.watch, PortGate) else None
        if self.ready_times is not None and gate is not None:
            opened = gate.opened_at if self._seen_closed else None
            after = None if opened is None else opened - self.running.started_at
            seen = Seen(after, self._open_cost, self._waits_inside)
            self.ready_times.observe(self.ready_key, seen)
