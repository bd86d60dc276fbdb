"""The one compose loader: files, interpolation, ``extends``, ``include``, merges.

Per file (and per YAML document), in compose's order: interpolate everything (``x-``
blocks too), resolve ``extends``, import ``include``, merge onto the files before it,
keep one entry per key, check the shape (``schema``), canonical form. Then, once for the
project: defaults, absolute paths, environment from the variables, normalisation,
profiles and the consistency checks. Every problem found on the way is reported in one
error. ``Model.record`` lists every file and variable the load read: the cache key.
(Longer than our usual module: the pipeline, with its bounds on hostile input at each
step, reads best in one place, in compose's order.)
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..support.errors import ComposeFileError, ConfigError, InterpolationError
from . import schema
from .bounds import size_problem
from .canonical import absolute, canonical, finish, normalize
from .consistency import check_consistency, split_profiles
from .doccache import cache_for
from .dotenv import read_env_file
from .extends import apply_extends
from .interpolate import Interpolator
from .merge import enforce_unicity, merge
from .portvars import note_port_templates
from .project import (
    Inputs,
    active_profiles,
    env_files,
    normalize_name,
    project_variables,
)
from .reading import FileRefused, read_bounded

MAX_INCLUDES = 100  # per file: each one is read, merged and checked
_RESOURCES = ("services", "volumes", "networks", "secrets", "configs", "models")


@dataclass
class Record:
    """What a load read: files (``None`` when looked for but absent), variables, warnings."""

    files: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    variables: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    # every ports: entry as written, before interpolation (see portvars.py)
    port_templates: list[tuple[str, bool]] = field(default_factory=list)

    def note(self, path: Path) -> bool:
        try:
            stat = path.stat()
        except OSError:
            self.files[str(path)] = None
            return False
        self.files[str(path)] = (stat.st_mtime_ns, stat.st_size)
        return True


@dataclass(frozen=True)
class Model:
    name: str
    working_dir: Path
    files: tuple[Path, ...]
    services: dict[str, dict[str, Any]]  # canonical; active ones only
    inactive: dict[str, dict[str, Any]]
    profiles: tuple[str, ...]
    variables: dict[str, str]
    extensions: dict[str, Any]  # the top-level x- blocks
    record: Record
    problems: tuple[str, ...] = ()  # missing variables, when the load was not strict


def load_model(inputs: Inputs, *, strict: bool = True) -> Model:
    """The merged project. Not ``strict``: missing variables do not stop the load (they
    are in ``Model.problems``), so the shape of the stack is known (fixtures can be
    registered) while every test that needs the stack gets the error from a strict load."""
    loader = _Loader(inputs, strict)
    try:
        return loader.load()
    except ConfigError:
        loader.raise_problems(cause_only=True)
        raise
    except RecursionError:  # a bound of ours missed a nesting: still the user's file
        raise ComposeFileError(
            f"{inputs.files[0]}: the compose file is nested too deeply to read. Fix: flatten "
            "it (aliases, extends, include or ${...} defaults within one another)."
        ) from None
    finally:
        loader.cache.save()


class _Loader:
    def __init__(self, inputs: Inputs, strict: bool = True) -> None:
        self.inputs = inputs
        self.strict = strict
        self.record = Record()
        self.parsed: dict[Path, list[Any]] = {}
        self.cache = cache_for(inputs.files[0])
        self.interpolators: list[Interpolator] = []
        self.problems: list[str] = []
        self.extended: dict[Path, dict[str, Any]] = {}

    def load(self) -> Model:
        inputs = self.inputs
        paths, named = env_files(inputs)
        for path in paths:
            self.record.note(path)
        variables = project_variables(inputs, paths, named, self.record.variables)
        variables["COMPOSE_PROJECT_NAME"] = self.project_name(variables)
        merged = self.load_files(inputs.files, inputs.working_dir, variables, [])
        self.raise_problems()
        services = merged.get("services") or {}
        if not merged:
            raise ComposeFileError(
                f"{inputs.files[0]}: empty compose file. Fix: declare services: in it."
            )
        services = normalize(services, variables)
        profiles = active_profiles(inputs, variables)
        active, inactive = split_profiles(services, profiles)
        deferred = self.interpolation_problems()
        if not deferred:  # an empty value where a variable is missing proves nothing
            check_consistency(active, inactive, merged)
        self.record.variables |= {n for i in self.interpolators for n in i.looked_up}
        for interp in self.interpolators:
            self.record.warnings += [w for w in interp.warnings() if w not in self.record.warnings]
        return Model(
            name=variables["COMPOSE_PROJECT_NAME"],
            working_dir=inputs.working_dir,
            files=inputs.files,
            services=active,
            inactive=inactive,
            profiles=profiles,
            variables=variables,
            extensions={k: v for k, v in merged.items() if k.startswith("x-")},
            record=self.record,
            problems=tuple(deferred),
        )

    # -- reading ---------------------------------------------------------------------

    def documents(self, path: Path) -> list[Any]:
        if path not in self.parsed:
            self.record.note(path)
            try:
                data = read_bounded(path)
            except (OSError, FileRefused) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise ComposeFileError(
                    f"cannot read compose file {path}: {why}. "
                    "Fix: pass the right path with --pyairtable-compose-file."
                ) from None
            try:  # UTF-8, or UTF-16 with its byte order mark, as go-yaml reads
                utf16 = data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
                text = data.decode("utf-16" if utf16 else "utf-8")
            except UnicodeDecodeError:
                raise ComposeFileError(
                    f"{path} is not UTF-8 text (a binary file?). Fix: name the compose file."
                ) from None
            documents = self.cache.get(text)
            if documents is None:
                from .yamlread import load_documents  # not imported by a warm load

                documents = load_documents(text, str(path))
                self.cache.put(text, documents)
            self.parsed[path] = documents
        return self.parsed[path]

    def project_name(self, variables: Mapping[str, str]) -> str:
        given = variables.get("COMPOSE_PROJECT_NAME")
        if given:  # used as it is (compose normalises only `name:` and the directory's)
            if given != normalize_name(given):
                raise ConfigError(
                    f"COMPOSE_PROJECT_NAME {given!r} is not a valid project name: compose "
                    "takes only lowercase letters, digits, '-' and '_', starting with a "
                    f"letter or digit. Fix: e.g. COMPOSE_PROJECT_NAME={normalize_name(given)}."
                )
            return given
        written = ""
        for path in self.inputs.files:
            for doc in self.documents(path):
                if isinstance(doc, dict) and isinstance(doc.get("name"), str) and doc["name"]:
                    written = doc["name"]
        if written:
            written = self.interpolator(variables).text(written, "name")
        return normalize_name(written or self.inputs.working_dir.name)

    def lookup(self, variables: Mapping[str, str]) -> Callable[[str], str | None]:
        def get(name: str) -> str | None:
            self.record.variables.add(name)
            return variables.get(name)

        return get

    def interpolator(self, variables: Mapping[str, str]) -> Interpolator:
        interp = Interpolator(variables)
        self.interpolators.append(interp)
        return interp

    # -- the pipeline ----------------------------------------------------------------

    def load_files(
        self, files: Sequence[Path], base: Path, variables: dict[str, str], chain: list[Path]
    ) -> dict[str, Any]:
        interp = self.interpolator(variables)
        merged: dict[str, Any] = {}
        for path in files:
            for doc in self.documents(path):
                if not isinstance(doc, dict):  # an empty document (a trailing ---) too
                    got = "an empty document" if doc is None else f"a {type(doc).__name__}"
                    raise ComposeFileError(
                        f"{path}: the top level must be a mapping, got {got}. Fix: write "
                        "services: and the services under it."
                    )
                merged = self.one_file(
                    doc=doc,
                    path=path,
                    base=base,
                    variables=variables,
                    interp=interp,
                    chain=[*chain, path],
                    merged=merged,
                )
        services = merged.get("services")
        if isinstance(services, dict):
            merged["services"] = finish(services, base, variables)
        return merged

    def one_file(
        self,
        *,
        doc: dict[str, Any],
        path: Path,
        base: Path,
        variables: dict[str, str],
        interp: Interpolator,
        chain: list[Path],
        merged: dict[str, Any],
    ) -> dict[str, Any]:
        if size_problem(doc.get("services")):  # refused before the cost of reading them
            raise ConfigError(f"{path}: {size_problem(doc.get('services'))}")
        note_port_templates(doc, self.record.port_templates)
        cfg = interp.walk(doc)
        if "version" in cfg:
            self.record.warnings.append(f"{path}: `version` is obsolete and ignored")
            cfg = {k: v for k, v in cfg.items() if k != "version"}
        cfg = apply_extends(cfg, path, base, lambda other: self.extended_file(other, interp))
        cfg = self.include(cfg, base, variables, chain)
        merged = merge(merged, cfg)
        if isinstance(merged.get("services"), dict):
            merged["services"] = enforce_unicity(merged["services"])
        problems = schema.check(merged)
        if problems:
            self.problems += [f"{path}: {p}" for p in problems]
            self.raise_problems()
        merged["services"] = enforce_unicity(canonical(merged.get("services") or {}))
        return merged

    def interpolation_problems(self) -> list[str]:
        found = [p for i in self.interpolators for p in (*i.problems, *i.missing_lines())]
        return list(dict.fromkeys(found))

    def raise_problems(self, *, cause_only: bool = False) -> None:
        """Raise every problem found so far. A load that is not strict goes on past
        missing variables (and what they may have caused, such as an empty number);
        ``cause_only``: after another error, report the missing variables (an empty
        value where one is missing is what broke the rest)."""
        variables = self.interpolation_problems()
        missing = any(i.missing for i in self.interpolators)
        if cause_only or (not self.problems and (self.strict or not missing)):
            problems = variables
        elif self.problems:
            problems = [*self.problems, *variables]
        else:
            problems = []
        if not problems:
            return
        only_missing = not self.problems and not any(i.problems for i in self.interpolators)
        headline = (
            "required variable(s) missing" if only_missing else "problem(s) in the compose file(s)"
        )
        listed = "\n".join(f"  - {p}" for p in problems)
        fix = ""
        if any(i.missing for i in self.interpolators):
            fix = (
                "\nFix: set the variables in the environment or in the .env file beside the "
                "compose file (or --pyairtable-env-file)."
            )
        # InterpolationError: only variables are missing (they may be set for another run)
        raise (InterpolationError if only_missing else ConfigError)(
            f"{len(problems)} {headline}:\n{listed}{fix}"
        )

    # -- extends ---------------------------------------------------------------------

    def extended_file(self, path: Path, interp: Interpolator) -> dict[str, Any]:
        """The services of a file named by ``extends.file``: interpolated, merged, in
        canonical form, paths relative to its own directory; its extends stay to do."""
        if path not in self.extended:
            if not path.is_file():
                self.record.note(path)
                raise ConfigError(f"extends.file {path} does not exist. Fix: correct the path.")
            merged: dict[str, Any] = {}
            for doc in self.documents(path):
                if isinstance(doc, dict):
                    note_port_templates(doc, self.record.port_templates)
                    merged = merge(merged, interp.walk(doc))
            services = merged.get("services")
            if not isinstance(services, dict):
                raise ConfigError(f"{path}: no services to extend. Fix: correct extends.file.")
            if size_problem(services):  # before canonical() expands ports, as in one_file
                raise ConfigError(f"{path}: {size_problem(services)}")
            services = canonical(enforce_unicity(services))
            self.extended[path] = finish(services, path.parent, {})
        return dict(self.extended[path])

    # -- include ---------------------------------------------------------------------

    def include(
        self, cfg: dict[str, Any], base: Path, variables: dict[str, str], chain: list[Path]
    ) -> dict[str, Any]:
        entries = cfg.get("include")
        if entries is None:
            return cfg
        if isinstance(entries, list) and len(entries) > MAX_INCLUDES:
            raise ConfigError(
                f"{chain[-1]}: {len(entries)} include entries, over the {MAX_INCLUDES} this "
                "reads. Fix: include fewer files."
            )
        if not isinstance(entries, list):
            raise ConfigError(
                f"{chain[-1]}: include must be a list, got {entries!r}. Fix: list the files."
            )
        cfg = {k: v for k, v in cfg.items() if k != "include"}
        for n, entry in enumerate(entries):
            imported = self.one_include(entry, base, variables, chain, f"include[{n}]")
            for key in _RESOURCES:
                cfg = _import(cfg, imported, key, chain[-1])
        return cfg

    def one_include(
        self, entry: Any, base: Path, variables: dict[str, str], chain: list[Path], where: str
    ) -> dict[str, Any]:
        problems = schema.check_include(entry, where)
        if problems:
            raise ConfigError(f"{chain[-1]}: {' '.join(problems)}")
        spec = {"path": entry} if isinstance(entry, str) else entry
        paths = [Path(absolute(base, p)) for p in _listed(spec["path"])]
        given_dir = spec.get("project_directory")
        project_dir = Path(absolute(base, given_dir)) if given_dir else paths[0].parent
        if paths[0] in chain:
            cycle = " -> ".join(str(p) for p in [*chain, paths[0]])
            raise ConfigError(f"include forms a cycle: {cycle}. Fix: remove one include.")
        for path in paths:
            if not self.record.note(path):
                raise ConfigError(
                    f"{chain[-1]}: {where}: {path} does not exist. Fix: correct the path."
                )
        env_paths = [Path(absolute(base, p)) for p in _listed(spec.get("env_file"))]
        if not env_paths and self.record.note(project_dir / ".env"):
            env_paths = [project_dir / ".env"]
        found: dict[str, str] = {}
        for env_path in env_paths:
            if not self.record.note(env_path):
                raise ConfigError(
                    f"{chain[-1]}: {where}: env_file {env_path} does not exist. "
                    "Fix: correct the path."
                )
            read_env_file(env_path, self.lookup(variables), found)
        included = {**found, **variables}
        return self.load_files(paths, project_dir, included, chain)


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _import(cfg: dict[str, Any], imported: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    source = imported.get(key)
    if not isinstance(source, dict):
        return cfg
    target = dict(cfg.get(key) or {})
    for name, value in source.items():
        if name in target and target[name] != value:
            raise ConfigError(
                f"{path}: {key}.{name} is also defined by an included file. Fix: define it "
                "once (a later -f/override file may change an included service)."
            )
        target[name] = value
    return {**cfg, key: target}
