"""Jobs from a snapshot: a job that declares its inputs is restored, not run, when a cold
boot finds the snapshot of the databases it wrote under the same key; any change of its
inputs runs it again; a failed job is never saved; and what the tests see is the same.

The stack of the end-to-end cases is tests/projects/catalog: PostgreSQL and Redis, an
alembic migration job of 50 revisions, a seed job after it, the API after both. The
plan's rules, the inputs' digest and the store are tested on their own first.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from stackrun import cli, listening, record_of, run_processes, run_pytest

from pytest_pyairtable.model.spec import StackSpec, load_stack
from pytest_pyairtable.state import jobinputs, jobplan
from pytest_pyairtable.state.jobstore import Store
from pytest_pyairtable.support.errors import ConfigError

Ports = Callable[[int], list[int]]
CATALOG = Path(__file__).parent / "projects" / "catalog"
IDENTITIES = {"db": "postgres 15", "cache": "redis 7"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- x-pyairtable.job ----------------------------------------------------------------


def test_a_job_declares_its_inputs_and_job_true_still_works(tmp_path: Path) -> None:
    compose = write(
        tmp_path / "compose.yaml",
        """
services:
  db: {image: postgres:15, environment: {POSTGRES_PASSWORD: pw}}
  migrate:
    image: app
    depends_on: {db: {condition: service_healthy}}
    x-pyairtable: {job: {inputs: [alembic/, "app/*.py", scripts/prestart.sh]}}
  other:
    image: app
    x-pyairtable: {job: true}
""",
    )
    stack = load_stack(compose, environ={})
    migrate, other = stack.services["migrate"], stack.services["other"]
    assert migrate.job and other.job and not stack.services["db"].job
    assert migrate.job_inputs == (
        f"{tmp_path}/alembic/",
        f"{tmp_path}/app/*.py",
        f"{tmp_path}/scripts/prestart.sh",
    )
    assert other.job_inputs == ()


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("{inputs: alembic/}", "x-pyairtable.job.inputs must be a list"),
        ("{input: [alembic/]}", "x-pyairtable.job: unknown key(s) 'input'"),
        ('{inputs: [""]}', "x-pyairtable.job.inputs[0] is empty"),
        ("{inputs: [1]}", "x-pyairtable.job.inputs[0] must be a string"),
        ("yes please", "x-pyairtable.job must be true or false or a mapping or empty"),
    ],
)
def test_a_wrong_job_block_is_refused_naming_where_and_the_fix(
    tmp_path: Path, job: str, message: str
) -> None:
    compose = write(
        tmp_path / "compose.yaml",
        f"services:\n  m:\n    image: a\n    x-pyairtable: {{job: {job}}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_stack(compose, environ={})
    assert message in str(caught.value)
    assert "services.m." in str(caught.value) and "Fix:" in str(caught.value)


# -- the inputs' digest --------------------------------------------------------------


def test_the_digest_follows_contents_not_times_and_skips_byte_code(tmp_path: Path) -> None:
    versions = write(tmp_path / "migrations" / "versions" / "0001_a.py", "x = 1\n").parent
    write(tmp_path / "alembic.ini", "[alembic]\n")
    inputs = (f"{tmp_path}/alembic.ini", f"{tmp_path}/migrations/")
    first = jobinputs.digest(inputs, tmp_path)
    assert (first.files, first.size) == (2, 16)
    os.utime(versions / "0001_a.py", (1, 1))  # a checkout or a touch: nothing changed
    write(versions / "__pycache__" / "0001_a.cpython-311.pyc", "byte code")  # running it
    write(versions / "0002_b.pyc", "stray byte code")
    assert jobinputs.digest(inputs, tmp_path) == first
    write(versions / "0001_a.py", "x = 2\n")
    assert jobinputs.digest(inputs, tmp_path).value != first.value
    write(versions / "0001_a.py", "x = 1\n")
    assert jobinputs.digest(inputs, tmp_path) == first
    (versions / "0001_a.py").chmod(0o755)  # a script made executable runs differently
    assert jobinputs.digest(inputs, tmp_path).value != first.value


def test_the_digest_of_a_moved_project_is_the_same_and_globs_expand(tmp_path: Path) -> None:
    for base in (tmp_path / "one", tmp_path / "two"):
        write(base / "app" / "a.py", "a")
        write(base / "app" / "sub" / "b.py", "b")
        write(base / "app" / "c.txt", "c")
    one = jobinputs.digest((f"{tmp_path}/one/app/**/*.py",), tmp_path / "one")
    two = jobinputs.digest((f"{tmp_path}/two/app/**/*.py",), tmp_path / "two")
    assert one == two and one.files == 2


def test_a_kept_stack_is_attached_only_while_its_jobs_inputs_digest_the_same(
    tmp_path: Path,
) -> None:
    project = tmp_path / "p"
    write(project / "migrations" / "0001.py", "one")
    write(project / "seed.py", "rows")
    stack = load_stack(
        write(
            project / "docker-compose.yml",
            "services:\n"
            "  migrate: {image: x, x-pyairtable: {job: {inputs: [migrations/]}}}\n"
            "  seed: {image: x, x-pyairtable: {job: {inputs: [seed.py]}}}\n"
            "  plain: {image: x, x-pyairtable: {job: true}}\n",
        ),
        environ={},
    )
    record = jobinputs.recorded(jobinputs.digests(stack))
    assert set(record) == {"migrate", "seed"}  # only jobs that declare inputs
    assert jobinputs.inputs_changed(record, stack) is None
    os.utime(project / "seed.py", (1, 1))  # times are no change
    assert jobinputs.inputs_changed(record, stack) is None
    write(project / "migrations" / "0002.py", "two")
    assert jobinputs.inputs_changed(record, stack) == (
        "the inputs of its job 'migrate' changed since it ran"
    )
    (project / "seed.py").unlink()  # gone: the job could not run as it did
    assert jobinputs.inputs_changed(record, stack) == (
        "the inputs of its jobs 'migrate', 'seed' changed since it ran"
    )


def test_a_missing_input_says_which_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(jobinputs.InputsProblem) as caught:
        jobinputs.digest((f"{tmp_path}/alembc/",), tmp_path)
    assert str(caught.value) == (
        f"x-pyairtable.job.inputs names 'alembc', which does not exist (relative to "
        f"{tmp_path}). Fix: correct the path, or remove it from the inputs."
    )
    with pytest.raises(jobinputs.InputsProblem, match=r"'app/\*.sql', which matches no file"):
        jobinputs.digest((f"{tmp_path}/app/*.sql",), tmp_path)


def test_inputs_over_the_bound_are_too_big_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "data.bin", "x" * 100)
    monkeypatch.setattr(jobinputs, "MAX_BYTES", 99)
    with pytest.raises(jobinputs.InputsProblem) as caught:
        jobinputs.digest((f"{tmp_path}/data.bin",), tmp_path)
    assert caught.value.too_big


# -- the plan -------------------------------------------------------------------------

SHOP_LIKE = """
services:
  db:
    image: postgres:15
    environment: {{POSTGRES_PASSWORD: pw}}
    ports: ["{db}:5432"]
  cache: {{image: redis:7, ports: ["{cache}:6379"]}}
  migrate:
    image: app
    depends_on: {{db: {{condition: service_healthy}}}}
    environment: {{DATABASE_URL: "postgresql://postgres:pw@127.0.0.1:{db}/postgres"}}
    x-pyairtable: {{job: {{inputs: [migrations/]}}}}
  seed:
    image: app
    depends_on:
      migrate: {{condition: service_completed_successfully}}
      cache: {{condition: service_healthy}}
    x-pyairtable: {{job: {{inputs: [seed.py]}}}}
  api:
    image: app
    depends_on:
      seed: {{condition: service_completed_successfully}}
      db: {{condition: service_healthy}}
{extra}"""


def shop_like(tmp_path: Path, extra: str = "", db: int = 5432, cache: int = 6379) -> StackSpec:
    if not (tmp_path / "seed.py").exists():
        write(tmp_path / "migrations" / "0001.py", "revision = 1\n")
        write(tmp_path / "seed.py", "rows = 3\n")
    text = SHOP_LIKE.format(extra=extra, db=db, cache=cache)
    return load_stack(write(tmp_path / "compose.yaml", text), environ={})


def planned(stack: StackSpec, identities: dict[str, str] | None = None) -> jobplan.Plan:
    from pytest_pyairtable.engine.readiness import jobs

    given = IDENTITIES if identities is None else identities
    return jobplan.plan(stack, jobs(stack), given, "local")


def test_a_migration_and_a_seed_job_are_snapshotted_with_what_they_write(tmp_path: Path) -> None:
    found = planned(shop_like(tmp_path))
    migrate, seed = found.jobs["migrate"], found.jobs["seed"]
    assert migrate.snapshotted and seed.snapshotted
    assert migrate.servers == ("db",)
    assert seed.servers == ("cache", "db")  # the migration's database too, through it
    assert seed.jobs == {"migrate"} and migrate.later == {"seed"}
    assert migrate.key != seed.key


def test_a_key_changes_with_what_the_result_depends_on_and_not_with_ports(
    tmp_path: Path,
) -> None:
    keys = lambda found: (found.jobs["migrate"].key, found.jobs["seed"].key)  # noqa: E731
    before = keys(planned(shop_like(tmp_path)))
    # free ports: the same stack on other ports is the same result
    assert keys(planned(shop_like(tmp_path, db=6543, cache=7654))) == before
    # another server version: both keys (seed's holds migrate's)
    other = {**IDENTITIES, "db": "postgres 16"}
    assert all(
        a != b for a, b in zip(keys(planned(shop_like(tmp_path), other)), before, strict=True)
    )
    # a migration changed: both; the seed's code changed: the seed's only
    write(tmp_path / "migrations" / "0002.py", "revision = 2\n")
    changed = keys(planned(shop_like(tmp_path)))
    assert changed[0] != before[0] and changed[1] != before[1]
    (tmp_path / "migrations" / "0002.py").unlink()
    write(tmp_path / "seed.py", "rows = 4\n")
    changed = keys(planned(shop_like(tmp_path)))
    assert changed[0] == before[0] and changed[1] != before[1]


@pytest.mark.parametrize(
    ("extra", "job", "why"),
    [
        (
            "  worker:\n    image: app\n    depends_on: {db: {condition: service_healthy}}\n",
            "migrate",
            "'worker' also uses 'db' and does not wait for 'migrate' to complete",
        ),
        (
            "  worker:\n    image: app\n    depends_on: {migrate: {condition: service_started}, db: {condition: service_started}}\n",
            "migrate",
            "'worker' also uses 'db' and does not wait for 'migrate' to complete",
        ),
        (
            "  late:\n    image: app\n    depends_on: {api: {condition: service_started}}\n"
            "    x-pyairtable: {job: {inputs: [seed.py]}}\n",
            "late",
            "it depends on 'api', which is neither a database server nor a job with declared inputs",
        ),
        (
            "  plain:\n    image: app\n    depends_on: {db: {condition: service_healthy}}\n    x-pyairtable: {job: true}\n"
            "  after:\n    image: app\n    depends_on: {plain: {condition: service_completed_successfully}}\n"
            "    x-pyairtable: {job: {inputs: [seed.py]}}\n",
            "after",
            "it depends on job 'plain', which declares no inputs",
        ),
        (
            "  lonely:\n    image: app\n    environment: {REDIS_URL: 'redis://cache:6379/0'}\n"
            "    x-pyairtable: {job: {inputs: [seed.py]}}\n",
            "lonely",
            "it depends on no database server",
        ),
        (
            "  racing:\n    image: app\n    depends_on: {migrate: {condition: service_started}}\n"
            "    x-pyairtable: {job: {inputs: [seed.py]}}\n",
            "migrate",
            "'racing' also uses 'db' and does not wait for 'migrate' to complete",
        ),
    ],
    ids=["shared", "started-only", "non-job", "job-without-inputs", "no-server", "race"],
)
def test_a_job_whose_result_a_snapshot_cannot_hold_runs_and_says_why(
    tmp_path: Path, extra: str, job: str, why: str
) -> None:
    found = planned(shop_like(tmp_path, extra))
    assert why in found.jobs[job].why_not
    assert not found.jobs[job].snapshotted


def test_a_job_naming_a_server_it_does_not_depend_on_runs(tmp_path: Path) -> None:
    compose = write(
        tmp_path / "compose.yaml",
        """
services:
  db: {image: postgres:15, environment: {POSTGRES_PASSWORD: pw}, ports: ["5433:5432"]}
  cache: {image: redis:7}
  by-name:
    image: app
    depends_on: {db: {condition: service_healthy}}
    environment: {REDIS_URL: "redis://cache:6379/0"}
    x-pyairtable: {job: {inputs: [compose.yaml]}}
  by-port:
    image: app
    depends_on: {cache: {condition: service_healthy}}
    x-pyairtable:
      job: {inputs: [compose.yaml]}
      local: {command: [seed], env: {DATABASE_URL: "postgresql://u@127.0.0.1:5433/app"}}
""",
    )
    found = planned(load_stack(compose, environ={}))
    assert found.jobs["by-name"].why_not.startswith(
        "its environment names 'cache', which it does not depend on: add 'cache'"
    )
    assert found.jobs["by-port"].why_not.startswith("its environment names 'db'")


def test_a_server_the_backend_cannot_snapshot_keeps_its_jobs_running(tmp_path: Path) -> None:
    found = planned(shop_like(tmp_path), {"cache": "redis 7"})  # e.g. db in a container
    assert "its database server 'db' is not one the local backend can snapshot" in (
        found.jobs["migrate"].why_not
    )
    assert "its database server 'db' is not one" in found.jobs["seed"].why_not


def test_a_missing_input_fails_its_job_only(tmp_path: Path) -> None:
    stack = shop_like(tmp_path)
    (tmp_path / "seed.py").unlink()
    found = planned(stack)
    assert found.jobs["migrate"].snapshotted
    assert "names 'seed.py', which does not exist" in found.jobs["seed"].error


def test_each_server_starts_from_the_latest_snapshot_that_covers_its_jobs(tmp_path: Path) -> None:
    found = planned(shop_like(tmp_path))
    both = jobplan.choose(found, ["migrate", "seed"], {})
    assert both == {"db": "seed", "cache": "seed"}
    assert jobplan.covers(found, "migrate", both) and jobplan.covers(found, "seed", both)
    # the seed's inputs changed: the migration's snapshot only, and the seed runs
    migrated = jobplan.choose(found, ["migrate"], {})
    assert migrated == {"db": "migrate", "cache": None}
    assert jobplan.covers(found, "migrate", migrated)
    assert not jobplan.covers(found, "seed", migrated)
    # the migration's snapshot was removed (the bound), the seed's holds its result
    assert jobplan.choose(found, ["seed"], {}) == {"db": "seed", "cache": "seed"}
    # the database already started empty (the job joined the run later): nothing is
    # restored, and the cache does not start from a snapshot the seed would run over
    late = jobplan.choose(found, ["migrate", "seed"], {"db": None})
    assert late == {"db": None, "cache": None}
    assert not jobplan.covers(found, "migrate", late) and not jobplan.covers(found, "seed", late)


# -- the store ------------------------------------------------------------------------


def staged(tmp_path: Path, name: str, size: int = 10) -> Path:
    stage = tmp_path / "stage" / name
    write(stage / "db" / "data" / "file", "x" * size)
    return stage


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "snapshots"
    monkeypatch.setenv("PYAIRTABLE_SNAPSHOT_DIR", str(root))
    return root


def test_a_snapshot_is_kept_whole_and_owner_only(tmp_path: Path, store_root: Path) -> None:
    store = Store(tmp_path / "project" / "compose.yaml")
    key = "a" * 32
    assert store.find(key) is None
    assert store.commit(key, staged(tmp_path, "one"), {"job": "migrate", "services": ["db"]})
    entry = store.find(key)
    assert entry is not None and (entry / "db" / "data" / "file").read_text() == "x" * 10
    assert store.meta(entry)["job"] == "migrate"
    for folder, _, files in os.walk(store_root):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
        for name in files:
            assert stat.S_IMODE(os.stat(Path(folder, name)).st_mode) & 0o077 == 0, name
    # another run saved the same key first: the second is dropped, the first stays
    assert not store.commit(key, staged(tmp_path, "two"), {"job": "migrate"})


def test_the_store_keeps_the_most_recently_used_within_its_bounds(
    tmp_path: Path, store_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "compose.yaml")
    monkeypatch.setenv("PYAIRTABLE_SNAPSHOTS_KEEP", "2")
    keys = [c * 32 for c in "abc"]
    for n, key in enumerate(keys[:2]):
        store.commit(key, staged(tmp_path, key), {"job": "j"})
        os.utime(store.dir / key, (1000 + n, 1000 + n))
    assert store.find(keys[0]) is not None  # used now: the most recent
    store.commit(keys[2], staged(tmp_path, keys[2]), {"job": "j"})
    assert [e.name for e in store.entries()] == [keys[2], keys[0]]  # b, least recent, went
    monkeypatch.setenv("PYAIRTABLE_SNAPSHOTS_KEEP", "8")
    monkeypatch.setenv("PYAIRTABLE_SNAPSHOTS_MB", "0")
    assert store.prune() == [keys[0]]  # over the size bound: all but the newest go


def test_a_cut_short_write_is_removed_a_day_later(tmp_path: Path, store_root: Path) -> None:
    store = Store(tmp_path / "compose.yaml")
    store.commit("a" * 32, staged(tmp_path, "a"), {"job": "j"})
    building = store.dir / f".building-{'b' * 32}-x"
    write(building / "entry" / "db" / "file", "half")
    store.prune()
    assert building.exists()  # maybe another run's, still writing
    os.utime(building, (time.time() - 2 * 86400,) * 2)
    store.prune()
    assert not building.exists()


def test_down_volumes_removes_this_projects_snapshots_and_no_others(
    tmp_path: Path, store_root: Path
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for project in (mine, theirs):
        write(project / "docker-compose.yml", "services:\n  db: {image: postgres:15}\n")
        Store(project / "docker-compose.yml").commit("a" * 32, staged(tmp_path, project.name), {})
    done = cli("down", "--volumes", cwd=mine)
    assert done.returncode == 0, done.stderr
    assert "removed the job snapshots of this project" in done.stdout + done.stderr
    assert Store(mine / "docker-compose.yml").entries() == []
    assert len(Store(theirs / "docker-compose.yml").entries()) == 1


# -- end to end: the catalogue -----------------------------------------------------------


class Catalog:
    """The catalogue project in a test's directory, on ports of its own, its snapshots
    in the test's directory too."""

    def __init__(self, tmp_path: Path, ports: list[int]) -> None:
        self.tmp_path = tmp_path
        self.project = tmp_path / "catalog"
        shutil.copytree(CATALOG, self.project)
        self.store = Store(self.project / "docker-compose.yml", tmp_path / "snapshots")
        db, cache, api = ports
        self.env = {
            "CATALOG_DB_PORT": str(db),
            "CATALOG_CACHE_PORT": str(cache),
            "CATALOG_API_PORT": str(api),
            "PYAIRTABLE_SNAPSHOT_DIR": str(tmp_path / "snapshots"),
        }
        self.runs = 0

    def run(self, *args: str, passed: int | None = 4) -> tuple[str, str]:
        """Its suite (``-v``, so the progress lines show): the output, and the dump of
        its databases and keys as the stack came up ("" if it did not)."""
        self.runs += 1
        dump = self.tmp_path / f"dump{self.runs}.sql"
        env = {**self.env, "CATALOG_DUMP": str(dump)}
        done = run_pytest(self.project, "-v", *args, env=env, timeout=300)
        output = done.stdout + done.stderr
        if passed is not None:
            assert f" {passed} passed" in output, output
        return output, dump.read_text() if dump.exists() else ""

    def cli(self, *args: str) -> str:
        """``pyairtable ARGS`` in the project: its output (it must succeed)."""
        done = cli(*args, cwd=self.project, env=self.env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def edit_the_last_migration(self) -> None:
        head = next((self.project / "migrations" / "versions").glob("0050_*.py"))
        head.write_text(head.read_text().replace("DEFAULT 'standard'\"", "DEFAULT 'express'\""))


@pytest.fixture
def catalog(tmp_path: Path, free_ports: Ports) -> Catalog:
    return Catalog(tmp_path, free_ports(3))


def snapshots_of(store: Store) -> dict[str, int]:
    """Job name -> how many snapshots of it the store holds."""
    found: dict[str, int] = {}
    for entry in store.entries():
        job = store.meta(entry)["job"]
        found[job] = found.get(job, 0) + 1
    return found


def test_an_unchanged_boot_restores_the_jobs_and_the_databases_equal_migrated_ones(
    catalog: Catalog,
) -> None:
    first, migrated = catalog.run()
    assert re.search(r"migrate +completed in [\d.]+s; snapshot taken in [\d.]+ s", first)
    assert re.search(r"seed +completed in [\d.]+s; snapshot taken in [\d.]+ s", first)
    assert snapshots_of(catalog.store) == {"migrate": 1, "seed": 1}

    second, restored = catalog.run()
    assert re.search(
        r"pyairtable: seed +restored from snapshot \(inputs unchanged\), [\d.]+ s\n", second
    )
    assert re.search(
        r"migrate +restored from snapshot \(inputs unchanged, in that of 'seed'\)", second
    )
    assert re.search(r"\* migrate +2 .* restored\n", second)  # the summary's timeline
    assert "completed in" not in second and "snapshot taken" not in second
    assert "-- redis" in restored and "CREATE TABLE public.product" in restored
    assert restored == migrated  # every database's schema and rows, the roles, the keys

    # and equal to a migration run now, without any snapshot
    third, fresh = catalog.run("--pyairtable-no-snapshots")
    assert "restored" not in third and "snapshot taken" not in third
    assert fresh == restored


def test_a_changed_migration_runs_the_jobs_again_and_refreshes_the_snapshot(
    catalog: Catalog,
) -> None:
    catalog.run()
    catalog.edit_the_last_migration()
    changed, dump = catalog.run()
    assert re.search(r"migrate +completed in [\d.]+s; snapshot taken", changed)
    assert re.search(r"seed +completed in [\d.]+s; snapshot taken", changed)  # it holds it
    assert "DEFAULT 'express'::public.shipping_speed" in dump
    again, restored = catalog.run()
    assert re.search(r"seed +restored from snapshot \(inputs unchanged\)", again)
    assert restored == dump
    assert snapshots_of(catalog.store) == {"migrate": 2, "seed": 2}


def test_a_failed_job_never_produces_a_snapshot(
    catalog: Catalog,
) -> None:
    seed = catalog.project / "app" / "seed.py"
    seed.write_text(
        seed.read_text().replace(
            "    cache.close()\n", "    cache.close()\n    raise SystemExit(3)\n"
        )
    )
    failed, _ = catalog.run(passed=None)
    assert "service 'seed' exited with code 3" in failed
    assert snapshots_of(catalog.store) == {"migrate": 1}
    # the migration is restored, the failing seed runs again, and is still not saved
    again, _ = catalog.run(passed=None)
    assert re.search(r"migrate +restored from snapshot \(inputs unchanged\)", again)
    assert "service 'seed' exited with code 3" in again
    assert snapshots_of(catalog.store) == {"migrate": 1}


def test_a_kept_stack_from_snapshots_is_attached_while_its_jobs_inputs_are_unchanged(
    catalog: Catalog,
) -> None:
    try:
        first, migrated = catalog.run("--pyairtable-keep")
        assert re.search(r"seed +completed in [\d.]+s; snapshot taken", first)
        assert snapshots_of(catalog.store) == {"migrate": 1, "seed": 1}  # written before it
        catalog.cli("down")  # leaves the snapshots

        kept, restored = catalog.run("--pyairtable-keep")
        assert re.search(r"seed +restored from snapshot \(inputs unchanged\)", kept)
        assert "stack kept running" in kept
        assert restored == migrated
        record = record_of(catalog.project)
        run_id = re.search(r'"run_id": "([^"]+)"', record.read_text())
        assert run_id is not None
        status = catalog.cli("status")  # the restored jobs count as completed ones
        assert re.search(r"migrate +completed +completed", status), status

        attached, seen = catalog.run()
        assert "attached to the kept stack" in attached and "restored" not in attached
        assert seen == migrated  # the tests' writes were rolled back: what the jobs left

        # its databases are what the jobs made of their inputs then, not now
        catalog.edit_the_last_migration()
        refused, _ = catalog.run(passed=None)
        assert "the inputs of its job 'migrate' changed since it ran" in refused
        assert "attached to the kept stack" not in refused

        # run again in the kept stack, the job is recorded with its inputs as they are now
        catalog.cli("restart", "migrate")
        again, _ = catalog.run()
        assert "attached to the kept stack" in again

        down = catalog.cli("down", "--volumes")
        assert "removed the job snapshots of this project" in down
        assert catalog.store.entries() == []
        assert not run_processes(run_id[1])
        assert not any(
            listening(int(catalog.env[v])) for v in ("CATALOG_DB_PORT", "CATALOG_API_PORT")
        )
    finally:
        if record_of(catalog.project).exists():
            cli("down", cwd=catalog.project, env=catalog.env)
