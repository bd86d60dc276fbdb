"""What the compose backend decides without running a container: where the engine is
(an unknown Docker context is refused, as the docker CLI refuses it), which engine
answers and how it differs, which healthcheck test runs, which images are pulled or
built (compose's pull_policy rules), and what a build's context digest covers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_pyairtable.backends import engines
from pytest_pyairtable.backends.builds import context_digest
from pytest_pyairtable.backends.fetch import Fetch
from pytest_pyairtable.backends.healthexec import HealthTest
from pytest_pyairtable.backends.images import image_name, must_pull, pull_policy
from pytest_pyairtable.model.spec import ServiceSpec, load_stack
from pytest_pyairtable.support.errors import ConfigError, PrerequisiteError


@pytest.fixture
def no_engine_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def test_docker_host_wins(monkeypatch: pytest.MonkeyPatch, no_engine_chosen: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    monkeypatch.setenv("DOCKER_CONTEXT", "nowhere")  # the CLI, too, takes DOCKER_HOST first
    found = engines.locate()
    assert (found.url, found.found, found.environ) == ("tcp://127.0.0.1:1", "DOCKER_HOST", {})


@pytest.mark.parametrize("how", ["DOCKER_CONTEXT", "currentContext"])
def test_an_unknown_context_is_an_error_not_another_engine(
    how: str, monkeypatch: pytest.MonkeyPatch, no_engine_chosen: Path
) -> None:
    """The docker CLI and compose fail with "context not found": so do we, instead of
    quietly using the default socket (another engine than the one the user chose)."""
    if how == "DOCKER_CONTEXT":
        monkeypatch.setenv("DOCKER_CONTEXT", "staging")
    else:
        (no_engine_chosen / "config.json").write_text(json.dumps({"currentContext": "staging"}))
    with pytest.raises(PrerequisiteError) as raised:
        engines.locate()
    message = str(raised.value)
    assert "the Docker context 'staging'" in message and "does not exist" in message
    assert "docker context ls" in message


def test_a_context_names_its_engine(no_engine_chosen: Path) -> None:
    """As `docker context create x --docker host=...` writes it."""
    import hashlib

    meta = no_engine_chosen / "contexts" / "meta" / hashlib.sha256(b"remote").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": "remote", "Endpoints": {"docker": {"Host": "tcp://10.0.0.9:2375"}}})
    )
    (no_engine_chosen / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    found = engines.locate()
    assert (found.url, found.context) == ("tcp://10.0.0.9:2375", "remote")
    assert found.found == "the Docker context 'remote'"


def test_podman_is_told_apart_by_its_version_components() -> None:
    where = engines.Location("unix:///x", "test")
    docker = engines.Engine.identify(
        {"Version": "28.2.2", "ApiVersion": "1.50", "Components": [{"Name": "Engine"}]}, where
    )
    podman = engines.Engine.identify(
        {
            "Version": "4.3.1",
            "ApiVersion": "1.41",
            "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}],
        },
        where,
    )
    assert (docker.kind, docker.version, podman.kind, podman.version) == (
        "Docker",
        "28.2.2",
        "Podman",
        "4.3.1",
    )
    # each difference, one capability (engines.py's docstrings say what they change)
    assert docker.has_health_verdicts and not podman.has_health_verdicts
    assert docker.removal_events == {"destroy"} and podman.removal_events == {"remove"}
    assert docker.log_stamps_precise and not podman.log_stamps_precise
    assert docker.pull_reports_bytes and not podman.pull_reports_bytes
    assert podman.pull_stall_limit > docker.pull_stall_limit
    assert podman.compose_environ == {"DOCKER_BUILDKIT": "0"} and docker.compose_environ == {}


def test_the_healthcheck_test_is_the_compose_files_not_the_engines_copy() -> None:
    """Podman 4 stores CMD's arguments split on whitespace; the compose file's test is
    run as written, with the engine's timings. An image's own check comes from the engine."""
    code = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:1/')"
    mangled = {"Test": ["CMD", "python3", "-c", *code.split()], "Interval": 2_000_000_000}
    declared = {"test": ["CMD", "python3", "-c", code]}
    test = HealthTest.of({"Config": {"Healthcheck": mangled}}, declared)
    assert test is not None and test.test == ("CMD", "python3", "-c", code)
    assert test.interval == 2.0
    inherited = HealthTest.of({"Config": {"Healthcheck": mangled}}, None)
    assert inherited is not None and inherited.test == tuple(mangled["Test"])
    assert HealthTest.of({"Config": {"Healthcheck": {"Test": ["NONE"]}}}, {"disable": True}) is None


def _services(tmp_path: Path, body: str) -> dict[str, ServiceSpec]:
    path = tmp_path / "docker-compose.yml"
    path.write_text(body)
    return dict(load_stack(path, environ={}).services)


def test_pull_policies_as_compose_reads_them(tmp_path: Path) -> None:
    services = _services(
        tmp_path,
        """
services:
  default: {image: a}
  always: {image: a, pull_policy: always}
  never: {image: a, pull_policy: never}
  present: {image: a, pull_policy: if_not_present}
  build: {image: a, build: ., pull_policy: build}
  daily: {image: a, pull_policy: daily}
  weekly: {image: a, pull_policy: weekly}
  every: {image: a, pull_policy: every_1h30m}
  refresh: {image: a, pull_policy: refresh}
  built: {build: .}
""",
    )
    policies = {name: pull_policy(svc) for name, svc in services.items()}
    assert policies == {
        "default": ("missing", None),
        "always": ("always", None),
        "never": ("never", None),
        "present": ("missing", None),
        "build": ("build", None),
        "daily": ("refresh", 86400.0),
        "weekly": ("refresh", 604800.0),
        "every": ("refresh", 5400.0),
        "refresh": ("missing", None),  # compose-go reads a bare refresh as missing
        "built": ("missing", None),
    }
    assert image_name(services["built"], "proj") == "proj-built"  # compose's default name
    assert image_name(services["default"], "proj") == "a"


def _inspected(tagged_ago: float) -> dict[str, Any]:
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - tagged_ago))
    return {"Metadata": {"LastTagTime": f"{moment}.123456789Z"}}


def test_what_is_pulled_as_compose_decides(tmp_path: Path) -> None:
    """compose's mustPull: present or missing, each policy."""
    services = _services(
        tmp_path,
        """
services:
  default: {image: a}
  always: {image: a, pull_policy: always}
  never: {image: a, pull_policy: never}
  build: {image: a, build: ., pull_policy: build}
  hourly: {image: a, pull_policy: every_1h}
  built: {build: .}
""",
    )
    fresh, stale = _inspected(60), _inspected(7200)
    podman = {"Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}}
    decided = {
        name: (must_pull(svc, None), must_pull(svc, fresh), must_pull(svc, stale))
        for name, svc in services.items()
    }
    assert decided == {
        "default": (True, False, False),
        "always": (True, True, True),
        "never": (False, False, False),
        "build": (False, False, False),
        "hourly": (True, False, True),
        "built": (False, False, False),  # no image: to pull; it is built
    }
    assert must_pull(services["hourly"], podman)  # never tagged, as Podman reports it


def test_an_every_policy_compose_refuses_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pull_policy"):
        _services(tmp_path, "services:\n  a: {image: a, pull_policy: every_often}\n")


def _context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY src /src\n")
    (root / "src" / "app.py").write_text("print('v1')\n")
    (root / "notes.md").write_text("not in the image\n")
    (root / ".dockerignore").write_text("# comments are not patterns\nnotes.md\n")
    return root


def test_the_context_digest_follows_what_the_build_sends(tmp_path: Path) -> None:
    root = _context(tmp_path)
    build = {"context": str(root)}
    first = context_digest(build)
    assert first is not None and context_digest(build) == first  # stable
    (root / "notes.md").write_text("edited, but ignored\n")
    assert context_digest(build) == first
    (root / "src" / "app.py").write_text("print('v2')\n")
    second = context_digest(build)
    assert second != first
    (root / "src" / "app.py").chmod(0o755)
    assert context_digest(build) != second  # the mode is part of what is sent
    third = context_digest(build)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY src /src\nENV X=1\n")
    assert context_digest(build) != third
    fourth = context_digest(build)
    assert context_digest({**build, "args": {"VERSION": "2"}}) != fourth  # build settings
    assert context_digest({**build, "target": "test"}) != fourth


def test_a_dockerfiles_own_ignore_file_wins(tmp_path: Path) -> None:
    """BuildKit reads <Dockerfile>.dockerignore before the context's .dockerignore."""
    root = _context(tmp_path)
    (root / "Dockerfile.dockerignore").write_text("src/app.py\n")
    build = {"context": str(root)}
    before = context_digest(build)
    (root / "src" / "app.py").write_text("print('ignored by the Dockerfile's own file')\n")
    assert context_digest(build) == before
    (root / "notes.md").write_text("now sent: the context's file is not read\n")
    assert context_digest(build) != before


def test_a_remote_context_has_no_digest() -> None:
    """Only a build can tell whether a git context changed: it is built, with the cache."""
    assert context_digest({"context": "https://github.com/org/repo.git#main"}) is None


def test_a_fetch_says_how_far_it_is_and_what_it_took() -> None:
    fetch = Fetch("pull", "127.0.0.1:5000/app:1", ["api"])
    assert fetch.live() == "pulling 127.0.0.1:5000/app:1 asking the registry"
    fetch.layers_total, fetch.layers_done = 5, 2
    fetch.bytes_total, fetch.bytes_done = 9_000_000, 3_100_000
    assert fetch.live() == "pulling 127.0.0.1:5000/app:1 2/5 layers, 3.1/9.0 MB"
    fetch.finish("pulled")
    assert fetch.wait(0) and fetch.error is None
    assert fetch.summary().startswith("pulled 127.0.0.1:5000/app:1 in ")
    assert fetch.summary().endswith("(5 layers, 9.0 MB)")
    broken = Fetch("build", "proj-api", ["api"])
    broken.step = "3/7"
    assert broken.live() == "building proj-api step 3/7"
    broken.fail("could not build its image proj-api: exit 1", "correct the Dockerfile")
    assert broken.done and broken.error and broken.fix == "correct the Dockerfile"


def test_pulls_are_stuck_only_when_none_of_them_moves() -> None:
    """One pull may wait in silence while the others' layers download (Docker downloads
    three at a time across all pulls): the run's pulls are stopped as stuck only when
    none of those the registry answered received anything for the stall limit. (Stand-ins
    for pulls: a real stall takes the engine's two minutes.)"""
    from pytest_pyairtable.backends.pulls import StallWatch

    @dataclass
    class Pull:
        last_event: float
        answered: bool = True
        stalled: bool = False
        engine: Any = None

        def stall(self) -> None:
            self.stalled = True

    docker = engines.Engine("Docker", "28", "1.50", engines.Location("unix:///x", "test"))
    limit = docker.pull_stall_limit
    now = time.monotonic()
    silent, moving = Pull(now - 2 * limit, engine=docker), Pull(now, engine=docker)
    unanswered = Pull(now - 3 * limit, answered=False, engine=docker)
    watch = StallWatch()
    for pull in (silent, moving, unanswered):
        watch.add(pull)  # type: ignore[arg-type]
    try:
        watch.look()  # (its thread looks once a second)
        assert not silent.stalled and not moving.stalled  # one of them moves
        moving.last_event = now - 2 * limit
        watch.look()
        assert silent.stalled and moving.stalled
        assert not unanswered.stalled  # its own deadline (the first answer) applies
    finally:
        watch.close()
