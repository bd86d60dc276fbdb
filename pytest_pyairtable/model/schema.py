"""Shape checks of a compose document, where compose's JSON schema would refuse it.

The one place that validates: the loader calls ``check`` on each merged file, before
anything reads a field, and gets every problem at once (``path: cause. Fix: ...``).
It covers the top level, service names and keys (a typo such as ``enviroment`` is
refused, as compose refuses it) and the type of every service field: in depth where this
package reads it, by the Compose Specification schema's type (and the keys of a few
mappings) for the rest, so that a careless value is refused here, with its fix, not by
``docker compose`` later or never. (Longer than our usual module: a flat table of small
checks, one per field, kept together so that there is one place.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ..support.redact import is_secret_name
from .bounds import nul_problems, service_problems, size_problem
from .names import name_problems
from .unique import duplicate
from .values import Timestamp

TOP_LEVEL = (
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
)  # fmt: skip
SERVICE_KEYS = frozenset(
    [
        "annotations",
        "attach",
        "blkio_config",
        "build",
        "cap_add",
        "cap_drop",
        "cgroup",
        "cgroup_parent",
        "command",
        "configs",
        "container_name",
        "cpu_count",
        "cpu_percent",
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpu_shares",
        "cpus",
        "cpuset",
        "credential_spec",
        "depends_on",
        "deploy",
        "develop",
        "device_cgroup_rules",
        "devices",
        "dns",
        "dns_opt",
        "dns_search",
        "domainname",
        "entrypoint",
        "env_file",
        "environment",
        "expose",
        "extends",
        "external_links",
        "extra_hosts",
        "gpus",
        "group_add",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "ipc",
        "isolation",
        "label_file",
        "labels",
        "links",
        "logging",
        "mac_address",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "models",
        "network_mode",
        "networks",
        "oom_kill_disable",
        "oom_score_adj",
        "pid",
        "pids_limit",
        "platform",
        "ports",
        "post_start",
        "pre_stop",
        "privileged",
        "profiles",
        "provider",
        "pull_policy",
        "pull_refresh_after",
        "read_only",
        "restart",
        "runtime",
        "scale",
        "secrets",
        "security_opt",
        "shm_size",
        "stdin_open",
        "stop_grace_period",
        "stop_signal",
        "storage_opt",
        "sysctls",
        "tmpfs",
        "tty",
        "ulimits",
        "use_api_socket",
        "user",
        "userns_mode",
        "uts",
        "volumes",
        "volumes_from",
        "working_dir",
    ]
)
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
_NAME = re.compile(r"[a-zA-Z0-9._-]+")
_DURATION_FIX = "write a duration with its unit, e.g. '30s', '1m30s', '500ms'"

Problems = list[str]
_SCALAR = "string|number|boolean|null"
_ARTICLES = {"string": "a string", "number": "a number", "boolean": "true or false",
             "null": "empty", "mapping": "a mapping", "list": "a list"}  # fmt: skip


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Timestamp):
        return "timestamp"
    return {str: "string", dict: "mapping", list: "list", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _want(value: Any, kinds: str, path: str, out: Problems, fix: str = "") -> bool:
    """Is ``value`` one of ``kinds`` (``"string|list"``)? Else record why not."""
    if _type(value) in kinds.split("|"):
        return True
    if isinstance(value, Timestamp):
        got = f"a date ({value}: YAML reads it as a time, compose refuses it here)"
    elif any(is_secret_name(part) for part in path.split(".")):
        got = _ARTICLES.get(_type(value), _type(value))  # the value of a secret is not shown
    else:
        got = repr(value)
    wanted = " or ".join(_ARTICLES[k] for k in kinds.split("|"))
    fix = fix or ("quote the date" if isinstance(value, Timestamp) else f"write {wanted} there")
    out.append(f"{path} must be {wanted}, got {got}. Fix: {fix}.")
    return False


def _strings(value: Any, path: str, out: Problems, *, unique: bool = True) -> None:
    if _want(value, "list", path, out):
        for n, item in enumerate(value):
            _want(item, "string", f"{path}[{n}]", out)
        if unique:
            _unique(value, path, out)


def _unique(items: list[Any], path: str, out: Problems) -> None:
    found = duplicate(items)
    if found:
        out.append(f"{path}: items {found[0]} and {found[1]} are the same. Fix: keep one of them.")


def _command(value: Any, path: str, out: Problems) -> None:
    if _want(value, "null|string|list", path, out) and isinstance(value, list):
        _strings(value, path, out, unique=False)


def _environment(value: Any, path: str, out: Problems) -> None:
    if not _want(value, "mapping|list", path, out, "use KEY: value lines or - KEY=value items"):
        return
    if isinstance(value, list):
        _strings(value, path, out)
        return
    for key, item in value.items():
        if not key:
            out.append(f"{path} has an empty variable name. Fix: name it.")
        _want(item, "string|number|boolean|null", f"{path}.{key}", out)


def _env_file(value: Any, path: str, out: Problems) -> None:
    if not _want(value, "string|list", path, out) or isinstance(value, str):
        return
    for n, item in enumerate(value):
        where = f"{path}[{n}]"
        if _want(item, "string|mapping", where, out) and isinstance(item, dict):
            _keys(item, ("path", "required", "format"), where, out)
            if "path" not in item:
                out.append(f"{where} has no path. Fix: add path: FILE.")
            kinds = {"path": "string", "required": "boolean|string", "format": "string"}
            _optional(item, kinds, where, out)


def _ports(value: Any, path: str, out: Problems) -> None:
    if not _want(value, "list", path, out):
        return
    long = {
        "name": "string", "mode": "string", "host_ip": "string", "target": "number|string",
        "published": "string|number", "protocol": "string", "app_protocol": "string",
    }  # fmt: skip
    for n, item in enumerate(value):
        where = f"{path}[{n}]"
        if _want(item, "number|string|mapping", where, out) and isinstance(item, dict):
            _keys(item, tuple(long), where, out)
            _optional(item, long, where, out)
    _unique(value, path, out)


def _healthcheck(value: Any, path: str, out: Problems) -> None:
    if not _want(value, "mapping", path, out):
        return
    kinds = {"disable": "boolean|string", "interval": "string", "retries": "number|string",
             "timeout": "string", "start_period": "string", "start_interval": "string"}  # fmt: skip
    _keys(value, (*kinds, "test"), path, out)
    for key, kind in kinds.items():
        if key in value:
            fix = _DURATION_FIX if kind == "string" else ""
            _want(value[key], kind, f"{path}.{key}", out, fix)
    if "test" in value:
        _command(value["test"], f"{path}.test", out)


def _depends_on(value: Any, path: str, out: Problems) -> None:
    if not _want(value, "list|mapping", path, out) or isinstance(value, list):
        if isinstance(value, list):
            _strings(value, path, out)
        return
    for name, item in value.items():
        where = f"{path}.{name}"
        fix = "write {condition: service_started}, or list the names"
        if not _want(item, "mapping", where, out, fix):
            continue
        _keys(item, ("condition", "required", "restart"), where, out)
        _optional(item, {"required": "boolean", "restart": "boolean|string"}, where, out)
        condition = item.get("condition")
        if condition not in CONDITIONS:
            got = "no condition" if condition is None else f"{condition!r}"
            out.append(
                f"{where}.condition must be one of {', '.join(CONDITIONS)}, got {got}. "
                "Fix: write one of them."
            )


def _extends(value: Any, path: str, out: Problems) -> None:
    if _want(value, "string|mapping", path, out) and isinstance(value, dict):
        _keys(value, ("service", "file"), path, out)
        if not isinstance(value.get("service"), str):
            out.append(f"{path}.service must name the service to extend. Fix: add service: NAME.")
        _optional(value, {"file": "string"}, path, out)


def _volumes(value: Any, path: str, out: Problems) -> None:
    if not _want(value, "list", path, out):
        return
    types = ("bind", "volume", "tmpfs", "cluster", "npipe", "image")
    for n, item in enumerate(value):
        where = f"{path}[{n}]"
        if _want(item, "string|mapping", where, out) and isinstance(item, dict):
            if item.get("type") not in types:
                out.append(f"{where}.type must be one of {', '.join(types)}. Fix: write one.")
            _optional(item, {"source": "string", "target": "string"}, where, out)


def _keys(value: dict[str, Any], allowed: tuple[str, ...], path: str, out: Problems) -> None:
    extra = [k for k in value if k not in allowed and not k.startswith("x-")]
    if extra:
        out.append(
            f"{path}: unknown key(s) {', '.join(map(repr, extra))}. Fix: correct the spelling; "
            f"valid: {', '.join(allowed)}."
        )


def _optional(value: dict[str, Any], kinds: dict[str, str], path: str, out: Problems) -> None:
    for key, kind in kinds.items():
        if key in value:
            _want(value[key], kind, f"{path}.{key}", out)


def _x_pyairtable(value: Any, path: str, out: Problems) -> None:
    """Ours: the types of what the plugin reads (unknown keys are named where it reads)."""
    if not _want(value, "mapping|null", path, out) or not value:
        return
    local, probe = value.get("local"), value.get("probe")
    kinds = {
        "local": "mapping|null",
        "probe": "mapping|null",
        "url": "string|null",
        "job": "boolean|mapping|null",
    }
    _optional(value, kinds, path, out)
    job = value.get("job")
    if isinstance(job, dict):  # {inputs: [...]}: a job whose result may come from a snapshot
        _keys(job, ("inputs",), f"{path}.job", out)
        if _want(job.get("inputs"), "list", f"{path}.job.inputs", out, "list its input paths"):
            _strings(job["inputs"], f"{path}.job.inputs", out)
            for n, item in enumerate(job["inputs"]):
                if isinstance(item, str) and not item.strip():
                    out.append(f"{path}.job.inputs[{n}] is empty. Fix: name a file or directory.")
    if isinstance(local, dict):
        if "command" in local:
            _command(local["command"], f"{path}.local.command", out)
        _optional(local, {"cwd": "string|null", "env": "mapping|null"}, f"{path}.local", out)
        env = local.get("env")
        for key, item in env.items() if isinstance(env, dict) else ():
            _want(item, "string|number|boolean|null", f"{path}.local.env.{key}", out)
    if isinstance(probe, dict):
        kinds = {"http": "string", "postgres": "string", "redis": "string", "tcp": "string",
                 "log": "string", "status": "number", "json": "mapping",
                 "migrations_table": "string"}  # fmt: skip
        _optional(probe, kinds, f"{path}.probe", out)
        if "command" in probe:
            _command(probe["command"], f"{path}.probe.command", out)
        if "tables" in probe:
            _strings(probe["tables"], f"{path}.probe.tables", out)


def _networks(value: Any, path: str, out: Problems) -> None:
    if not _want(value, "list|mapping", path, out):
        return
    if isinstance(value, list):
        _strings(value, path, out)
        return
    for name, item in value.items():
        _want(item, "mapping|null", f"{path}.{name}", out)


def _service_files(value: Any, path: str, out: Problems) -> None:
    """A service's ``secrets`` or ``configs``: names, or mappings with a ``source``."""
    if not _want(value, "list", path, out):
        return
    kinds = {"source": "string", "target": "string", "uid": "string", "gid": "string",
             "mode": "number|string"}  # fmt: skip
    for n, item in enumerate(value):
        where = f"{path}[{n}]"
        if _want(item, "string|mapping", where, out) and isinstance(item, dict):
            _keys(item, tuple(kinds), where, out)
            if "source" not in item:
                out.append(f"{where} has no source. Fix: add source: NAME.")
            _optional(item, kinds, where, out)


def _list_or_dict(values: str, kinds: str = "list|mapping") -> Callable[[Any, str, Problems], None]:
    """``- KEY=value`` items, or a mapping whose values are ``values``."""

    def check(value: Any, path: str, out: Problems) -> None:
        if not _want(value, kinds, path, out):
            return
        if isinstance(value, list):
            _strings(value, path, out)
            return
        for key, item in value.items():
            _want(item, values, f"{path}.{key}", out)

    return check


def _string_or_strings(value: Any, path: str, out: Problems) -> None:
    if _want(value, "string|list", path, out) and isinstance(value, list):
        _strings(value, path, out)


def _keyed(keys: str, kinds: str = "mapping") -> Callable[[Any, str, Problems], None]:
    """A mapping with these keys only (their own shapes are compose's to check)."""

    def check(value: Any, path: str, out: Problems) -> None:
        if _want(value, kinds, path, out) and isinstance(value, dict):
            _keys(value, tuple(keys.split()), path, out)

    return check


_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def _container_name(value: Any, path: str, out: Problems) -> None:
    """compose's schema pattern, searched (not anchored) as its validator does."""
    if _want(value, "string", path, out) and not _CONTAINER_NAME.search(value):
        out.append(
            f"{path} {value!r} does not match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at least two "
            "letters, digits, '_', '.' or '-', the first a letter or digit). Fix: rename it."
        )


def _scale(value: Any, path: str, out: Problems) -> None:
    wanted = _want(value, "number|string", path, out)
    if wanted and isinstance(value, int | float) and (value < 0 or value != int(value)):
        out.append(f"{path} must be a whole number, 0 or more, got {value}. Fix: write one.")


def _scalars(value: Any, path: str, out: Problems) -> None:
    if _want(value, "list", path, out):
        for n, item in enumerate(value):
            _want(item, "string|number", f"{path}[{n}]", out)


def _simple(kinds: str, fix: str = "") -> Callable[[Any, str, Problems], None]:
    def check(value: Any, path: str, out: Problems) -> None:
        wanted = _want(value, kinds, path, out, fix)
        if wanted and isinstance(value, float) and not math.isfinite(value):  # (compose: +Inf)
            out.append(f"{path} must be a finite number, got {value}. Fix: write a number.")

    return check


_FIELDS: dict[str, Callable[[Any, str, Problems], None]] = {
    "image": _simple("string"),
    "command": _command,
    "entrypoint": _command,
    "environment": _environment,
    "env_file": _env_file,
    "ports": _ports,
    "healthcheck": _healthcheck,
    "depends_on": _depends_on,
    "profiles": _strings,
    "stop_signal": _simple("string"),
    "stop_grace_period": _simple("string", _DURATION_FIX),
    "extends": _extends,
    "volumes": _volumes,
    "links": _strings,
    "volumes_from": _strings,
    "network_mode": _simple("string"),
    "networks": _networks,
    "x-pyairtable": _x_pyairtable,
    "secrets": _service_files,
    "configs": _service_files,
}
# The other fields, by their type in the Compose Specification's schema (a string is
# accepted wherever a number or boolean is: interpolation yields strings).
_KINDS = {
    "mapping": "blkio_config credential_spec provider storage_opt",
    "mapping|null": "develop",
    "list|mapping": "models",
    "list": "devices gpus post_start pre_stop",
    "boolean|string": "attach init oom_kill_disable privileged read_only stdin_open tty "
    "use_api_socket",
    "number|string": "cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime "
    "cpu_shares cpus mem_limit mem_reservation mem_swappiness memswap_limit oom_score_adj "
    "pids_limit shm_size",
    "string": "cgroup cgroup_parent container_name cpuset domainname hostname ipc isolation "
    "mac_address platform pull_policy pull_refresh_after restart runtime user userns_mode uts "
    "working_dir",
    "string|null": "pid",
}
for _kinds, _keys_ in _KINDS.items():
    _FIELDS.update(dict.fromkeys(_keys_.split(), _simple(_kinds)))
_LISTS = ["cap_add", "cap_drop", "device_cgroup_rules", "dns_opt", "external_links", "security_opt"]
_FIELDS.update(dict.fromkeys(_LISTS, _strings))
_FIELDS["expose"] = _FIELDS["group_add"] = _scalars
_FIELDS.update(dict.fromkeys(["dns", "dns_search", "label_file", "tmpfs"], _string_or_strings))
_FIELDS.update(dict.fromkeys(["annotations", "labels", "sysctls"], _list_or_dict(_SCALAR)))
_FIELDS["extra_hosts"] = _list_or_dict("string|list")
_FIELDS["ulimits"] = _list_or_dict("number|string|mapping", "mapping")
_FIELDS["build"] = _keyed(
    "context dockerfile dockerfile_inline args ssh labels cache_from cache_to no_cache "
    "additional_contexts network pull target shm_size extra_hosts isolation privileged "
    "secrets tags ulimits platforms entitlements provenance sbom",
    "string|mapping",
)
_FIELDS["logging"] = _keyed("driver options")
_FIELDS["deploy"] = _keyed(
    "mode endpoint_mode replicas labels rollback_config update_config resources "
    "restart_policy placement",
    "mapping|null",
)
_FIELDS["scale"] = _scale
# The Compose Specification's pattern, searched as JSON Schema does (not anchored).
_PULL_POLICY = re.compile(
    r"always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+"
)


def _pull_policy(value: Any, path: str, out: Problems) -> None:
    if _want(value, "string", path, out) and not _PULL_POLICY.search(str(value)):
        out.append(
            f"{path} {value!r} is not a pull policy. Fix: always, never, missing, build, "
            "daily, weekly or every_<duration> (e.g. every_12h)."
        )


_FIELDS["pull_policy"] = _pull_policy
_FIELDS["container_name"] = _container_name


def check_include(entry: Any, path: str) -> Problems:
    """One ``include`` entry, checked before it is followed."""
    out: Problems = []
    if _want(entry, "string|mapping", path, out) and isinstance(entry, dict):
        _keys(entry, ("path", "env_file", "project_directory"), path, out)
        if "path" not in entry:
            out.append(f"{path} has no path. Fix: add path: FILE.")
        for key in ("path", "env_file"):
            given = entry.get(key)
            where = f"{path}.{key}"
            if key in entry and _want(given, "string|list", where, out) and isinstance(given, list):
                _strings(given, where, out)
        _optional(entry, {"project_directory": "string"}, path, out)
    # Followed before the service checks run: a NUL would reach the file system, which
    # refuses it with a bare ValueError.
    return out or nul_problems(entry, path)


def check_extends(value: Any, path: str) -> Problems:
    """A service's ``extends``, checked before it is followed."""
    out: Problems = []
    _extends(value, path, out)
    return out or nul_problems(value, path)  # as check_include: followed before the rest


def check(doc: dict[str, Any]) -> Problems:
    """Every problem of the document's shape, as ``path: cause. Fix: ...`` lines."""
    out: Problems = []
    _top_level(doc, out)
    services = doc.get("services", {})
    if not _want(services, "mapping", "services", out, "map each service name to its settings"):
        return out
    if size_problem(services):  # before any port range is expanded
        return [size_problem(services)]
    for name, body in services.items():
        where = f"services.{name}"
        if not _NAME.fullmatch(name):
            out.append(
                f"service name {name!r} may hold only letters, digits, '.', '_', '-'. "
                "Fix: rename the service."
            )
        if not _want(body, "mapping", where, out):
            continue
        unknown = [k for k in body if k not in SERVICE_KEYS and not k.startswith("x-")]
        if unknown:
            out.append(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}. Fix: correct the "
                "spelling (see the Compose Specification), or prefix your own keys with x-."
            )
        for key, field_check in _FIELDS.items():
            if key in body:
                field_check(body[key], f"{where}.{key}", out)
        out += service_problems(body, where)
    out += name_problems(n for n in services if _NAME.fullmatch(n))
    return out


def _top_level(doc: dict[str, Any], out: Problems) -> None:
    for key in doc:
        if key not in TOP_LEVEL and not key.startswith("x-"):
            out.append(
                f"unknown top-level key {key!r}. Fix: correct it, or prefix it with x- "
                f"(valid: {', '.join(TOP_LEVEL)}, x-*)."
            )
    for key in ("name", "version"):
        if key in doc:
            _want(doc[key], "string", key, out)
    if "include" in doc:
        _want(doc["include"], "list", "include", out)
    for key in ("networks", "volumes", "secrets", "configs", "models"):
        if key in doc and _want(doc[key], "mapping|null", key, out) and doc[key]:
            for name, item in doc[key].items():
                _want(item, "mapping|null", f"{key}.{name}", out)
