"""The compose CLI, where compose's own semantics are needed: creating a project's
containers, networks and volumes from every compose file of the stack (in order) and
its env file; and a suite's own clean-up commands (pytest-docker's docker_cleanup).

Its exit code proves nothing (the PyPI `docker-compose` wrapper exits 0 when compose
fails), so a call returns what compose said, and the caller checks the engine for the
result; when it is missing, ``creation_error`` turns compose's own words into an error
that names the service, the cause and the fix.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..support.errors import PrerequisiteError

_ERROR_LINE = re.compile(r"error|denied|invalid|not found|no such|cannot|failed", re.I)
_PULL = re.compile(
    r"pull access denied|manifest unknown|no such host|not found|repository does not exist|"
    r"unauthorized|registry|dial tcp|i/o timeout|connection refused",
    re.I,
)


class ComposeCommand:
    """``<compose> -f <file>... [--env-file <file>] -p <project> [--profile <p>]...``."""

    def __init__(
        self,
        argv: Sequence[str],
        files: Sequence[Path],
        env_file: Path | None,
        project: str,
        profiles: Sequence[str] = (),
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.environ = dict(environ or {})  # e.g. --pyairtable-free-ports' chosen ports
        self.argv = [*argv]
        for path in files:
            self.argv += ["-f", str(path)]
        if env_file is not None:
            self.argv += ["--env-file", str(env_file)]
        self.argv += ["-p", project]
        for profile in profiles:
            self.argv += ["--profile", profile]
        self.cwd = Path(files[0]).parent if files else None

    def add_file(self, path: Path) -> None:
        """Merge one more compose file last, once (a file of ours, e.g. host entries)."""
        if str(path) not in self.argv:
            at = self.argv.index("-p")
            self.argv[at:at] = ["-f", str(path)]

    @property
    def shown(self) -> str:
        return shlex.join(self.argv)

    def _environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            **os.environ,
            **self.environ,
            **(extra or {}),
            "COMPOSE_ANSI": "never",
            "COMPOSE_PROGRESS": "plain",
        }

    def start(
        self, args: Sequence[str], environ: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Compose running ``args``, its output (stdout and stderr, in order) read as it
        comes, line by line."""
        try:
            return subprocess.Popen(
                [*self.argv, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self._environ(environ),
                text=True,
                errors="replace",
            )
        except OSError as exc:
            raise self._not_run(exc) from None

    def _not_run(self, exc: OSError) -> PrerequisiteError:
        return PrerequisiteError(
            f"docker compose could not run ({self.argv[0]}: {exc.strerror}). "
            "Fix: install Docker Compose, or correct docker_compose_command."
        )

    def run(self, args: Sequence[str]) -> str:
        """Compose's output (stdout and stderr, in order); its exit code is not trusted."""
        try:
            done = subprocess.run(
                [*self.argv, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env=self._environ(),
                check=False,
            )
        except OSError as exc:
            raise self._not_run(exc) from None
        text = done.stdout.decode(errors="replace")
        if done.returncode != 0:
            text += f"\n(compose exited with code {done.returncode})\n"
        return text


def creation_error(service: str, output: str, shown: str) -> str:
    """Why compose made no container for ``service``, in compose's own words, and the fix."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = [line for line in lines if _ERROR_LINE.search(line)] or lines[-3:]
    ours = [line for line in said if line.split(" ", 1)[0] == service]
    cause = "; ".join(dict.fromkeys(ours + said))[-600:] or "it printed nothing"
    if _PULL.search(cause):
        fix = (
            "its image cannot be pulled: check the image name and tag, that its registry "
            "is reachable (and `docker login` to it), or build or load the image first"
        )
    elif "project name" in cause.lower():
        fix = (
            "a compose project name must be lowercase letters, digits, dashes and "
            "underscores, starting with a letter or digit (docker_compose_project_name)"
        )
    else:
        fix = f"correct what compose says; `{shown} up --no-start {service}` shows it in full"
    return f"service '{service}': compose created no container for it: {cause}. Fix: {fix}."
