"""A postgres image run on this machine's PostgreSQL binaries says which version runs,
and warns when it is older than the image's major version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import Ports, Project
from pytest_pyairtable.backends.recipes import find_binary, server_version


@pytest.mark.parametrize("newer", [True, False])
def test_postgres_image_version_against_the_local_binaries(
    project: Project, free_ports: Ports, newer: bool
) -> None:
    local = server_version(find_binary("postgres", "db", hint=""))
    major = int(local.split(".")[0])
    tag = major + 3 if newer else major
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          db:
            image: postgres:{tag}-alpine
            environment: {{POSTGRES_PASSWORD: pw}}
            ports: ["{port}:5432"]
    """)
    project.tests("def test_db(pyairtable_db): pass\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    said = f"service 'db': image postgres:{tag}-alpine runs on the local PostgreSQL {local}"
    assert said in out
    warned = f"older than the image's {tag}" in out and f"install postgresql-{tag}" in out
    assert warned is newer
    assert ("warning: " + said in out) is newer


def test_the_fix_names_a_step_that_works_here() -> None:
    """Debian bookworm's lists have postgresql-15 only: a newer one needs the PostgreSQL
    project's repository first, and the fix says so (checked with this machine's apt)."""
    import shutil

    from pytest_pyairtable.backends.recipes import install_step

    if shutil.which("apt-cache") is None:
        assert "postgresql.org" in install_step(99)
        return
    assert install_step(99).startswith("add the PostgreSQL project's apt repository")
    assert install_step(99).endswith("then apt-get install postgresql-99")
    policy = subprocess.run(["apt-cache", "policy", "postgresql-15"], capture_output=True,
                            text=True, check=False).stdout  # fmt: skip
    if "Candidate: " in policy and "Candidate: (none)" not in policy:
        assert install_step(15) == "apt-get install postgresql-15"


def test_apt_is_asked_once_per_state_of_its_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apt-cache loads its whole cache (~0.45 s of CPU) and sat on PostgreSQL's launch
    every run: its answer is kept until apt's lists change. Here apt-cache is a script
    that logs each call, and its lists a directory of the test's."""
    from pytest_pyairtable.backends import aptcandidate
    from pytest_pyairtable.backends.recipes import install_step

    bin_dir, lists, calls = tmp_path / "bin", tmp_path / "lists", tmp_path / "calls"
    bin_dir.mkdir()
    lists.mkdir()
    (lists / "main_Packages").write_text("old")
    fake = bin_dir / "apt-cache"
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        'case "$2" in postgresql-16) echo "  Candidate: 16.4-1";; '
        '*) echo "  Candidate: (none)";; esac\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(aptcandidate, "STATE_DIRS", (str(lists),))

    def asked() -> list[str]:
        return calls.read_text().splitlines() if calls.exists() else []

    for round_ in range(2):  # a fresh process each run: only the file remembers
        install_step.cache_clear()
        assert install_step(16) == "apt-get install postgresql-16"
        assert install_step(17).startswith("add the PostgreSQL project's apt repository")
        assert asked() == ["policy postgresql-16", "policy postgresql-17"], round_
    kept = tmp_path / "cache" / "pytest-pyairtable" / "apt.json"
    assert kept.stat().st_mode & 0o077 == 0  # the user's own, as the rest of our cache

    (lists / "main_Packages").write_text("after apt-get update")
    install_step.cache_clear()
    assert install_step(16) == "apt-get install postgresql-16"
    assert asked()[2:] == ["policy postgresql-16"]
