"""One exception family for everything a user can cause.

Each message names the service (where there is one), the cause and the fix, so the
front ends print it as it is, without a traceback.

    PyAirtableError
    ├── ConfigError                 the compose file, .env or options are wrong
    │   ├── ComposeFileError        unreadable file or YAML syntax (with line)
    │   ├── InterpolationError      ${VAR:?msg} and friends; lists every missing variable
    │   ├── DependencyCycleError    depends_on forms a cycle (prints it)
    │   └── UnknownServiceError     a name that is not an active service
    ├── PrerequisiteError           a server binary or tool is missing, a port is taken
    ├── RemoteError                 an error raised in the xdist controller, as text
    ├── KeepError                   a stack cannot be kept (or its record cannot be used)
    ├── ResetError                  a service's data cannot be snapshotted, copied or restored
    ├── StopError                   something a service started would not end
    └── ServiceError                a service did not come up, carrying its log tail
        ├── ServiceExitedError      its process ended while we waited for it
        ├── ServiceTimeoutError     it never passed its probe in time
        └── DependencyFailedError   it was not started because a dependency failed
"""

from __future__ import annotations

from collections.abc import Sequence


class PyAirtableError(Exception):
    """Base of every error this package raises on purpose."""

    first_nodeid: str | None = None  # set when another process already reported it in full
    origin: PyAirtableError | None = None  # the error this one is a fresh copy of

    def headline(self) -> str:
        """One line that identifies the error, for repeated references to it."""
        return str(self).splitlines()[0] if str(self) else type(self).__name__

    def fresh(self) -> PyAirtableError:
        """A new exception with the same content, to raise again.

        Raising one exception object again and again chains every raise onto its
        traceback: each test that needs a failed service would cost more than the last.
        The copy starts with an empty traceback and remembers its origin, by which a
        failure is recognised as one already reported."""
        copy = type(self).__new__(type(self), *self.args)
        copy.__dict__.update(self.__dict__)
        copy.origin = self.origin or self
        return copy


class ConfigError(PyAirtableError):
    """The configuration is wrong; nothing has been started."""


class ComposeFileError(ConfigError):
    pass


class InterpolationError(ConfigError):
    pass


class DependencyCycleError(ConfigError):
    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*self.cycle, self.cycle[0]])
        super().__init__(
            f"depends_on forms a cycle: {path}. Fix: remove one of these depends_on entries."
        )


class UnknownServiceError(ConfigError):
    pass


class PrerequisiteError(PyAirtableError):
    pass


class KeepError(PyAirtableError):
    pass


class ResetError(PyAirtableError):
    pass


class StopError(PyAirtableError):
    pass


class RemoteError(PyAirtableError):
    """An error that happened in the process owning the stack, carried over as text."""

    def __init__(self, text: str, headline: str, first_nodeid: str | None = None) -> None:
        super().__init__(text)
        self._headline = headline
        self.first_nodeid = first_nodeid

    def headline(self) -> str:
        return self._headline


class ServiceError(PyAirtableError):
    """A service failed to become ready; carries what a person needs to fix it."""

    def __init__(
        self,
        service: str,
        cause: str,
        *,
        probe: str = "",
        last_error: str = "",
        log_tail: Sequence[str] = (),
        log_path: str = "",
        fix: str = "",
    ) -> None:
        self.service = service
        self.cause = cause
        self.probe = probe
        self.last_error = last_error
        self.log_tail = list(log_tail)
        self.log_path = log_path
        self.fix = fix
        super().__init__(self.render())

    def headline(self) -> str:
        return f"service '{self.service}' {self.cause}"

    def render(self) -> str:
        lines = [self.headline()]
        if self.probe:
            lines.append(f"  probe: {self.probe}")
        if self.last_error:
            lines.append(f"  last probe error: {self.last_error}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        if self.log_path:
            lines.append(f"  log: {self.log_path}")
        if self.log_tail:
            lines.append(f"  last {len(self.log_tail)} log lines:")
            lines.extend(f"    | {line}" for line in self.log_tail)
        return "\n".join(lines)


class ServiceExitedError(ServiceError):
    pass


class ServiceTimeoutError(ServiceError):
    pass


class DependencyFailedError(ServiceError):
    def __init__(self, service: str, dependency: str, reason: str) -> None:
        self.dependency = dependency
        super().__init__(
            service,
            f"was not started because its dependency '{dependency}' {reason}",
            fix=f"fix '{dependency}' first; its own error is reported above",
        )
