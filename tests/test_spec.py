"""Reading compose files: every form the contract lists, and every error a user can make."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_pyairtable.model.spec import Dependency, StackSpec, load_stack
from pytest_pyairtable.support.errors import (
    ComposeFileError,
    ConfigError,
    DependencyCycleError,
    InterpolationError,
    UnknownServiceError,
)

ROOT = Path(__file__).resolve().parent.parent


def load(
    tmp_path: Path, text: str, env: dict[str, str] | None = None, **kwargs: object
) -> StackSpec:
    path = tmp_path / "docker-compose.yml"
    path.write_text(textwrap.dedent(text))
    return load_stack(path, environ=env or {}, **kwargs)  # type: ignore[arg-type]


def test_depends_on_list_and_map_forms(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        """
        services:
          db: {image: postgres:16}
          cache: {image: redis:7}
          init: {image: busybox}
          optional: {image: x, profiles: [extra]}
          app:
            image: app
            depends_on:
              db: {condition: service_healthy, restart: true}
              init: {condition: service_completed_successfully}
              optional: {condition: service_started, required: false}
          web: {image: web, depends_on: [app, cache]}
    """,
    )
    assert stack.services["app"].depends_on == (
        Dependency("db", "service_healthy", restart=True),
        Dependency("init", "service_completed_successfully"),
        Dependency("optional", "service_started", required=False),
    )
    assert stack.services["web"].depends_on == (Dependency("app"), Dependency("cache"))


def test_healthcheck_forms(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        """
        services:
          a: {image: x, healthcheck: {test: ["CMD", "true"], interval: 1m30s, timeout: 250ms, retries: 2, start_period: 5s, start_interval: 100ms}}
          b: {image: x, healthcheck: {test: ["CMD-SHELL", "exit 0"]}}
          c: {image: x, healthcheck: {test: "exit 0"}}
          d: {image: x, healthcheck: {test: ["NONE"]}}
          e: {image: x, healthcheck: {test: ["CMD", "true"], disable: true}}
    """,
    )
    a = stack.services["a"].healthcheck
    assert a is not None and a.test == ("true",)
    assert (a.interval, a.timeout, a.retries, a.start_period, a.start_interval) == (
        90,
        0.25,
        2,
        5,
        0.1,
    )
    assert stack.services["b"].healthcheck.test == ("/bin/sh", "-c", "exit 0")  # type: ignore[union-attr]
    assert stack.services["c"].healthcheck.test == ("/bin/sh", "-c", "exit 0")  # type: ignore[union-attr]
    assert stack.services["d"].healthcheck is None
    assert stack.services["e"].healthcheck is None
    assert stack.services["b"].probe.kind == "command"
    assert stack.services["d"].probe.kind == "started"


def test_ports_short_and_long(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        """
        services:
          a:
            image: x
            ports:
              - "8000"
              - "127.0.0.1:9001:9000/tcp"
              - "7000-7001:8000-8001"
              - 6000
              - {target: 80, published: "8080", host_ip: 127.0.0.1}
    """,
    )
    svc = stack.services["a"]
    assert [(p.container, p.host) for p in svc.ports] == [
        (8000, None),
        (9000, 9001),
        (8000, 7000),
        (8001, 7001),
        (6000, None),
        (80, 8080),
    ]
    assert svc.host_port(9000) == 9001
    assert svc.host_port(6000) == 6000


def test_environment_map_list_env_file_and_precedence(tmp_path: Path) -> None:
    (tmp_path / "svc.env").write_text("FROM_FILE=file\nOVERRIDDEN=file\n")
    (tmp_path / ".env").write_text("TAG=from-dotenv\nSHELL_WINS=dotenv\n")
    stack = load(
        tmp_path,
        """
        services:
          a:
            image: app:${TAG}
            env_file: [svc.env, {path: absent.env, required: false}]
            environment:
              - OVERRIDDEN=env
              - PASSTHROUGH
              - WHO=${SHELL_WINS}
          b:
            image: app
            environment: {FLAG: true, COUNT: 3, EMPTY: null}
    """,
        env={"PASSTHROUGH": "shell", "SHELL_WINS": "shell"},
    )
    a = stack.services["a"]
    assert a.image == "app:from-dotenv"
    assert dict(a.environment) == {
        "FROM_FILE": "file",
        "OVERRIDDEN": "env",
        "PASSTHROUGH": "shell",
        "WHO": "shell",
    }
    assert dict(stack.services["b"].environment) == {"FLAG": "true", "COUNT": "3"}


def test_required_env_file_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"service 'a': env_file .*nope\.env does not exist"):
        load(tmp_path, "services: {a: {image: x, env_file: nope.env}}")


def test_profiles(tmp_path: Path) -> None:
    text = """
        services:
          a: {image: x}
          debug: {image: x, profiles: [debug]}
          tool: {image: x, profiles: [tools, debug]}
    """
    assert set(load(tmp_path, text).services) == {"a"}
    assert set(load(tmp_path, text, profiles=["debug"]).services) == {"a", "debug", "tool"}
    assert set(load(tmp_path, text, env={"COMPOSE_PROFILES": "tools"}).services) == {"a", "tool"}


def test_dependency_on_inactive_profile_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'b'.*profile is not active.*--pyairtable-profile"):
        load(tmp_path, "services: {a: {image: x, depends_on: [b]}, b: {image: x, profiles: [p]}}")


def test_anchors_merge_keys_and_x_keys(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        """
        x-common: &common
          image: shared:${TAG:-1}
          healthcheck: &hc {test: ["CMD", "true"], interval: 2s}
        services:
          a:
            <<: *common
          b:
            <<: *common
            healthcheck: {<<: *hc, retries: 9}
    """,
    )
    assert stack.services["a"].image == "shared:1"
    assert stack.services["b"].healthcheck.retries == 9  # type: ignore[union-attr]
    assert stack.services["b"].healthcheck.interval == 2  # type: ignore[union-attr]


def test_yaml_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ComposeFileError, match=r"docker-compose.yml:4:\d+: YAML error"):
        load(tmp_path, "services:\n  a:\n    image: x\n   bad: y\n")
    with pytest.raises(ComposeFileError, match=r"flow sequence at line 3"):
        load(tmp_path, "services:\n  a:\n    image: [unclosed\n")


def test_cycle(tmp_path: Path) -> None:
    with pytest.raises(DependencyCycleError, match="a -> b -> a"):
        load(tmp_path, "services: {a: {image: x, depends_on: [b]}, b: {image: x, depends_on: [a]}}")


def test_unknown_dependency(tmp_path: Path) -> None:
    with pytest.raises(UnknownServiceError, match="'a' depends on 'ghost'"):
        load(tmp_path, "services: {a: {image: x, depends_on: [ghost]}}")


def test_all_missing_variables_at_once(tmp_path: Path) -> None:
    with pytest.raises(InterpolationError) as info:
        load(
            tmp_path,
            """
            services:
              a: {image: "x:${A:?set A}", environment: {P: "${B:?}"}}
        """,
        )
    assert "A (set A)" in str(info.value) and "B (is empty or unset)" in str(info.value)


def test_bad_duration_names_service_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"service 'a': healthcheck\.interval: '5 sec'"):
        load(
            tmp_path,
            "services: {a: {image: x, healthcheck: {test: [CMD, 'true'], interval: 5 sec}}}",
        )


def test_unknown_condition(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"condition must be one of .*got 'service_ready'"):
        load(
            tmp_path,
            "services: {a: {image: x, depends_on: {b: {condition: service_ready}}}, b: {image: x}}",
        )


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (
            "{x-pyairtable: {lokal: {}}}",
            r"x-pyairtable: unknown key\(s\) lokal. Fix: correct the spelling; valid keys: local, probe",
        ),
        ("{x-pyairtable: {local: {cmd: x}}}", r"x-pyairtable.local: unknown key\(s\) cmd"),
        ("{x-pyairtable: {probe: {htp: x}}}", r"probe: unknown key\(s\) htp"),
        ("{x-pyairtable: {probe: {http: x, tcp: y}}}", "exactly one of"),
    ],
)
def test_unknown_x_pyairtable_keys(tmp_path: Path, block: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load(tmp_path, f"services: {{a: {{image: x, {block[1:]}}}")


def test_probe_derivation(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        """
        services:
          db:
            image: docker.io/library/postgres:16-alpine
            environment: {POSTGRES_USER: u, POSTGRES_PASSWORD: "p@ss", POSTGRES_DB: d}
            ports: ["15432:5432"]
          cache:
            image: redis:7
            command: redis-server --requirepass s3cret
            ports: ["16379:6379"]
          web:
            image: web
            ports: ["18002:8002"]
            healthcheck: {test: ["CMD-SHELL", "curl -f http://localhost:8002/health || exit 1"]}
          front:
            image: web
            ports: ["13000:3000"]
            healthcheck: {test: "wget -qO- http://127.0.0.1:3000/api/health"}
          job: {image: tool}
          custom:
            image: x
            x-pyairtable: {probe: {http: "http://127.0.0.1:1/ok", status: 204, json: {ok: true}}}
    """,
    )
    s = stack.services
    assert s["db"].probe.target == "postgresql://u:p%40ss@127.0.0.1:15432/d"
    assert s["cache"].probe.target == "redis://:s3cret@127.0.0.1:16379/0"
    assert s["web"].probe.target == "http://127.0.0.1:18002/health"
    assert s["front"].probe.target == "http://127.0.0.1:13000/api/health"
    assert s["job"].probe.kind == "started"
    assert (s["custom"].probe.status, dict(s["custom"].probe.json)) == (204, {"ok": True})


def test_secret_values_are_collected(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        """
        services:
          a: {image: x, environment: {DB_PASSWORD: hunter22, API_KEY: k-123, PLAIN: visible}}
    """,
        env={"JWT_SECRET": "jwt-xyz"},
    )
    assert set(stack.secret_values()) >= {"hunter22", "k-123", "jwt-xyz"}
    assert "visible" not in stack.secret_values()


def test_the_dev_stack_file_loads_with_the_seed_tiers() -> None:
    env = {
        k: "x"
        for k in (
            "POSTGRES_PASSWORD",
            "REDIS_PASSWORD",
            "AIRTABLE_TOKEN",
            "GEMINI_API_KEY",
            "API_KEY",
            "JWT_SECRET",
            "NEXTAUTH_SECRET",
        )
    }
    stack = load_stack(ROOT / "docker-compose.yml", environ=env, env_file=ROOT / ".env.example")
    from pytest_pyairtable.model.graph import tiers

    got = tiers({n: [d.name for d in s.depends_on] for n, s in stack.services.items()})
    assert got["frontend"] == 7 and got["api-gateway"] == 6 and got["saga-orchestrator"] == 5
    assert {n for n, t in got.items() if t == 1} == {"postgres", "redis"}
    assert all(s.local.command or s.image_kind for s in stack.services.values())


def test_passwords_given_only_in_commands_or_urls_are_secrets(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        """
        services:
          cache: {image: redis:7, command: redis-server --requirepass literal-pw-1}
          app:
            image: x
            x-pyairtable: {probe: {postgres: "postgresql://u:url%2Fpw-2@127.0.0.1:5432/d"}}
    """,
    )
    assert {"literal-pw-1", "url/pw-2"} <= set(stack.secret_values())


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "services: {a: {image: x, x-pyairtable: {local: {env: [A]}}}}",
            r"local\.env must be a mapping",
        ),
        (
            "services: {a: {image: x, x-pyairtable: {local: {command: 5}}}}",
            r"local\.command must be",
        ),
        (
            "services: {a: {image: x, x-pyairtable: {probe: {tables: 5}}}}",
            r"probe\.tables must be a list",
        ),
        ("services: {a: {image: x, x-pyairtable: {url: 5}}}", r"url must be a string"),
        ("include: [{path: true}]\nservices: {}", r"include\[0\]\.path must be"),
        ("include: [{path: a.yml, bad: 1}]\nservices: {}", r"unknown key\(s\) 'bad'"),
        ("services: {a: {extends: {service: 5}}}", r"extends\.service must name"),
        ("services: {a: {image: x, networks: [[x]]}}", r"networks\[0\] must be a string"),
        ("networks: true\nservices: {a: {image: x}}", r"networks must be a mapping"),
        ("services: {a: {image: x, healthcheck: 'curl x'}}", r"healthcheck must be a mapping"),
        ("services: {a: {image: x, depends_on: 5}}", r"depends_on must be a list or a mapping"),
        ("services: {a: {image: x, environment: 5}}", r"environment must be a mapping or a list"),
        ("services: {a: {image: x, command: 5}}", r"command must be empty or a string or a list"),
    ],
)
def test_wrong_types_are_our_error_not_a_traceback(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load(tmp_path, text)
