"""The compose backend on Podman, through its Docker API: the backend's behavioural
compliance cases, the compose suite's cases and the hybrid ones (a stack placed over the
host and containers), the same functions run again with DOCKER_HOST pointing at a Podman
service started for the session (conftest's ``podman``); and how a run finds Podman (its
socket when no Docker engine answers, a Docker context). Every test here skips, saying
why, where Podman cannot run.

What Podman does differently is the backend's to absorb (engines.py); here only the
engine differs, never the expectations, except where a test says which engine's words
it expects.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from containers import IMAGE, import_root_image, standin
from enginekit import PodmanService
from test_backend_compliance import (  # the cases, run again here on Podman
    Kit,
    compliance_kit,
    test_a_backend_adapts_the_stack_to_given_urls,
    test_a_backend_says_what_is_missing_before_a_start,
    test_a_backends_frontend_fixtures_name_its_typed_overrides,
    test_a_job_reports_its_exit_code,
    test_a_kept_service_is_adopted_from_its_record_and_stopped,
    test_a_killed_service_is_gone,
    test_a_restart_policy_restarts_as_the_engine_does,
    test_a_service_launched_again_is_probed_on_its_own_output,
    test_a_service_pauses_resumes_and_stops,
    test_a_service_waits_for_what_it_runs_before_its_launch,
    test_every_backend_and_service_satisfies_the_protocols,
    test_what_answers_a_ready_service_is_its_own,
)
from test_compose import (  # the compose suite's cases, run again here on Podman
    test_a_killed_run_leaves_no_container,
    test_an_unknown_docker_context_is_named_not_replaced_by_another_engine,
    test_compose_prerequisites_are_named,
    test_dag_order_partial_stack_graceful_stop_and_cleanup,
    test_dependency_never_healthy_by_engine_healthcheck,
    test_faults_on_containers_and_the_stack_healed_after,
    test_init_container_service_completed_successfully,
    test_keep_then_attach_then_down,
)
from test_compose_engine import (  # noqa: F401 (no_shell_image: a fixture)
    NO_SHELL_IMAGE,
    no_shell_image,
    test_a_container_death_is_seen_on_the_event_stream,
    test_a_failing_healthcheck_run_inside_names_its_output,
    test_a_restarted_services_log_has_each_line_once,
    test_compose_failing_is_reported_in_its_own_words_though_its_exit_code_is_0,
    test_every_compose_file_reaches_compose,
    test_start_interval_reaches_the_engine_or_compose_says_why_not,
    test_the_healthcheck_runs_inside_the_container_by_us_not_at_the_engines_interval,
)
from test_placement import (  # noqa: F401 (placed: a fixture) the hybrid cases, on Podman
    placed,
    test_a_bridge_container_is_created_with_its_host_entry,
    test_a_killed_run_leaves_neither_containers_nor_processes,
    test_ctrl_c_or_sigterm_stops_both_kinds,
    test_pyairtable_up_local_status_and_down,
    test_the_service_under_test_runs_on_the_host_between_containers,
)

from conftest import Project
from pytest_pyairtable.backends import engines

Ports = Callable[[int], list[int]]

__all__ = [  # collected here again: the same cases, on Podman
    "test_a_backend_adapts_the_stack_to_given_urls",
    "test_a_backend_says_what_is_missing_before_a_start",
    "test_a_backends_frontend_fixtures_name_its_typed_overrides",
    "test_a_bridge_container_is_created_with_its_host_entry",
    "test_a_container_death_is_seen_on_the_event_stream",
    "test_a_failing_healthcheck_run_inside_names_its_output",
    "test_a_job_reports_its_exit_code",
    "test_a_kept_service_is_adopted_from_its_record_and_stopped",
    "test_a_killed_run_leaves_neither_containers_nor_processes",
    "test_a_killed_run_leaves_no_container",
    "test_a_killed_service_is_gone",
    "test_a_restart_policy_restarts_as_the_engine_does",
    "test_a_restarted_services_log_has_each_line_once",
    "test_a_service_launched_again_is_probed_on_its_own_output",
    "test_a_service_pauses_resumes_and_stops",
    "test_a_service_waits_for_what_it_runs_before_its_launch",
    "test_an_unknown_docker_context_is_named_not_replaced_by_another_engine",
    "test_compose_failing_is_reported_in_its_own_words_though_its_exit_code_is_0",
    "test_compose_prerequisites_are_named",
    "test_ctrl_c_or_sigterm_stops_both_kinds",
    "test_dag_order_partial_stack_graceful_stop_and_cleanup",
    "test_dependency_never_healthy_by_engine_healthcheck",
    "test_every_backend_and_service_satisfies_the_protocols",
    "test_every_compose_file_reaches_compose",
    "test_faults_on_containers_and_the_stack_healed_after",
    "test_init_container_service_completed_successfully",
    "test_keep_then_attach_then_down",
    "test_pyairtable_up_local_status_and_down",
    "test_start_interval_reaches_the_engine_or_compose_says_why_not",
    "test_the_healthcheck_runs_inside_the_container_by_us_not_at_the_engines_interval",
    "test_the_service_under_test_runs_on_the_host_between_containers",
    "test_what_answers_a_ready_service_is_its_own",
]


@pytest.fixture(scope="session")
def engine(podman: PodmanService) -> str:
    """The compose tests' engine, here Podman, with their images."""
    for image, links in (
        (IMAGE, ("bin", "lib", "lib64", "sbin")),
        (NO_SHELL_IMAGE, ("lib", "lib64")),
    ):
        if podman.docker("image", "inspect", image).returncode != 0:
            import_root_image(image, links=links, host=podman.host)
    return podman.version


@pytest.fixture(scope="module", autouse=True)
def on_podman(podman: PodmanService) -> Iterator[None]:
    """Every engine call of this module's tests (ours, compose's, the docker CLI's in the
    helpers) goes to Podman."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", podman.host)
        patch.delenv("DOCKER_CONTEXT", raising=False)
        yield


@pytest.fixture(params=["compose"])
def kit(request: pytest.FixtureRequest, tmp_path: Path, free_ports: Ports) -> Iterator[Kit]:
    yield from compliance_kit(request.param, request, tmp_path, free_ports)


def _without_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, podman: PodmanService) -> None:
    """No engine chosen and no Docker engine answering: Podman's rootless socket is
    where XDG_RUNTIME_DIR says (the session's service is at <base>/podman/podman.sock)."""
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(podman.base))
    monkeypatch.setattr(engines, "DEFAULT_SOCKET", f"unix://{tmp_path}/no-docker.sock")


def test_podman_is_found_at_its_socket_where_no_docker_engine_answers(
    engine: str, podman: PodmanService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_docker(monkeypatch, tmp_path, podman)
    found = engines.locate()
    assert found.url.endswith("/podman/podman.sock"), found
    assert found.environ == {"DOCKER_HOST": found.url}  # compose and docker go there too
    api, engine_found = engines.connect(found)
    try:
        assert engine_found.kind == "Podman" and engine_found.version == podman.version
        assert not engine_found.has_health_verdicts and engine_found.removal_events == {"remove"}
    finally:
        api.close()


def test_a_stack_boots_on_the_podman_it_found_and_the_summary_names_it(
    compose_project: Project,
    podman: PodmanService,
    free_ports: Ports,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Nothing points at Podman: the run finds it, compose is sent there too, and the
    summary says which engine ran the stack."""
    (port,) = free_ports(1)
    compose_project.compose("services:" + standin("a", port))
    compose_project.tests("def test_a(pyairtable_a): pass\n")
    _without_docker(monkeypatch, tmp_path, podman)
    result = compose_project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"*engine: Podman {podman.version} at unix://*/podman/podman.sock (Podman's *socket)*"]
    )


def test_the_current_docker_context_is_followed(
    compose_project: Project,
    podman: PodmanService,
    free_ports: Ports,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A context made by `docker context create`, selected in the Docker config (as
    `docker context use` does): the run, compose and the CLI all use its engine."""
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    made = subprocess.run(
        ["docker", "context", "create", "pa-podman", "--docker", f"host={podman.host}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    (config / "config.json").write_text(json.dumps({"currentContext": "pa-podman"}))
    (port,) = free_ports(1)
    compose_project.compose("services:" + standin("a", port))
    compose_project.tests("def test_a(pyairtable_a): pass\n")
    result = compose_project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"*engine: Podman {podman.version} at *(the Docker context 'pa-podman')*"]
    )
    assert os.environ.get("DOCKER_CONTEXT") is None
