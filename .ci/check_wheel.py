"""The wheel holds every subpackage of the source tree, py.typed, and the entry points
(the pytest plugin and the `pyairtable` command): `python .ci/check_wheel.py WHEEL`."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pytest_pyairtable"


def main(wheel: str) -> int:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {str(init.relative_to(ROOT)) for init in (ROOT / PACKAGE).rglob("__init__.py")} | {
        f"{PACKAGE}/py.typed"
    }
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / PACKAGE).rglob("*.py")}
    missing = sorted((wanted | modules) - names)
    entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), "")
    text = zipfile.ZipFile(wheel).read(entry_points).decode() if entry_points else ""
    for needed in (f"pyairtable = {PACKAGE}.plugin", f"pyairtable = {PACKAGE}.cli:main"):
        if needed not in text:
            missing.append(f"entry point {needed!r}")
    stray = sorted(n for n in names if n.startswith(("tests/", "benchmarks/", "docs/")))
    for problem in missing:
        print(f"check_wheel: missing from {Path(wheel).name}: {problem}")
    for problem in stray:
        print(f"check_wheel: does not belong in the wheel: {problem}")
    if not missing and not stray:
        print(f"check_wheel: {Path(wheel).name}: {len(modules)} modules, py.typed, entry points")
    return 1 if missing or stray else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
