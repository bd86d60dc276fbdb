"""How a service runs: the Backend protocol, local processes, containers, external services.

The registry of backends lives here, light to import: every pytest run validates
``--pyairtable-backend`` against it at start, before any backend module is imported.
"""

from __future__ import annotations

import importlib.util

# name -> "module:class"; a new backend adds one line here and one module.
BACKENDS: dict[str, str] = {
    "local": "pytest_pyairtable.backends.local:LocalBackend",
    "external": "pytest_pyairtable.backends.external:ExternalBackend",
    "compose": "pytest_pyairtable.backends.compose:ComposeBackend",
}
# Backends made of the others, never named on the command line: a stack placed over the
# host and another backend (--pyairtable-local) runs on "placed".
COMPOSED: dict[str, str] = {
    "placed": "pytest_pyairtable.backends.placement:PlacedBackend",
}
# What a backend imports beyond the core dependencies: module -> what installs it.
REQUIREMENTS: dict[str, dict[str, str]] = {
    "compose": {
        "pytest_docker": "pip install 'pytest-pyairtable[docker]'",
        "docker": "pip install 'pytest-pyairtable[docker]'",  # the Engine API's client
    },
}


def check_backend(name: str) -> None:
    """Raise ConfigError for an unknown backend, or one whose packages are missing,
    listing the valid names or the command that installs what is missing."""
    from ..support.errors import ConfigError

    if name not in BACKENDS:
        raise ConfigError(
            f"unknown backend {name!r}. Valid values: {', '.join(BACKENDS)}. "
            "Fix: --pyairtable-backend=local (processes), compose (containers) or "
            "external (already running)."
        )
    missing = {
        module: fix
        for module, fix in REQUIREMENTS.get(name, {}).items()
        if importlib.util.find_spec(module) is None
    }
    if missing:
        raise ConfigError(
            f"the {name} backend needs {', '.join(missing)}, which is not installed. "
            f"Fix: {'; '.join(dict.fromkeys(missing.values()))}."
        )
