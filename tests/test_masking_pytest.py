"""Every pytest channel masks by the same rules, and never rewrites code: the warnings
summary, truncated assertion text, ``--showlocals``, ``-rA`` sections, junit XML and
xdist's forwarded reports; a traceback's source lines stay as written, whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project

COMPOSE = """
    services:
      cache:
        image: redis:7
        command: redis-server --requirepass hunter2xyz
      verify_signature:
        image: example/app
        environment: {SIGNING_KEY: verify_signature, POSTGRES_PASSWORD: "${POSTGRES_PASSWORD}"}
"""
TESTS = """
    import warnings

    # built at run time: the secrets never stand in the code, which is shown as written
    PASSWORD = "change" + "this"
    REDIS = "hunter" + "2xyz"
    warnings.warn(UserWarning(f'The value of POSTGRES_PASSWORD is "{PASSWORD}" (import)'))

    def check(password, hashed_password):
        return False

    def verify_signature(value):
        return False

    def test_check():
        password = REDIS
        assert check(password=password, hashed_password=password.upper())

    def test_warn():
        warnings.warn(UserWarning(f'The value of POSTGRES_PASSWORD is "{PASSWORD}"'))

    def test_truncated():
        url = f"redis://:{REDIS}@127.0.0.1:46621/0" + "x" * 300
        assert url == "x"

    def test_query_tail():
        url = "https://api.example/x?q=" + "y" * 300 + "--" + PASSWORD
        assert url == "x"

    def test_code_names():
        print(f"printed {PASSWORD} and {REDIS}")
        assert verify_signature("abc")
"""


@pytest.fixture
def masked_project(project: Project) -> Project:
    project.env("POSTGRES_PASSWORD=changethis\n")
    project.compose(COMPOSE)
    project.tests(TESTS)
    return project


def test_every_pytest_channel_masks_values_and_keeps_code(masked_project: Project) -> None:
    junit = masked_project.path / "junit.xml"
    result = masked_project.run_subprocess("-l", "-rA", "-W", "always", f"--junitxml={junit}")
    out = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(failed=4, passed=1)
    for secret in ("changethis", "hunter2xyz", "hunter2xy", ":hun...", "...ethis", "gethis"):
        assert secret not in out, secret
    assert "changethis" not in junit.read_text() and "hunter2xyz" not in junit.read_text()
    # code stays as written, whole
    assert ">       assert check(password=password, hashed_password=password.upper())" in out
    assert 'UserWarning: The value of POSTGRES_PASSWORD is "***"' in out
    assert 'UserWarning: The value of POSTGRES_PASSWORD is "***" (import)' in out
    assert "password   = '***'" in out  # --showlocals: a secret's name, its value
    assert "'redis://:***...xxxx" in out  # what the truncation left of the password
    assert "printed *** and ***" in out  # -rA: captured output
    # a secret that is a name of the code (and of the stack) is left where it is one
    assert "+  where False = verify_signature('abc')" in out


def test_xdist_forwards_masked_warnings_and_reports(masked_project: Project) -> None:
    junit = masked_project.path / "junit.xml"
    result = masked_project.run_subprocess("-n", "2", "-rA", "-W", "always", f"--junitxml={junit}")
    out = result.stdout.str() + result.stderr.str() + junit.read_text()
    result.assert_outcomes(failed=4, passed=1)
    assert 'The value of POSTGRES_PASSWORD is "***"' in out
    assert "changethis" not in out and "hunter2xyz" not in out


def test_masked_lines_of_a_test_without_a_stack_stay_whole(
    project: Project, tmp_path: Path
) -> None:
    project.tests("""
        def check(password, hashed_password):
            return False

        def test_check():
            password = "s3cr3t-not-known"
            assert check(password=password, hashed_password=password.upper())
    """)
    result = project.run_subprocess()
    out = result.stdout.str()
    assert ">       assert check(password=password, hashed_password=password.upper())" in out
    assert "check(password='***', hashed_password='***')" in out


def test_a_stack_whose_password_is_its_name_reads_as_written(
    project: Project, free_ports: Callable[[int], list[int]]
) -> None:
    """`POSTGRES_PASSWORD: postgres`-style defaults: the service, its image and the
    critical path keep their names in the run's output; the password is masked after
    its name and in its URL; the run warns once."""
    (port,) = free_ports(1)
    project.compose(f"""
        name: airflow
        services:
          airflow:
            image: apache/airflow:2.9
            environment:
              AIRFLOW_PASSWORD: airflow
              DATABASE_URL: postgresql://airflow:airflow@127.0.0.1:5432/airflow
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --startup-delay 0 --name airflow --port {port}}}
              probe: {{tcp: "127.0.0.1:{port}"}}
    """)
    project.tests("""
        def test_it(pyairtable_airflow):
            word = "air" + "flow"  # the code never holds the printed text
            print("env", f"AIRFLOW_PASSWORD={word}", f"url postgresql://{word}:{word}@h/{word}")
            assert pyairtable_airflow.name == "x"
    """)
    result = project.run_subprocess("-rA", "-v")
    out = result.stdout.str()
    result.assert_outcomes(failed=1)
    assert "AIRFLOW_PASSWORD=***" in out and "postgresql://airflow:***@h/airflow" in out
    assert "AIRFLOW_PASSWORD=airflow" not in out and "airflow:airflow@" not in out
    assert "* airflow" in out and ": airflow (* above)" in out  # the timeline, its critical path
    assert "Handle(name='airflow'" in out
    warning = ("warning: service 'airflow': AIRFLOW_PASSWORD equals the service name; it is "
               "masked only where it appears as a password")  # fmt: skip
    assert out.count(warning) == 1, out
