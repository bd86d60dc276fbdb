"""Hostile and careless input: every case ends with our own error, naming the field (or
file, or service) and the fix, through each front end: the loader, `pyairtable config`
and a pytest run. Never a traceback, an INTERNALERROR, a hang or pytest's "fixture not
found"; the command line ends within a bound (a hang detector, not a speed target).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hostile_cases import Case, assert_ours, svc, write_case
from stackrun import cli, one_service, standin_services

from conftest import Ports, Project
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.errors import ConfigError, PyAirtableError

STANDIN = "python -m pytest_pyairtable.standin --startup-delay 0"


def _nested(levels: int) -> str:
    return "services:\n  a:\n    image: x\n    x-deep: " + "[" * levels + "]" * levels + "\n"


def _bomb() -> str:
    lines = ["x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[n]
        lines.append(f"x-{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\nservices:\n  a: {image: x}\n"


def _dir_compose(path: Path) -> None:
    (path / "docker-compose.yml").mkdir()


def _loop_compose(path: Path) -> None:
    (path / "docker-compose.yml").symlink_to(path / "docker-compose.yml")


def _fifo_include(path: Path) -> None:
    os.mkfifo(path / "other.yml")
    (path / "docker-compose.yml").write_text("include: [other.yml]\n" + svc(""))


def _fifo_env(path: Path) -> None:
    os.mkfifo(path / ".env")
    (path / "docker-compose.yml").write_text(svc(""))


def _devzero_include(path: Path) -> None:
    (path / "docker-compose.yml").write_text("include: [/dev/zero]\n" + svc(""))


def _huge_file(path: Path) -> None:
    (path / "docker-compose.yml").write_text(svc("") + "# " + "x" * (5 * 1024 * 1024) + "\n")


# fmt: off
CASES = [
    # -- from the issue ----------------------------------------------------------------
    Case("binary-compose", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "is not UTF-8 text"),
    Case("binary-env", svc(""), ".env is not UTF-8 text", env=b"\xff\xfe\x00A=\x80\x81"),
    Case("port-without-target", svc("ports: [{published: '8080'}]"), "missing a target port"),
    Case("healthcheck-string", svc("healthcheck: 'curl -f x'"), "healthcheck must be a mapping"),
    Case(
        "depends-on-condition-string",
        "services:\n  a: {image: x, depends_on: {b: service_healthy}}\n  b: {image: x}\n",
        "depends_on.b must be a mapping",
    ),
    Case("environment-number", svc("environment: 5"), "environment must be a mapping or a list"),
    Case("command-number", svc("command: 5"), "command must be"),
    Case("local-env-list", svc("x-pyairtable: {local: {env: [A, B]}}"), "local.env must be"),
    Case("probe-json-list", svc("x-pyairtable: {probe: {http: 'http://h', json: [1]}}"), "json"),
    Case("tcp-probe-without-port", svc("x-pyairtable: {probe: {tcp: 127.0.0.1}}"), "no port"),
    Case("host-port-out-of-range", svc("ports: ['99999:80']"), "invalid host port 99999"),
    Case("fixture-collision", "services:\n  a-b: {image: x}\n  a_b: {image: x}\n", "both be"),
    Case("path-in-name", "services:\n  ../../escape: {image: x}\n", "'../../escape' may hold"),
    Case("depends-on-number", svc("depends_on: 5"), "depends_on must be a list or a mapping"),
    Case("alias-bomb", _bomb(), "aliases expand"),
    Case("port-range-huge", svc("ports: ['1-99999999:1-99999999']"), "invalid container port"),
    Case("interval-inf", svc("healthcheck: {test: [CMD, x], interval: .inf}"), "interval must"),
    Case("interval-nan", svc("healthcheck: {test: [CMD, x], interval: .nan}"), "interval must"),
    Case("yaml-syntax", "services:\n  a: {image: x\n", "YAML error"),
    Case("empty-file", "", "empty compose file"),
    Case("top-level-list", "- services\n- a\n", "top level must be a mapping"),
    Case(
        "cycle",
        "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
        "depends_on forms a cycle: a -> b -> a",
    ),
    # -- beyond it ---------------------------------------------------------------------
    Case("nested-5000", _nested(5000), "nested more than"),
    Case("nested-200000", _nested(200_000), "nested more than"),  # segfaulted libyaml
    Case("block-nested", "services:\n  a: {image: x}\nx-deep:\n  " + "- " * 3000 + "x\n", "nested"),
    Case("alias-cycle", "services:\n  a: {image: x, x-y: &l [*l]}\n", "alias refers"),
    Case("nested-defaults", svc("command: '" + "${A:-" * 3000 + "}" * 3000 + "'"), "nested"),
    Case("nul-in-command", svc('command: ["run", "a\\0b"]'), "NUL character"),
    Case("nul-in-env-file", svc("environment: {A: '${B}'}"), "NUL character", env=b"B=x\\0y\n"),
    Case("equals-in-env-name", svc("environment: {'A=B': x}"), "holds '='"),
    Case("name-dotdot", "services:\n  '..': {image: x}\n", "is a path"),
    Case("name-too-long", "services:\n  " + "a" * 300 + ": {image: x}\n", "characters long"),
    Case("name-unicode", "services:\n  dienst\u00df: {image: x}\n", "may hold only"),
    Case("reserved-collision", "services:\n  stack: {image: x}\n  service_stack: {image: x}\n", "both be"),
    Case("target-out-of-range", svc("ports: [{target: 70000}]"), "is not a port"),
    Case("target-inf", svc("ports: [{target: .inf}]"), "is not a port"),
    Case("published-out-of-range", svc("ports: [{target: 80, published: '99999'}]"), "published"),
    Case("status-out-of-range", svc("x-pyairtable: {probe: {http: 'http://h', status: 99999}}"), "HTTP status"),
    Case("probe-bad-regex", svc("x-pyairtable: {probe: {log: '('}}"), "not a regular expression"),
    Case("probe-bad-ipv6", svc("x-pyairtable: {probe: {http: 'http://[::1/h'}}"), "IPv6"),
    Case("probe-port-not-number", svc("x-pyairtable: {probe: {tcp: 'h:http'}}"), "not a valid"),
    Case("probe-command-empty", svc("x-pyairtable: {probe: {command: []}}"), "command is empty"),
    Case("url-bad", svc("x-pyairtable: {url: 'http://[::1'}"), "x-pyairtable.url"),
    Case("healthcheck-cmd-alone", svc("healthcheck: {test: [CMD]}"), "names no command"),
    Case("retries-word", svc("healthcheck: {test: [CMD, x], retries: many}"), "retries"),
    Case("grace-huge", svc("stop_grace_period: 99999999h"), "not a duration"),
    Case("x-pyairtable-number", svc("x-pyairtable: 5"), "x-pyairtable must be a mapping"),
    Case("cwd-number", svc("x-pyairtable: {local: {cwd: 5}}"), "cwd must be a string"),
    Case("non-string-key", "services:\n  1: {image: x}\n", "non-string key"),
    Case("tab-indent", "services:\n\ta: {image: x}\n", "YAML error"),
    Case("bad-interpolation", svc("command: 'run ${'"), "invalid interpolation"),
    Case("services-null", "services:\n", "services must be a mapping"),
    Case("merge-of-list", "x: &l [1]\nservices:\n  a: {<<: *l, image: x}\n", "merge key"),
    Case("include-self", "include: [docker-compose.yml]\n" + svc(""), "include forms a cycle"),
    Case("compose-is-a-directory", None, "is a directory", setup=_dir_compose),
    Case("compose-symlink-loop", None, "docker-compose.yml", setup=_loop_compose),
    Case("include-a-fifo", None, "pipe, socket or device", setup=_fifo_include),
    Case("env-is-a-fifo", None, ".env", setup=_fifo_env),
    Case("include-dev-zero", None, "larger than 4 MiB", setup=_devzero_include),
    Case("compose-over-4-mib", None, "larger than 4 MiB", setup=_huge_file),
    Case("too-many-services", "services:\n" + "".join(f"  s{i}: {{image: x}}\n" for i in range(2001)), "over the 2000"),
    Case("too-many-nodes", "x-a: [" + ",".join(["1"] * 300_000) + "]\n" + svc(""), "YAML nodes"),
    Case("too-many-ports", "services:\n" + "".join(f"  s{i}: {{image: x, ports: ['1-65535']}}\n" for i in range(2000)), "ports in all"),
    Case("too-many-ports-extended", None, "ports in all", setup=lambda p: (
        (p / "base.yml").write_text("services:\n" + "".join(f"  s{i}: {{image: x, ports: ['1-65535']}}\n" for i in range(50))),
        (p / "docker-compose.yml").write_text("services:\n  a: {extends: {file: base.yml, service: s0}}\n"))),
    Case("flat-defaults", svc("command: '" + "${A:-b}" * 200_000 + "'"), "over 100000 ${...}"),
    Case("too-many-includes", "include: [" + ", ".join(["x.yml"] * 101) + "]\n" + svc(""), "over the 100"),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_loader_refuses_it(case: Case, tmp_path: Path) -> None:
    write_case(case, tmp_path)
    with pytest.raises(PyAirtableError) as info:
        load_stack(tmp_path / "docker-compose.yml", environ={})
    assert_ours(str(info.value), case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_command_line_says_why(case: Case, tmp_path: Path) -> None:
    write_case(case, tmp_path)
    done = cli("config", cwd=tmp_path, drop=["COMPOSE_FILE"], timeout=15)
    assert done.returncode == 2, done.stdout[-2000:]
    assert_ours(done.stderr, case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_pytest_run_fails_at_start_with_our_message(case: Case, project: Project) -> None:
    write_case(case, project.path)
    project.tests("def test_a(pyairtable_a): pass\ndef test_plain(): pass\n")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "the stack cannot be read" in result.stderr.str()
    assert_ours(result.stderr.str() + result.stdout.str(), case)


# -- inputs that load, and fail where they are used ---------------------------------------


def test_a_missing_variable_that_breaks_the_file_errors_the_tests_that_need_it(
    project: Project,
) -> None:
    project.compose('services:\n  a: {image: x, ports: ["${PORT:?set PORT}:80"]}\n')
    project.tests("def test_a(pyairtable_a): pass\ndef test_plain(): pass\n")
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*PORT (set PORT)*", "*Fix: set the variables*"])
    assert "fixture 'pyairtable_a' not found" not in result.stdout.str()


def test_a_missing_cwd_is_said_as_such(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable:
              local: {{command: {STANDIN} --name a --port {port}, cwd: ./no-such-dir}}
              probe: {{tcp: "127.0.0.1:{port}"}}
    """)
    project.tests("def test_a(pyairtable_a): pass\n")
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*working directory*no-such-dir does not exist*Fix*"])
    assert "command not found" not in result.stdout.str()


def test_a_password_with_a_line_break_is_refused_before_initdb(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_PASSWORD: "two\\nlines"}}
            ports: ["{port}:5432"]
    """)
    project.tests("def test_a(pyairtable_db): pass\n")
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*POSTGRES_PASSWORD holds a line break*Fix*"])


def test_services_named_like_the_plugins_fixtures_get_their_own(
    project: Project, free_ports: Ports
) -> None:
    standin_services(project, dict(zip(("stack", "faults", "reset"), free_ports(3), strict=True)))
    project.tests("""
        from pytest_pyairtable import Faults, Handle

        def test_own(pyairtable_service_stack, pyairtable_service_faults, pyairtable_service_reset):
            assert pyairtable_service_stack.name == "stack"
            assert isinstance(pyairtable_service_faults, Handle)
            assert pyairtable_service_reset.name == "reset"

        def test_plugins(pyairtable_stack, pyairtable_faults):
            assert sorted(pyairtable_stack) == ["faults", "reset", "stack"]
            assert isinstance(pyairtable_faults, Faults)
    """)
    project.run().assert_outcomes(passed=2)


def test_a_directory_as_timeline_is_a_usage_error_at_start(project: Project) -> None:
    project.compose(svc("x-pyairtable: {local: {command: [sleep, '1']}}"))
    project.tests("def test_plain(): pass\n")
    (project.path / "out").mkdir()
    result = project.run("--pyairtable-timeline", str(project.path / "out"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "it is a directory" in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_timeline_that_cannot_be_written_is_a_notice(project: Project, free_ports: Ports) -> None:
    one_service(project, *free_ports(1))
    (project.path / "file").write_text("")
    project.tests("def test_a(pyairtable_a): pass\n")
    result = project.run("--pyairtable-timeline", str(project.path / "file" / "t.json"))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*start-up timeline not written to*file/t.json*"])
    assert "Traceback" not in result.stdout.str()


# -- `pyairtable wait` and `logs` -----------------------------------------------------------

WAIT_CASES = [
    (["http://127.0.0.1:9"], {"TIMEOUT": "abc"}, "TIMEOUT='abc' is not a number of seconds"),
    (["http://127.0.0.1:9"], {"TIMEOUT": "-1"}, "TIMEOUT='-1'"),
    (["http://127.0.0.1:9"], {"RETRY_INTERVAL": "soon"}, "RETRY_INTERVAL='soon'"),
    (["http://127.0.0.1:9"], {"MAX_RETRIES": "x"}, "MAX_RETRIES='x' is not a number of attempts"),
    (["http://127.0.0.1:9"], {"MAX_RETRIES": "0"}, "MAX_RETRIES='0'"),
    (["--timeout", "-5", "http://127.0.0.1:9"], {}, "--timeout=-5.0 is not a number"),
    (["--timeout", "nan", "http://127.0.0.1:9"], {}, "--timeout=nan"),
    (["--interval", "inf", "http://127.0.0.1:9"], {}, "--interval=inf"),
    (["tcp://127.0.0.1"], {}, "names no port"),
    (["tcp://:80"], {}, "names no host"),
    (["http://[::1"], {}, "Invalid IPv6 URL"),
    (["postgres://u:pw-secret@[::1:5432/db"], {}, "u:***@"),
    (["redis://127.0.0.1:99999/0"], {}, "out of range"),
    (["ftp://x"], {}, "unknown scheme 'ftp'"),
    (["http://127.0.0.1:9", "nonsense"], {}, "unknown scheme ''"),
]


@pytest.mark.parametrize(("args", "env", "expect"), WAIT_CASES, ids=[c[2] for c in WAIT_CASES])
def test_wait_refuses_bad_settings_and_urls_at_once(
    args: list[str], env: dict[str, str], expect: str
) -> None:
    done = cli("wait", *args, env=env, timeout=15)
    assert done.returncode == 2
    assert expect in done.stderr and "Fix" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "pw-secret" not in done.stderr
    assert "ready" not in done.stdout  # nothing was waited for before the check


def test_logs_count_zero_prints_nothing_and_negative_is_refused(tmp_path: Path) -> None:
    import time

    from pytest_pyairtable.backends.markers import record_path
    from pytest_pyairtable.engine.handle import Handle
    from pytest_pyairtable.session.kept import KeptService, KeptStack

    compose = tmp_path / "docker-compose.yml"
    compose.write_text(svc(""))
    log = tmp_path / "a.log"
    log.write_text("one\ntwo\n")
    spec = load_stack(compose, environ={}).services["a"]
    handle = Handle("a", 1, "127.0.0.1", None, "", 0.0, log)
    service = KeptService(spec, handle, completed=True, started=time.time(), state={})
    kept = KeptStack("f", "run", "local", {}, str(compose), {"a": service}, secrets=[])
    kept.save(record_path(compose))
    assert cli("logs", "a", "-n", "1", cwd=tmp_path).stdout == "two\n"
    none = cli("logs", "a", "-n", "0", cwd=tmp_path)
    assert none.returncode == 0 and none.stdout == ""
    negative = cli("logs", "-n", "-1", cwd=tmp_path)
    assert negative.returncode == 2 and "is not a number of lines" in negative.stderr


def test_config_errors_mask_secret_values(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text(
        textwrap.dedent("""
        services:
          a:
            image: x
            environment: {DB_PASSWORD: [hunter2-secret]}
    """)
    )
    with pytest.raises(ConfigError) as info:
        load_stack(tmp_path / "docker-compose.yml", environ={})
    assert "hunter2-secret" not in str(info.value) and "DB_PASSWORD" in str(info.value)
