"""What runs on the host for a service sees what the compose file declares for it, as
in its container: its process and its healthcheck or probe command. Not the shell's
other variables, unless the run asks for them."""

from __future__ import annotations

import json

import pytest

from conftest import Project

DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


def env_dumping_job(project: Project) -> None:
    out = project.path / "env.json"
    project.compose(f"""
        services:
          dump:
            image: example/app
            environment: {{DECLARED: from-environment, SHARED: environment}}
            x-pyairtable:
              job: true
              local:
                command: [python, -c, "{DUMP}", "{out}"]
                env: {{FROM_LOCAL: local-env, SHARED: local-env-wins}}
    """)
    project.tests("def test_dump(pyairtable_dump): pass\n")


def dumped(project: Project) -> dict[str, str]:
    env: dict[str, str] = json.loads((project.path / "env.json").read_text())
    return env


def test_a_local_service_gets_what_it_declares_and_a_small_base(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONLY_IN_MY_SHELL", "would-hide-a-missing-setting")
    monkeypatch.setenv("LC_TIME", "C")
    env_dumping_job(project)
    project.run().assert_outcomes(passed=1)
    env = dumped(project)
    assert "ONLY_IN_MY_SHELL" not in env
    assert env["DECLARED"] == "from-environment" and env["FROM_LOCAL"] == "local-env"
    assert env["SHARED"] == "local-env-wins"
    assert env["LC_TIME"] == "C" and env["HOME"] and env["PATH"]
    assert env["PYAIRTABLE_SERVICE"] == "dump"


@pytest.mark.parametrize(
    ("how", "args"),
    [("option", ["--pyairtable-inherit-env"]), ("env", []), ("ini", [])],
)
def test_the_whole_environment_on_request(
    project: Project, monkeypatch: pytest.MonkeyPatch, how: str, args: list[str]
) -> None:
    monkeypatch.setenv("ONLY_IN_MY_SHELL", "wanted")
    if how == "env":
        monkeypatch.setenv("PYAIRTABLE_INHERIT_ENV", "1")
    if how == "ini":
        project.pytester.makeini("[pytest]\npyairtable_inherit_env = true\n")
    env_dumping_job(project)
    project.run(*args).assert_outcomes(passed=1)
    env = dumped(project)
    assert env["ONLY_IN_MY_SHELL"] == "wanted" and env["DECLARED"] == "from-environment"


def test_healthcheck_and_probe_commands_get_the_service_environment(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBE_TOKEN", raising=False)
    project.compose("""
        services:
          checked:
            image: example/app
            environment: {PROBE_TOKEN: expected}
            healthcheck:
              test: ["CMD-SHELL", 'test "$$PROBE_TOKEN" = expected']
              interval: 1s
              timeout: 2s
              retries: 2
            x-pyairtable:
              local: {command: [sleep, "60"]}
          probed:
            image: example/app
            x-pyairtable:
              local:
                command: [sleep, "60"]
                env: {FROM_LOCAL: "yes"}
              probe:
                command: [python, -c, "import os; assert os.environ['FROM_LOCAL'] == 'yes'"]
    """)
    project.tests("def test_both(pyairtable_checked, pyairtable_probed): pass\n")
    project.run().assert_outcomes(passed=1)
