"""The fixtures: one session fixture per service, generated from the compose file at
configure time, each requesting the fixtures of its ``depends_on`` (so pytest knows the
closure every test needs); ``pyairtable_stack``; and the fault and reset fixtures.

The first service fixture set up starts the closure of *all* collected tests at once
(the orchestrator runs it concurrently); the others only wait.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from ...model.names import fixture_name
from ...session.lease import EXCLUSIVE
from .roles import STASH, Role

if TYPE_CHECKING:
    from ...engine.faults import Faults
    from ...state.reset import Reset

FIXTURES_PLUGIN = "pyairtable-fixtures"


def services_module(role: Role) -> types.ModuleType:
    """A plugin module holding a session fixture for each service, and pyairtable_stack."""
    module = types.ModuleType("pytest_pyairtable._fixtures")
    topology = role.runtime.topology()
    for name, deps in topology.items():
        func = _service_fixture(name, [fixture_name(d) for d in deps])
        setattr(
            module,
            fixture_name(name),
            pytest.fixture(scope="session", name=fixture_name(name))(func),
        )
    stack = _stack_fixture([fixture_name(n) for n in topology])
    module.pyairtable_stack = pytest.fixture(scope="session", name="pyairtable_stack")(stack)  # type: ignore[attr-defined]
    return module


def _signature(names: list[str]) -> inspect.Signature:
    params = ["request", "_pyairtable_session", *names]
    return inspect.Signature([inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in params])


def _service_fixture(service: str, deps: list[str]) -> Any:
    def fixture(*, _pyairtable_session: Role, **_: Any) -> Any:
        return _pyairtable_session.handle(service)

    fixture.__name__ = fixture_name(service)
    fixture.__doc__ = f"Session fixture: the '{service}' service, ready, with its dependencies."
    fixture.__signature__ = _signature(deps)  # type: ignore[attr-defined]
    return fixture


def _stack_fixture(all_fixtures: list[str]) -> Any:
    def fixture(*, _pyairtable_session: Role, **handles: Any) -> Any:
        return _pyairtable_session.stack_handles()

    fixture.__doc__ = "Session fixture: every active service of the stack, ready."
    fixture.__signature__ = _signature(all_fixtures)  # type: ignore[attr-defined]
    return fixture


@pytest.fixture(scope="session")
def _pyairtable_session(request: pytest.FixtureRequest) -> Generator[Role, None, None]:
    """Owns the running stack: stops it, in reverse order, after the last test."""
    role = request.config.stash[STASH]
    runtime = role.runtime
    if runtime.error is None and runtime.stack is not None:
        fixtures = runtime.backend_class.frontend_fixtures
        if fixtures:
            runtime.docker = _overridden(request, fixtures)
    yield role
    role.stop()


def _overridden(request: pytest.FixtureRequest, fixtures: Mapping[str, tuple[str, Any]]) -> Any:
    """The backend's fixtures a suite overrode (a value other than the fixture's own
    default), as the backend's typed overrides."""
    from ...backends.base import DockerOverrides

    values: dict[str, Any] = {}
    if request.config.pluginmanager.hasplugin("docker"):
        for fixture, (field, default) in fixtures.items():
            try:
                value = request.getfixturevalue(fixture)
            except pytest.FixtureLookupError:
                continue
            if value != default and value:
                values[field] = (
                    tuple([value] if isinstance(value, str) else value)
                    if field == "cleanup"
                    else value
                )
    return DockerOverrides(**values)


@pytest.fixture
def pyairtable_faults(_pyairtable_session: Role) -> Generator[Faults, None, None]:
    """Break a service during one test (stop, kill, pause, restart); after the test the
    stack is healed and healthy again before the next test starts. The test has the
    stack alone: under xdist, other workers' tests wait (see session/lease.py)."""
    from ...engine.faults import Faults

    role = _pyairtable_session
    role.lease(EXCLUSIVE)  # taken before the test already; from a test body, an upgrade
    role.access.fault("begin", "", role.nodeid)
    yield Faults(lambda action, service: role.access.fault(action, service, role.nodeid))
    role.access.fault("heal", "", role.nodeid)  # a heal that fails is this test's error


@pytest.fixture
def pyairtable_reset(request: pytest.FixtureRequest, _pyairtable_session: Role) -> Reset:
    """The services' data restored before the test (all PostgreSQL and Redis services,
    or those its ``pyairtable_reset`` marker names); call it to restore again."""
    from ...state.reset import Reset

    role = _pyairtable_session
    alone = "pyairtable_faults" in request.fixturenames
    if role.restored is None:  # requested from the test body: not reset before it
        role.reset(None, alone=alone)
    return Reset(role.restored or (), lambda names: role.reset(names, alone=alone))
