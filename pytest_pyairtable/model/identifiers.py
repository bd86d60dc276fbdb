"""What a stack names, and where its secrets come from: the two inputs of masking.

An identifier (project, service, container and host names, images, user and database
names, the hosts of its URLs, the project's paths, the words of its commands) is never
masked: a secret equal to or part of one is masked only where it stands as a secret
(support/redact.py). Each identifier carries what it is, for the warning that says so;
never its text, which may be the secret's.

A secret's source names the service and the variable (or flag, or URL) it comes from,
for the same warning: the value itself is never printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..support.errors import ConfigError
from ..support.redact import is_secret_name, text_secrets, worth_masking
from ..support.shapes import looks_like_token

if TYPE_CHECKING:
    from .spec import ServiceSpec, StackSpec

Identifiers = dict[str, str]  # identifier -> what it is ("a service name")
Source = tuple[str, str, str]  # (service, where in it, value)

_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*)://[^\s'\"<>]+")
_USER = re.compile(r"(?:^|_)(?:USER|USERNAME|LOGIN|OWNER|ROLE)$")
_DATABASE = re.compile(r"(?:^|_)(?:DB|DATABASE|DBNAME|DB_NAME|DATABASE_NAME|SCHEMA|KEYSPACE)$")
_HOST = re.compile(r"(?:^|_)(?:HOST|HOSTNAME|SERVER|VHOST|DOMAIN)$")
_NAME = re.compile(r"(?:^|_)(?:NAME|SERVICE|REALM|BUCKET|QUEUE|TOPIC|CLUSTER|ORG|TENANT)$")
_COMPOSE_NAMES = {"container_name": "a container name", "hostname": "a host name",
                  "domainname": "a domain name"}  # fmt: skip
# Schemes whose URL path names a database (postgresql://u:p@h/DB), not a resource.
_DATABASE_SCHEMES = ("postgres", "mysql", "mariadb", "redis", "mongodb", "amqp", "sqlite")


def service_identifiers(svc: ServiceSpec) -> Identifiers:
    found: Identifiers = {svc.name: "a service name"}
    found.update((str(svc.compose[k]), kind) for k, kind in _COMPOSE_NAMES.items()
                 if svc.compose.get(k))  # fmt: skip
    if svc.image:
        found.setdefault(svc.image, "an image name")
    for env in (svc.environment, svc.local.env):
        for key, value in env.items():
            if value and not is_secret_name(key):
                _named_value(found, key.upper(), value)
    for text in [*svc.environment.values(), *svc.local.env.values(), svc.url or ""]:
        _url_parts(found, text)
    _url_parts(found, svc.probe.target)
    for table in (*svc.probe.tables, svc.probe.migrations_table or ""):
        if table:
            found.setdefault(table, "a table name")
    for volume in svc.volumes:
        for path in (volume.source, volume.target):
            if path:
                found.setdefault(path, "a volume or path of the project")
    found.setdefault(str(svc.local.cwd), "a path of the project")
    return found


def code_words(svc: ServiceSpec, secrets: Iterable[str]) -> Identifiers:
    """The words of a service's commands (code, never masked), less any that holds one
    of its secrets: ``--requirepass X`` keeps X masked."""
    hidden = [s for s in secrets if worth_masking(s)]
    argvs = [svc.command, svc.entrypoint or (), svc.local.command or ()]
    if svc.healthcheck is not None:
        argvs.append(svc.healthcheck.test or ())
    found: Identifiers = {}
    for argv in argvs:
        for word in (w for arg in argv for w in re.split(r"[\s;|&()'\"=,]+", arg)):
            if len(word) > 1 and not any(s in word for s in hidden):
                found.setdefault(word, "a word of a command")
    return found


def stack_identifiers(stack: StackSpec) -> Identifiers:
    found: Identifiers = {}
    if stack.name:
        found[stack.name] = "the project name"
    for path in (*stack.compose_files, stack.compose_file):
        found.setdefault(str(path), "a path of the project")
    for profile in stack.profiles:
        found.setdefault(profile, "a profile name")
    for key, value in stack.variables.items():
        if value and not is_secret_name(key) and key in ("USER", "LOGNAME", "HOSTNAME"):
            found.setdefault(value, "a user or host name")
    secrets = [v for _, _, v in stack_sources(stack)]
    for svc in stack.services.values():
        for name, kind in service_identifiers(svc).items():
            found.setdefault(name, kind)
    for svc in stack.services.values():
        for name, kind in code_words(svc, secrets).items():
            found.setdefault(name, kind)
    return found


def _named_value(found: Identifiers, key: str, value: str) -> None:
    for pattern, kind in ((_USER, "a user name"), (_DATABASE, "a database name"),
                          (_HOST, "a host name"), (_NAME, "a name")):  # fmt: skip
        if pattern.search(key):
            found.setdefault(value, kind)
            return


def _url_parts(found: Identifiers, text: str) -> None:
    """A URL's user name (unless it is a token), host, and for a database URL its
    database: names, where the password is not."""
    if "://" not in text:
        return
    for match in _URL.finditer(text):
        try:
            parts = urlsplit(match.group(0))
            host = parts.hostname
        except ValueError:
            continue
        user = unquote(parts.username or "")
        if user and not looks_like_token(user):
            found.setdefault(user, "a user name")
        if host:
            found.setdefault(host, "a host name")
        if match.group(1).lower().startswith(_DATABASE_SCHEMES):
            database = parts.path.strip("/").split("/")[0]
            if database and not database.isdigit():
                found.setdefault(unquote(database), "a database name")


def service_sources(svc: ServiceSpec) -> Iterator[Source]:
    """Each secret of a service with where it comes from."""
    from .probespec import redis_password

    for label, env in (("", svc.environment), ("local ", svc.local.env)):
        for key, value in env.items():
            if is_secret_name(key) and value:
                yield svc.name, f"{label}{key}", value
            for found in text_secrets(value):
                yield svc.name, f"the secret in {label}{key}", found
    for key, value in _secret_leaves(svc.extension, "x-pyairtable"):
        yield svc.name, key, value
    texts = {"x-pyairtable.url": svc.url or "", "its probe": svc.probe.target,
             "its probe command": " ".join(svc.probe.argv),
             "its command": " ".join(svc.command),
             "its entrypoint": " ".join(svc.entrypoint or ()),
             "its local command": " ".join(svc.local.command or ())}  # fmt: skip
    if svc.healthcheck is not None:
        texts["its healthcheck"] = " ".join(svc.healthcheck.test or ())
    for where, text in texts.items():
        for found in text_secrets(text):
            yield svc.name, where, found
    if svc.image_kind == "redis":
        try:
            password = redis_password(svc)
        except ConfigError:  # an unreadable REDIS_PASSWORD_FILE: said at launch
            password = ""
        if password:
            yield svc.name, "its redis password", password


def stack_sources(stack: StackSpec) -> Iterator[Source]:
    """Each secret of a stack with where it comes from ("" for no service: a variable
    of the environment or .env, a top-level x- block)."""
    for key, value in stack.variables.items():
        if is_secret_name(key) and value:
            yield "", key, value
        for found in text_secrets(value):
            yield "", key, found
    for key, value in _secret_leaves(stack.extensions, ""):
        yield "", key, value
    for svc in stack.services.values():
        yield from service_sources(svc)


def _secret_leaves(block: Mapping[str, object], path: str) -> Iterator[tuple[str, str]]:
    """The values under secret-named keys of an ``x-`` block, with their key path."""

    def walk(value: object, where: str, secret: bool) -> Iterator[tuple[str, str]]:
        if isinstance(value, Mapping):
            for key, item in value.items():
                yield from walk(
                    item, f"{where}.{key}".lstrip("."), secret or is_secret_name(str(key))
                )
        elif isinstance(value, list | tuple):
            for item in value:
                yield from walk(item, where, secret)
        elif secret and isinstance(value, str | int) and not isinstance(value, bool):
            yield where, str(value)
        elif isinstance(value, str):
            yield from ((where, found) for found in text_secrets(value))

    yield from walk(block, path, False)


def weak_notes(sources: Iterable[Source], weak: Mapping[str, str]) -> list[str]:
    """One warning per secret that is masked only where it stands as a secret, naming
    the service and variable it comes from (never the value)."""
    notes, seen = [], set()
    for service, where, value in sources:
        if not service or value not in weak or value in seen:
            continue
        seen.add(value)
        reason = "equals the service name" if value == service else weak[value]
        notes.append(
            f"service '{service}': {where} {reason}; it is masked only where it appears "
            "as a password"
        )
    return notes
