"""Nothing lost: the built-in PostgreSQL keeps every acknowledged commit across a kill,
speed settings that trade that away are the service's own choice, and `pyairtable down
--volumes` removes only what the tool wrote."""

from __future__ import annotations

from stackrun import cli, standin_services

from conftest import Ports, Project


def postgres_project(project: Project, port: int, command: str = "") -> None:
    project.compose(f"""
        services:
          postgres:
            image: postgres:16
            {command}
            environment: {{POSTGRES_USER: app, POSTGRES_PASSWORD: pw, POSTGRES_DB: app}}
            ports: ["{port}:5432"]
    """)


def test_a_killed_postgres_keeps_every_acknowledged_commit(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    postgres_project(project, port)
    project.tests("""
        import contextlib

        import psycopg

        def test_kill_after_commit(pyairtable_postgres, pyairtable_faults):
            url = pyairtable_postgres.url
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE TABLE t (round int, n int)")
            for round_ in range(3):
                conn = psycopg.connect(url, autocommit=True)
                for n in range(300):
                    conn.execute("INSERT INTO t VALUES (%s, %s)", (round_, n))
                pyairtable_faults.kill("postgres")  # SIGKILL, the connection still open
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                url = pyairtable_faults.restart("postgres").url
                with psycopg.connect(url) as conn:
                    rows = conn.execute("SELECT count(*), max(n) FROM t WHERE round = %s",
                                        (round_,)).fetchone()
                assert rows == (300, 299), f"round {round_}: {rows}"
    """)
    project.run().assert_outcomes(passed=1)


def test_durability_settings_and_the_opt_in_for_speed(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    postgres_project(
        project, port, command="command: postgres -c synchronous_commit=off -c work_mem=8MB"
    )
    project.tests("""
        import psycopg

        def test_settings(pyairtable_postgres):
            with psycopg.connect(pyairtable_postgres.url) as conn:
                show = lambda name: conn.execute(f"SHOW {name}").fetchone()[0]
                assert show("synchronous_commit") == "off"  # the service asked for it
                assert show("work_mem") == "8MB"
                assert show("full_page_writes") == "on"
    """)
    project.run().assert_outcomes(passed=1)
    postgres_project(project, port)
    project.tests("""
        import psycopg

        def test_settings(pyairtable_postgres):
            with psycopg.connect(pyairtable_postgres.url) as conn:
                show = lambda name: conn.execute(f"SHOW {name}").fetchone()[0]
                assert (show("synchronous_commit"), show("full_page_writes")) == ("on", "on")
    """)
    project.run().assert_outcomes(passed=1)


def kept_pair(project: Project, ports: list[int]) -> None:
    standin_services(project, dict(zip("ab", ports, strict=True)))
    project.tests("def test_it(pyairtable_a, pyairtable_b): pass\n")


def test_down_volumes_removes_only_what_the_tool_wrote(project: Project, free_ports: Ports) -> None:
    kept_pair(project, free_ports(2))
    logs = project.path / "ci-logs"
    logs.mkdir()
    (logs / "coverage.xml").write_text("<coverage/>")
    (logs / "a.log").write_text("the user's own a.log\n")  # appended to, never removed
    first = project.run_subprocess("--pyairtable-keep", f"--pyairtable-logs-dir={logs}")
    assert first.ret == 0, first.stdout.str()
    try:
        assert (logs / "b.log").exists()
    finally:
        down = cli("down", "--volumes", cwd=project.path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert sorted(p.name for p in logs.iterdir()) == ["a.log", "coverage.xml"]
    assert (logs / "coverage.xml").read_text() == "<coverage/>"
    assert (logs / "a.log").read_text().startswith("the user's own a.log\n")


def test_down_volumes_removes_a_logs_dir_it_made_unless_the_user_added_to_it(
    project: Project, free_ports: Ports
) -> None:
    ports = free_ports(2)
    kept_pair(project, ports)
    for added in (False, True):
        logs = project.path / f"new-logs-{added}"
        run = project.run_subprocess("--pyairtable-keep", f"--pyairtable-logs-dir={logs}")
        assert run.ret == 0, run.stdout.str()
        if added:
            (logs / "notes.txt").write_text("mine")
        down = cli("down", "--volumes", cwd=project.path)
        assert down.returncode == 0, down.stdout + down.stderr
        if added:
            assert [p.name for p in logs.iterdir()] == ["notes.txt"]
        else:
            assert not logs.exists()
