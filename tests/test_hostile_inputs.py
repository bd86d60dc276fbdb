"""Inputs that crashed or misled, each ending in a clear error (file, field, cause, fix)
at once: real pytest runs, real files, real processes."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from conftest import LeakCheck, Project
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.errors import ConfigError

SLEEPER = "x-pyairtable: {local: {command: [sleep, '300']}}"


def _stack(tmp_path: Path, service_body: str) -> Path:
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        "services:\n  a:\n    image: x\n" + textwrap.indent(textwrap.dedent(service_body), "    ")
    )
    return path


@pytest.mark.parametrize(
    ("value", "cause"),
    [("/nonexistent/pyairtable", "does not exist"), ("relative/dir", "is a relative path")],
)
def test_a_bad_tmpdir_is_named_with_the_fix(
    project: Project, no_leaks: LeakCheck, monkeypatch: pytest.MonkeyPatch, value: str, cause: str
) -> None:
    project.compose(f"services:\n  a:\n    image: x\n    {SLEEPER}\n")
    project.tests("def test_it(pyairtable_a): pass\n")
    monkeypatch.setenv("PYAIRTABLE_TMPDIR", value)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*PYAIRTABLE_TMPDIR={value!r} {cause}*Fix: set it*"])
    assert "Traceback" not in result.stdout.str()


def test_a_tmpdir_that_is_a_file(
    project: Project, no_leaks: LeakCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.compose(f"services:\n  a:\n    image: x\n    {SLEEPER}\n")
    project.tests("def test_it(pyairtable_a): pass\n")
    afile = project.path / "afile"
    afile.write_text("")
    monkeypatch.setenv("PYAIRTABLE_TMPDIR", str(afile))
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*PYAIRTABLE_TMPDIR=* is not a directory*Fix:*"])


def test_an_ini_flag_error_names_its_key(project: Project) -> None:
    project.compose(f"services:\n  a:\n    image: x\n    {SLEEPER}\n")
    project.pytester.makeini("[pytest]\npyairtable_free_ports = maybe\n")
    project.tests("def test_it(): pass\n")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*ini pyairtable_free_ports: invalid *'maybe'*Fix: write 1, true*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_an_env_file_of_nul_separated_values(project: Project, no_leaks: LeakCheck) -> None:
    """As docker compose reads it, /proc/self/environ is one variable holding NUL bytes,
    which no process can be given: said, not an internal error."""
    project.compose(
        f"services:\n  a:\n    image: x\n    env_file: /proc/self/environ\n    {SLEEPER}\n"
    )
    project.tests("def test_it(pyairtable_a): pass\n")
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*service 'a'*variable * holds a NUL byte*Fix: remove*"])
    assert "internal error" not in result.stdout.str()


def test_one_variable_over_the_kernel_bound_is_named(project: Project, no_leaks: LeakCheck) -> None:
    big = "x" * (130 * 1024)
    project.compose(
        f"services:\n  a:\n    image: x\n    environment: {{SMALL: y, BIG: {big}}}\n    {SLEEPER}\n"
    )
    project.tests("def test_it(pyairtable_a): pass\n")
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*variable 'BIG' is * bytes, over the 131072 bytes (128 KiB)*"])
    assert "set fewer" not in result.stdout.str()


def test_an_env_file_symlink_loop_is_not_called_missing(tmp_path: Path) -> None:
    (tmp_path / "one").symlink_to("two")
    (tmp_path / "two").symlink_to("one")
    for required in ("true", "false"):  # docker compose fails on it either way
        path = _stack(tmp_path, f"env_file: [{{path: one, required: {required}}}]\n")
        with pytest.raises(ConfigError) as info:
            load_stack(path, environ={})
        message = str(info.value)
        assert "env_file" in message and "one cannot be read" in message
        assert os.strerror(40) in message and "does not exist" not in message


def test_zero_healthcheck_durations_are_the_engine_defaults(tmp_path: Path) -> None:
    path = _stack(
        tmp_path,
        "healthcheck: {test: [CMD, 'true'], interval: 0s, timeout: 0s, start_interval: 0s, retries: 0}\n",
    )
    check = load_stack(path, environ={}).services["a"].healthcheck
    assert check is not None
    assert (check.interval, check.timeout, check.start_interval, check.retries) == (30, 30, 5, 3)


@pytest.mark.parametrize("value", ["-5s", "-1m", "500us"])
@pytest.mark.parametrize("key", ["interval", "timeout", "start_period", "start_interval"])
def test_healthcheck_durations_the_engine_refuses(tmp_path: Path, key: str, value: str) -> None:
    """`docker compose config` prints them as given; the engine refuses the container,
    so the service fails when it starts, with the fix, and the others are not touched."""
    from conftest import unique_run_id
    from pytest_pyairtable.backends.local import LocalBackend
    from pytest_pyairtable.engine.orchestrator import Orchestrator
    from pytest_pyairtable.support.errors import ServiceError

    path = _stack(tmp_path, f"healthcheck: {{test: [CMD, 'true'], {key}: {value}}}\n{SLEEPER}\n")
    stack = load_stack(path, environ={})
    orch = Orchestrator(stack, LocalBackend(run_id=unique_run_id("refused")))
    try:
        with pytest.raises(
            ServiceError,
            match=rf"service 'a' could not be launched: healthcheck\.{key} is '{value}'"
            r".*under 1ms.*Fix:",
        ):
            orch.wait("a")
        assert orch.runs["a"].running is None  # nothing was started
    finally:
        orch.stop()


def test_a_port_published_on_ipv6_loopback_is_probed_there(
    tmp_path: Path, no_leaks: LeakCheck
) -> None:
    import socket
    import sys

    from conftest import unique_run_id
    from pytest_pyairtable.backends.local import LocalBackend
    from pytest_pyairtable.engine.orchestrator import Orchestrator

    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    path = _stack(
        tmp_path,
        f"""\
        ports: ["[::1]:{port}:8000"]
        healthcheck: {{test: "curl -f http://localhost:8000/", interval: 1s}}
        x-pyairtable: {{local: {{command: [{sys.executable!r}, -m, http.server, --bind, "::1", "{port}"]}}}}
        """,
    )
    stack = load_stack(path, environ={})
    assert stack.services["a"].probe.target == f"http://[::1]:{port}/"
    orch = Orchestrator(stack, LocalBackend(run_id=unique_run_id("v6")))
    try:
        orch.start()
        assert orch.wait("a").details["status"] == 200
    finally:
        orch.stop()


def test_redis_published_on_ipv6_loopback_listens_there(
    tmp_path: Path, no_leaks: LeakCheck
) -> None:
    import socket

    import redis

    from conftest import unique_run_id
    from pytest_pyairtable.backends.local import LocalBackend
    from pytest_pyairtable.engine.orchestrator import Orchestrator

    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "docker-compose.yml"
    path.write_text(f'services:\n  cache:\n    image: redis:7\n    ports: ["[::1]:{port}:6379"]\n')
    orch = Orchestrator(load_stack(path, environ={}), LocalBackend(run_id=unique_run_id("v6r")))
    try:
        orch.start()
        url = orch.wait("cache").url or ""
        assert url == f"redis://[::1]:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            assert client.ping()
        finally:
            client.close()
    finally:
        orch.stop()


def test_no_compose_file_at_rootdir_with_one_in_a_subdirectory(project: Project) -> None:
    sub = project.path / "tests"
    sub.mkdir()
    (sub / "docker-compose.yml").write_text(f"services:\n  a:\n    image: x\n    {SLEEPER}\n")
    (sub / "test_it.py").write_text(
        "def test_a(pyairtable_a): pass\ndef test_stack(pyairtable_stack): pass\n"
        "def test_plain(): pass\n"
    )
    result = project.run()
    result.assert_outcomes(passed=1, errors=2)  # a test that needs no service runs
    result.stdout.fnmatch_lines(
        [
            "*no compose file in * so no service has a fixture; there is tests/docker-compose.yml."
            " Fix: pass --pyairtable-compose-file tests/docker-compose.yml*"
        ]
    )
    out = result.stdout.str()
    assert "AssertionError" not in out and "fixture 'pyairtable_a' not found" not in out
