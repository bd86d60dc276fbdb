"""Images pulled from a registry and built from a context, on Docker and on Podman: a
registry of the session's own on loopback (Debian's docker-registry, open or behind
htpasswd; conftest's ``registry`` and ``auth_registry``) holds images pushed here, which
the engine under test does not have; every test removes what it pulled or built.

A stack of them boots, its pulls shown (progress lines, the summary's image column and
lines, the timeline's phases), pulls and builds beside each other and beside the boot; a
pull that cannot succeed (no such tag, no or wrong credentials, no registry) is one error
naming the image, its registry, the cause and the fix, and leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from containers import IMAGE, ROOT, docker_cli, import_root_image, our_containers
from enginekit import Registry

from conftest import Project
from pytest_pyairtable.backends.builds import cache_repository
from pytest_pyairtable.model.spec import load_stack

Ports = Callable[[int], list[int]]


@dataclass
class EngineUnderTest:
    name: str  # "docker" or "podman"
    host: str | None  # DOCKER_HOST, None for the default engine

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return docker_cli(*(["-H", self.host] if self.host else []), *args)

    def has(self, image: str) -> bool:
        return self.docker("image", "inspect", image).returncode == 0

    def forget(self, *images: str) -> None:
        """Remove these images (tags) from the engine: the next run must pull them."""
        for image in images:
            if self.has(image):
                done = self.docker("rmi", "-f", image)
                assert done.returncode == 0, done.stderr


@pytest.fixture(params=["docker", "podman"])
def on_engine(
    request: pytest.FixtureRequest,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> EngineUnderTest:
    """The engine the run uses (its images pushed from Docker, which every test needs)."""
    if request.param == "docker":
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        return EngineUnderTest("docker", None)
    podman = request.getfixturevalue("podman")
    under = EngineUnderTest("podman", podman.host)
    if not under.has(IMAGE):
        import_root_image(IMAGE, host=podman.host)
    monkeypatch.setenv("DOCKER_HOST", podman.host)
    return under


@pytest.fixture(scope="module")
def pushed(registry: Registry, engine: str) -> dict[str, str]:
    """Images in the open registry, by a short name: app (two layers over the base),
    worker (one)."""
    return {
        "app": registry.push("pa/app:1", (1_500_000, 2_500_000), from_image=IMAGE),
        "worker": registry.push("pa/worker:1", (1_000_000,), from_image=IMAGE),
    }


@pytest.fixture(scope="module")
def private(auth_registry: Registry, engine: str) -> str:
    """An image behind the htpasswd registry (its own fixture: without htpasswd, only
    the tests that need credentials skip)."""
    return auth_registry.push("pa/private:1", (500_000,), from_image=IMAGE)


@pytest.fixture
def stack_project(project: Project, on_engine: EngineUnderTest) -> Iterator[Project]:
    """A project on the engine under test; its containers checked and its images removed
    after the test (the test's own: named by the registries' ports or our build cache)."""
    assert our_containers() == []
    yield project
    leaked = our_containers()
    if leaked:
        on_engine.docker("rm", "-f", *[c.split()[0] for c in leaked])
    assert not leaked, f"containers outlived the test: {leaked}"


def container(name: str, image: str, body: str = "") -> str:
    return f"""
  {name}:
    image: {image}
    network_mode: host
    volumes: ["/usr:/usr:ro", "{ROOT}:/app:ro"]
    environment: {{PYTHONPATH: /app}}
    stop_grace_period: 5s{body}"""


def standin(name: str, port: int, extra: str = "") -> str:
    return (
        f'\n    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", '
        f'"{name}", "--port", "{port}"]\n    x-pyairtable: {{probe: {{http: '
        f'"http://127.0.0.1:{port}/health"}}}}{extra}'
    )


def _build_context(where: Path, text: str = "v1") -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY version.txt /version.txt\n")
    (where / "version.txt").write_text(text)
    (where / "scratch.log").write_text("not sent\n")
    (where / ".dockerignore").write_text("scratch.log\n")
    return where


def _forget_builds(project: Project, on_engine: EngineUnderTest) -> None:
    """The build cache's images of this project's services (their repository's name holds
    the context's path, which is this test's own)."""
    stack = load_stack(project.path / "docker-compose.yml", environ={})
    listed = on_engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    for svc in stack.services.values():
        if svc.compose.get("build"):
            on_engine.forget(*[tag for tag in listed if cache_repository(svc) in tag])


def _phases(path: Path) -> dict[str, dict[str, int]]:
    events = json.loads(path.read_text())["traceEvents"]
    return {e["name"]: e for e in events if e["ph"] == "X"}


def test_a_stack_of_pulled_and_built_images_boots_showing_each(
    stack_project: Project,
    on_engine: EngineUnderTest,
    pushed: dict[str, str],
    free_ports: Ports,
) -> None:
    """a's and b's images are in the registry only, c's is there, d's is built: the pulls
    and the build start at once (b's before a, which b depends on, is ready), the run says
    what it waits for and what each took, apart from each service's own start."""
    a, b, c, d = free_ports(4)
    app, worker = pushed["app"], pushed["worker"]
    on_engine.forget(app, worker)
    _build_context(stack_project.path / "d")
    stack_project.compose(
        "services:"
        + container("a", app, standin("a", a))
        + container(
            "b", worker, standin("b", b, "\n    depends_on: {a: {condition: service_healthy}}")
        )
        + container("c", IMAGE, standin("c", c))
        + container("d", IMAGE, standin("d", d)).replace(f"image: {IMAGE}", "build: ./d")
    )
    stack_project.tests("def test_all(pyairtable_b, pyairtable_c, pyairtable_d): pass\n")
    try:
        result = stack_project.run(
            "--pyairtable-backend", "compose", "-v", "--pyairtable-timeline", "t.json"
        )
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines_random(
            [
                f"*a * waiting for its image: pulling {app}*",
                f"*a * pulled {app} in *s (3 layers, *MB)*",
                f"*b * pulled {worker} in *s (2 layers, *MB)*",
                "*d * built d's image in *s*",
                f"*image: pulled {app} in *s (3 layers, *MB), for a*",
                "*image: built d's image in *s, for d*",
            ]
        )
        assert not re.search(r"pyairtable: c +waiting for its image", result.stdout.str())
        phases = _phases(stack_project.path / "t.json")
        pull_a, pull_b, build_d = (
            phases[f"pulling {app}"],
            phases[f"pulling {worker}"],
            phases["building d's image"],
        )
        ready_a = phases["a starting"]["ts"] + phases["a starting"]["dur"]
        assert pull_b["ts"] < ready_a  # not when b could start: at once
        for one, other in ((pull_a, build_d), (pull_b, build_d)):  # beside each other
            assert one["ts"] < other["ts"] + other["dur"] and other["ts"] < one["ts"] + one["dur"]
        # each service's own start begins once its image is there
        assert phases["a starting"]["ts"] >= pull_a["ts"] + pull_a["dur"] - 1000
        assert on_engine.has(app) and on_engine.has(worker)
    finally:
        _forget_builds(stack_project, on_engine)
        on_engine.forget(app, worker)


@pytest.mark.parametrize(
    ("case", "said", "fix"),
    [
        ("missing tag", "*the registry has no such image or tag (*manifest unknown*", "*check the image's name and tag*"),
        ("no credentials", "*the registry needs credentials, none are stored*", "*docker login 127.0.0.1:*"),
        ("wrong password", "*the registry refused the stored credentials*", "*docker login 127.0.0.1:*"),
        ("registry down", "*the registry is unreachable (*connection refused*", "*check that 127.0.0.1:* runs*"),
    ],
)  # fmt: skip
def test_a_pull_that_fails_is_one_clear_error_and_leaves_nothing(
    stack_project: Project,
    on_engine: EngineUnderTest,
    pushed: dict[str, str],
    registry: Registry,
    free_ports: Ports,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    case: str,
    said: str,
    fix: str,
) -> None:
    down, port = free_ports(2)  # nothing listens on `down`
    image = {
        "missing tag": f"{registry.address}/pa/app:nope",
        "registry down": f"127.0.0.1:{down}/pa/app:1",
    }.get(case) or request.getfixturevalue("private")  # the credentials' cases: htpasswd
    config = tmp_path / "docker-config"
    if case == "wrong password":
        auth_registry: Registry = request.getfixturevalue("auth_registry")
        auth_registry.config_dir(config, password="not-the-password")
    else:
        config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    on_engine.forget(image)
    stack_project.compose("services:" + container("a", image, standin("a", port)))
    stack_project.tests("def test_a(pyairtable_a): pass\n")
    result = stack_project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*service 'a' could not pull its image {image} from 127.0.0.1:*: {said.lstrip('*')}"]
    )
    result.stdout.fnmatch_lines([f"*fix: {fix}"])
    assert "not-the-password" not in result.stdout.str()
    assert not on_engine.has(image)  # nothing half-pulled, no container (the fixture checks)


def test_credentials_come_from_the_docker_config(
    stack_project: Project,
    on_engine: EngineUnderTest,
    private: str,
    auth_registry: Registry,
    free_ports: Ports,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    on_engine.forget(private)
    monkeypatch.setenv("DOCKER_CONFIG", str(auth_registry.config_dir(tmp_path / "cfg")))
    stack_project.compose("services:" + container("a", private, standin("a", port)))
    stack_project.tests("def test_a(pyairtable_a): pass\n")
    try:
        result = stack_project.run("--pyairtable-backend", "compose")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"*image: pulled {private} in *s (2 layers, *MB), for a*"])
        assert auth_registry.password not in result.stdout.str()
    finally:
        on_engine.forget(private)


def test_pull_policies_decide_as_compose_does(
    stack_project: Project,
    on_engine: EngineUnderTest,
    pushed: dict[str, str],
    free_ports: Ports,
) -> None:
    """There: the default pulls nothing, always pulls (it is up to date), every_1s pulls
    (it was tagged longer ago, or never, as Podman says). Missing: never refuses."""
    (port,) = free_ports(1)
    worker = pushed["worker"]
    on_engine.forget(worker)
    assert on_engine.docker("pull", worker).returncode == 0
    stack_project.tests("def test_a(pyairtable_a): pass\n")
    try:
        outcomes = {}
        for policy in ("missing", "always", "every_1s"):
            stack_project.compose(
                "services:"
                + container("a", worker, standin("a", port, f"\n    pull_policy: {policy}"))
            )
            result = stack_project.run("--pyairtable-backend", "compose", "-v")
            result.assert_outcomes(passed=1)
            outcomes[policy] = "waiting for its image: pulling" in result.stdout.str()
        assert outcomes == {"missing": False, "always": True, "every_1s": True}
        on_engine.forget(worker)
        stack_project.compose(
            "services:" + container("a", worker, standin("a", port, "\n    pull_policy: never"))
        )
        result = stack_project.run("--pyairtable-backend", "compose")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            [
                f"*service 'a' cannot get its image {worker}: it is not on the engine, and pull_policy: never forbids pulling it*"
            ]
        )
    finally:
        on_engine.forget(worker)


def test_a_built_image_is_reused_while_its_context_is_unchanged(
    stack_project: Project, on_engine: EngineUnderTest, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    context = _build_context(stack_project.path / "api")
    stack_project.compose(
        "services:"
        + container("api", IMAGE, standin("api", port)).replace(f"image: {IMAGE}", "build: ./api")
    )
    stack_project.tests("def test_api(pyairtable_api): pass\n")

    def outcome(*options: str) -> str:
        result = stack_project.run("--pyairtable-backend", "compose", "-v", *options)
        result.assert_outcomes(passed=1)
        for word in ("built", "reused"):
            if f"api                    {word} api's image in" in result.stdout.str():
                return word
        raise AssertionError(result.stdout.str())

    try:
        assert outcome() == "built"
        assert outcome() == "reused"
        assert outcome("--pyairtable-build", "always") == "built"
        (context / "scratch.log").write_text("ignored by .dockerignore\n")
        assert outcome() == "reused"
        (context / "version.txt").write_text("v2")
        assert outcome() == "built"
        (context / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY no-such-file /x\n")
        result = stack_project.run("--pyairtable-backend", "compose")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            [
                "*service 'api' could not build its image *",
                "*fix: correct the Dockerfile*",
                "*| *no-such-file*",
            ]
        )
    finally:
        _forget_builds(stack_project, on_engine)
