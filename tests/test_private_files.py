"""Files that hold what a run keeps to itself (logs, records, snapshots, indexes, the
timeline) are written owner-only and never through a symlink: an existing 0644 log is
narrowed before it is appended to, and a link planted where a log goes is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conftest import Ports, Project
from pytest_pyairtable.session.kept import KeptStack
from pytest_pyairtable.session.lastrun import LastRunLogs, read_last_run
from pytest_pyairtable.support.files import (
    UnsafeFileError,
    create_private,
    open_private,
    read_text,
    write_json,
)
from pytest_pyairtable.support.redact import Redactor


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_an_existing_world_readable_file_is_narrowed_before_it_is_written(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("before\n")
    log.chmod(0o644)
    with open_private(log, "a") as f:
        assert mode(log) == 0o600  # before the first byte
        f.write("secret\n")
    assert log.read_text() == "before\nsecret\n"
    assert not create_private(log) and mode(log) == 0o600


@pytest.mark.parametrize("how", ["a", "ab", "w", "x"])
def test_a_symlink_is_never_written_through(tmp_path: Path, how: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    victim.chmod(0o644)
    link = tmp_path / "a.log"
    link.symlink_to(victim)
    with pytest.raises((UnsafeFileError, FileExistsError)) as raised:
        open_private(link, how).close()
    if how != "x":
        assert "symbolic link" in str(raised.value) and "Fix: remove the link" in str(raised.value)
    assert victim.read_text() == "mine\n" and mode(victim) == 0o644


def test_a_hard_link_a_fifo_and_a_link_to_read_are_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    os.link(victim, tmp_path / "b.log")
    with pytest.raises(UnsafeFileError, match="hard link"):
        open_private(tmp_path / "b.log", "a")
    os.mkfifo(tmp_path / "c.log")
    with pytest.raises(UnsafeFileError, match="not a regular file"):
        open_private(tmp_path / "c.log", "a")  # without a reader: not a hang either
    (tmp_path / "d.json").symlink_to(victim)
    with pytest.raises(OSError):
        read_text(tmp_path / "d.json")
    assert victim.read_text() == "mine\n"


def test_an_atomic_write_replaces_a_link_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    record = tmp_path / "stack.json"
    record.symlink_to(victim)
    write_json(record, {"run_id": "x"})
    assert victim.read_text() == "mine\n"
    assert not record.is_symlink() and mode(record) == 0o600
    assert json.loads(record.read_text()) == {"run_id": "x"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_kept_record_and_the_last_run_index_are_owner_only(tmp_path: Path) -> None:
    record = tmp_path / "docker-compose.yml.json"
    stack = KeptStack.__new__(KeptStack)
    for field in KeptStack.__dataclass_fields__:
        setattr(stack, field, None)
    stack.services, stack.ports = {}, {}
    stack.save(record)
    assert mode(record) == 0o600

    logs = LastRunLogs(record, "run1", Redactor(["s3cret"]))
    logs.services = ["api"]
    (logs.staging).mkdir(mode=0o700)
    logs.finish()
    found = read_last_run(record)
    assert found is not None and mode(found[1] / "index.json") == 0o600


def _project(project: Project, port: int) -> None:
    project.compose(f"""
        services:
          api:
            image: x
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name api --port {port}}}
              probe: {{tcp: "127.0.0.1:{port}"}}
    """)
    project.tests("def test_api(pyairtable_api): pass\n")


def test_a_0644_log_in_a_logs_dir_is_appended_to_as_0600(
    project: Project, free_ports: Ports
) -> None:
    _project(project, *free_ports(1))
    logs = project.path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("an earlier run's line\n")
    (logs / "api.log").chmod(0o644)
    project.run("--pyairtable-logs-dir", str(logs)).assert_outcomes(passed=1)
    text = (logs / "api.log").read_text()
    assert text.startswith("an earlier run's line\n") and "api: listening on" in text
    assert mode(logs / "api.log") == 0o600


def test_a_symlink_where_a_log_goes_fails_the_service_and_appends_nothing(
    project: Project, free_ports: Ports
) -> None:
    _project(project, *free_ports(1))
    logs = project.path / "logs"
    logs.mkdir()
    victim = project.path / "victim.txt"
    victim.write_text("the user's own file\n")
    (logs / "api.log").symlink_to(victim)
    result = project.run("--pyairtable-logs-dir", str(logs))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*service 'api'*api.log is a symbolic link*Fix: remove the link*"])
    assert victim.read_text() == "the user's own file\n"
