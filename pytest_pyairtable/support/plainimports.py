"""Import this package's own modules with Python's plain loader, not pytest's.

pytest rewrites the asserts of every module in a plugin's distribution and keeps the
result in a bytecode cache of its own. Where that cache cannot be written (the
common ``PYTHONDONTWRITEBYTECODE=1`` of container images and CI, a read-only
site-packages) every run parses, rewrites and compiles each module again: about 95 ms
for the modules a boot imports, on the critical path before the first service
starts. Our asserts are invariants, not test assertions, so rewriting them buys
nothing. The plain loader reads the bytecode pip compiled at install time.

Only names under this package are answered, and only with the spec Python's own path
finder gives; everything else goes on to the next finder unchanged. Importing this
module installs the finder: the plugin imports it before the package's other modules.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType

PACKAGE = __name__.split(".")[0]  # the whole package, not the folder this module sits in


class PlainImports(MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith(PACKAGE + ".") or path is None:
            return None
        return PathFinder.find_spec(fullname, path, target)


def install() -> None:
    """Put the finder ahead of pytest's, once."""
    if not any(type(f).__name__ == PlainImports.__name__ for f in sys.meta_path):
        sys.meta_path.insert(0, PlainImports())


install()
