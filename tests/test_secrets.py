"""Planted secrets: a stack whose secrets sit everywhere a real project puts them (.env,
URLs in environment values, command-line flags, a healthcheck, labels, an x- block, the
pytest process's own environment, a --pyairtable-url) and whose services print them.
Every output channel is grepped (terminal, junit XML, the timeline, the `pyairtable`
command's output) and every file the run wrote: a secret may only be in a service's own
log (it printed it; 0600) or a kept stack's record (0600), nowhere else.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml
from leakcheck import LeakCheck
from stackrun import cli

from conftest import Ports, Project

STANDIN = "python -m pytest_pyairtable.standin --startup-delay 0"

PLANTED = {
    "DB_PASSWORD": "plant-db-1",
    "REDIS_PASSWORD": "plant-redis-2",
    "API_TOKEN": "plant-tok-3",
}
LITERAL = ["plant-key-4", "plant-flag-5", "plant-hc-6", "plant-label-7", "plant-x-8"]
ENVIRON = {"GITHUB_TOKEN": "plant-env-9"}
URL_SECRET = "plant-url-10"
ALL = [*PLANTED.values(), *LITERAL, *ENVIRON.values(), URL_SECRET]


def planted_project(project: Project, ports: list[int]) -> None:
    db, cache, api = ports
    project.env("".join(f"{k}={v}\n" for k, v in PLANTED.items()))
    # bare values (only known-value masking can catch them), then URLs with passwords
    leak = "printenv GITHUB_TOKEN API_TOKEN SIGNING_KEY; echo DATABASE_URL=$$DATABASE_URL"
    project.compose(f"""
        x-deploy: {{registry_url: "https://ci:plant-x-8@registry.example/"}}
        services:
          postgres:
            image: postgres:16
            environment: {{POSTGRES_USER: app, POSTGRES_PASSWORD: "${{DB_PASSWORD}}", POSTGRES_DB: app}}
            ports: ["{db}:5432"]
          redis:
            image: redis:7
            command: redis-server --requirepass ${{REDIS_PASSWORD}}
            ports: ["{cache}:6379"]
          api:
            image: example/api
            labels: {{com.example.api-token: plant-label-7}}
            depends_on:
              postgres: {{condition: service_healthy}}
              redis: {{condition: service_healthy}}
            environment:
              DATABASE_URL: postgresql://app:${{DB_PASSWORD}}@127.0.0.1:{db}/app
              REDIS_URL: redis://:${{REDIS_PASSWORD}}@127.0.0.1:{cache}/0
              SIGNING_KEY: plant-key-4
              API_TOKEN: ${{API_TOKEN}}
            x-pyairtable:
              local:
                command: ["sh", "-c", "{leak}; exec {STANDIN} --name api --port {api}", "--token", "plant-flag-5"]
              probe: {{tcp: "127.0.0.1:{api}"}}
          broken:
            image: example/broken
            depends_on: [api]
            environment:
              DATABASE_URL: postgresql://app:${{DB_PASSWORD}}@127.0.0.1:{db}/app
              API_TOKEN: ${{API_TOKEN}}
            healthcheck: {{test: ["CMD", "check", "--password", "plant-hc-6"], interval: 1s}}
            x-pyairtable:
              local: {{command: ["sh", "-c", "{leak}; echo fatal --token plant-flag-5 >&2; exit 3"]}}
    """)


def assert_cache_holds_only_what_the_compose_file_spells_out(project: Project) -> None:
    cached = (project.path / ".pyairtable" / "documents").read_bytes().decode(errors="replace")
    spelled_out = (project.path / "docker-compose.yml").read_text()
    assert leaks(cached) and set(leaks(cached)) <= set(leaks(spelled_out))


def leaks(text: str) -> list[str]:
    return [s for s in ALL if s in text]


def files_under(roots: Iterable[Path]) -> list[Path]:
    found = []
    for root in roots:
        for folder, _, names in os.walk(root):
            found += [Path(folder, n) for n in names]
    return found


def snapshot(roots: Iterable[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in files_under(roots) if p.is_file()}


def assert_files_hold_no_secret(
    roots: Iterable[Path], allowed: Callable[[Path], bool], inputs: dict[Path, int]
) -> int:
    """Every file under ``roots`` that the run wrote (not one of the ``inputs`` as they
    were) holds no planted secret, or is allowed to and readable by its owner only.
    Returns how many files were read."""
    files = files_under(roots)
    for path in files:
        if path.is_symlink() or not path.is_file():
            continue
        if inputs.get(path) == path.stat().st_mtime_ns:
            continue  # the project's own .env and compose file
        found = leaks(path.read_bytes().decode(errors="replace"))
        if found:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert allowed(path), f"{path} holds {found}"
            assert mode & 0o077 == 0, f"{path} holds {found} and is mode {oct(mode)}"
    return len(files)


def test_no_planted_secret_reaches_any_output_or_file(
    project: Project, free_ports: Ports, no_leaks: LeakCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = free_ports(3)
    planted_project(project, ports)
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    project.tests("""
        import os, stat

        import psycopg

        def test_handles(pyairtable_postgres, pyairtable_redis, pyairtable_api):
            dsn = pyairtable_postgres.url
            print("connecting to", dsn, pyairtable_redis.url)
            with psycopg.connect(dsn) as conn:
                sockets = conn.execute("SHOW unix_socket_directories").fetchone()[0]
            workdir = os.stat(sockets)
            assert stat.S_IMODE(workdir.st_mode) == 0o700  # the server's own directory
            assert "pwfile" not in os.listdir(sockets)
            log = os.stat(pyairtable_api.log_path)
            assert stat.S_IMODE(log.st_mode) == 0o600
            assert pyairtable_postgres.port == 1, pyairtable_postgres

        def test_compare(pyairtable_postgres):
            url = pyairtable_postgres.url
            assert url == "something else"

        def test_broken(pyairtable_broken):
            pass
    """)
    logs, junit, timeline = (
        project.path / "logs",
        project.path / "junit.xml",
        project.path / "t.html",
    )
    inputs = snapshot([project.path])
    result = project.run_subprocess(
        "-l", "-rA", "-v", "--pyairtable-debug", f"--junitxml={junit}",
        f"--pyairtable-logs-dir={logs}", f"--pyairtable-timeline={timeline}",
        f"--pyairtable-url=api=http://u:{URL_SECRET}@127.0.0.1:1",
    )  # fmt: skip
    out = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=2, errors=1)
    assert "= Handle(name='postgres'" in out  # assertion rewriting shows the repr, masked
    assert "postgresql://app:***@127.0.0.1" in out
    assert "= 'postgresql://app:***@" in out  # -l: the local variable
    assert "| DATABASE_URL=postgresql://app:***@" in out  # the broken service's log tail
    assert "--password ***" in out  # its probe, as described
    assert not leaks(out), leaks(out)
    assert (
        not leaks(junit.read_text()) and "DATABASE_URL=postgresql://app:***@" in junit.read_text()
    )
    assert not leaks(timeline.read_text()) and "broken" in timeline.read_text()
    # Files: the services' own logs hold what they printed, as do the last run's copies
    # of them (and its index, what to redact), and the parsed-documents cache what the
    # compose file itself spells out (never a value from the environment), 0600 all;
    # nothing else holds any.
    documents = project.path / ".pyairtable" / "documents"
    read = assert_files_hold_no_secret(
        [project.path, no_leaks.root],
        lambda p: p.parent == logs or p.parent.name.endswith(".last-run") or p == documents,
        inputs,
    )
    assert_cache_holds_only_what_the_compose_file_spells_out(project)
    assert read > 5
    assert {p.name for p in logs.iterdir()} >= {"api.log", "broken.log", "postgres.log"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in logs.iterdir())


def test_the_command_line_shows_no_planted_secret(
    project: Project, free_ports: Ports, no_leaks: LeakCheck, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = free_ports(3)
    planted_project(project, ports)
    compose = project.path / "docker-compose.yml"
    compose.write_text(compose.read_text().split("  broken:")[0])  # only what comes up
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    outputs = []
    inputs = snapshot([project.path])
    up = cli("up", "--detach", cwd=project.path)
    outputs.append(up.stdout + up.stderr)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        record = project.path / ".pyairtable" / "docker-compose.yml.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600 and leaks(record.read_text())
        for args in (["status"], ["status", "--json"], ["logs"], ["logs", "api", "-n", "5"],
                     ["graph"], ["config"], ["config", "--format", "yaml"]):  # fmt: skip
            done = cli(*args, cwd=project.path)
            assert done.returncode == 0, (args, done.stdout + done.stderr)
            outputs.append(done.stdout + done.stderr)
            if "--json" in args or args == ["config"]:  # masked inside the data: it parses
                assert json.loads(done.stdout)
            if args == ["config", "--format", "yaml"]:
                assert yaml.safe_load(done.stdout)["services"].keys() == {
                    "postgres",
                    "redis",
                    "api",
                }
        dsn = f"postgresql://app:{PLANTED['DB_PASSWORD']}@127.0.0.1:{ports[0]}/app"
        outputs.append(cli("wait", dsn, "--timeout", "5").stdout)
        outputs.append(cli("wait", dsn.replace(str(ports[0]), "9"), "--timeout", "0.1").stderr)
        assert_files_hold_no_secret(
            [project.path, no_leaks.root],
            lambda p: (
                p in (record, record.with_name("documents"))
                or (
                    p.parent.name.endswith(("-logs", ".last-run")) and p.suffix in (".log", ".json")
                )
            ),
            inputs,
        )
        assert_cache_holds_only_what_the_compose_file_spells_out(project)
    finally:
        down = cli("down", "--volumes", cwd=project.path)
        outputs.append(down.stdout + down.stderr)
    assert down.returncode == 0
    text = "\n".join(outputs)
    assert "postgresql://app:***@" in text and "ready: postgresql://app:***@" in text
    assert not leaks(text), leaks(text)


def test_xdist_workers_reports_are_redacted_by_the_controller(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    project.env("WORKER_SECRET=plant-worker-11\n")  # known to the stack only, not the env
    project.compose(f"""
        services:
          a:
            image: x
            environment: {{WORKER_SECRET: "${{WORKER_SECRET}}"}}
            x-pyairtable:
              local: {{command: {STANDIN} --name a --port {port}}}
              probe: {{tcp: "127.0.0.1:{port}"}}
    """)
    # The value is made at run time: a traceback shows the code as written (never
    # rewritten), so a secret spelled out in a test's own source would be shown there.
    project.tests("""
        import pytest

        SECRET = "plant-worker" + "-11"

        @pytest.mark.parametrize("i", range(2))
        def test_prints_it(pyairtable_a, i):
            print("the value is", SECRET)
            assert SECRET == "", SECRET
    """)
    junit = project.path / "junit.xml"
    result = project.run_subprocess("-n", "2", "-rA", f"--junitxml={junit}")
    result.assert_outcomes(failed=2)
    out = result.stdout.str() + result.stderr.str() + junit.read_text()
    assert "the value is ***" in out
    assert "plant-worker-11" not in out
