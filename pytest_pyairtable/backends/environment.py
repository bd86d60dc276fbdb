"""The environment of what runs on the host for a service: its process, and its
healthcheck or probe command.

Compose gives a container only what the file declares; a local process that inherited
the whole shell would pass where the container fails (a variable exported in a
developer's shell hides one the compose file forgot). So a service gets what it
declares (``environment``, then ``x-pyairtable.local.env``) over a small base of what
a process needs to run at all on this machine, and nothing else: unless the run asks
for the whole environment (``--pyairtable-inherit-env``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ..model.spec import ServiceSpec

# What a process needs to find its tools, its user, its locale, its time zone and a
# temp dir, and the interpreter set-up of this run (a virtualenv); PYAIRTABLE_* are
# this tool's own (where run dirs go). Nothing here configures an application.
BASE_NAMES = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "SYSTEMROOT",
)
BASE_PREFIXES = ("LC_", "PYAIRTABLE_")


def base_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k in BASE_NAMES or k.startswith(BASE_PREFIXES)}


def path_with_python(path: str) -> str:
    """The test run's own interpreter and tools first, as in its virtualenv."""
    return os.pathsep.join([os.path.dirname(sys.executable), path])


def service_environment(
    svc: ServiceSpec, environ: Mapping[str, str], *, inherit: bool = False
) -> dict[str, str]:
    """What the service declares over the base (or over all of ``environ``)."""
    env = dict(environ) if inherit else base_environment(environ)
    env.update(svc.environment)
    env.update(svc.local.env)
    env["PATH"] = path_with_python(env.get("PATH", os.defpath))
    return env
