"""The ``pyairtable`` command's entry point (the console script, and
``python -m pytest_pyairtable.cli``): thin; the command lives in frontends/cli/."""

from __future__ import annotations

from .frontends.cli.commands import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
