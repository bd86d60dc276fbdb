"""Which jobs a snapshot may stand for, what each one's snapshot holds, and its key.

A job (one-shot service) that declares its inputs (``x-pyairtable: {job: {inputs:
[...]}}``) is *snapshotted* when its result is wholly the data of database servers its
backend can save and seed (``Backend.server_data``), and no one else writes there
meanwhile:

- what it writes, ``servers``: every such server it depends on, directly or through
  other jobs (a seed job after a migration job writes the migration's database too);
  all of each server is saved (every PostgreSQL database and role, every Redis key);
- everything it depends on is such a server or a snapshotted job; a service of any
  other kind may have done something a snapshot cannot hold;
- every other service that reaches one of its servers either runs before it (it is in
  its dependencies) or waits for its completion (``service_completed_successfully``,
  directly or through what it waits for): none may write while it runs;
- its environment names no server it does not depend on (it could write there unsaved).

Its key is a digest of: its definition (ports as the services they publish, so free
ports do not change it), its inputs' digest, each of its servers' definition and
identity (version, build, settings), and the keys of the jobs it depends on.

At a boot, ``choose`` decides which snapshot each server starts from: among the jobs of
the run whose snapshot exists, the latest one that writes it, as long as every job that
snapshot stands for is covered by it on all of that job's servers (otherwise a job
would run on its own result).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model import graph
from ..model.spec import ServiceSpec, StackSpec
from .jobinputs import Digest, InputsProblem, digests
from .jobstore import make_key

FORMAT = 1  # of the key: a new meaning never matches an old snapshot


@dataclass
class JobPlan:
    name: str
    servers: tuple[str, ...] = ()  # what it writes: the servers its snapshot holds
    jobs: frozenset[str] = frozenset()  # the jobs it depends on (all snapshotted)
    later: frozenset[str] = frozenset()  # the jobs that depend on it
    key: str = ""
    inputs: tuple[int, int] = (0, 0)  # files, bytes
    why_not: str = ""  # not snapshotted: why (it runs at every boot)
    error: str = ""  # its inputs cannot be read: it fails with this

    @property
    def snapshotted(self) -> bool:
        return not self.why_not and not self.error


@dataclass
class Plan:
    jobs: dict[str, JobPlan] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)  # server -> its identity

    def writers(self, server: str) -> list[str]:
        return [j for j, p in self.jobs.items() if p.snapshotted and server in p.servers]


def edges_of(stack: StackSpec) -> dict[str, list[str]]:
    return {n: [d.name for d in s.depends_on] for n, s in stack.services.items()}


def waiting_for(stack: StackSpec, job: str) -> set[str]:
    """The services that cannot start before ``job`` completed: they await its
    completion, or a service that does, or one that waits for such a service."""
    found: set[str] = set()
    for name in graph.start_order(edges_of(stack)):  # dependencies first
        for dep in stack.services[name].depends_on:
            direct = dep.name == job and dep.condition == "service_completed_successfully"
            if direct or dep.name in found:
                found.add(name)
                break
    return found


def port_labels(stack: StackSpec) -> dict[int, str]:
    """Each published host port -> the service port it stands for."""
    return {
        m.host: f"<{name}:{m.container}>"
        for name, svc in stack.services.items()
        for m in svc.ports
        if m.host is not None
    }


def canonical(spec: ServiceSpec, ports: Mapping[int, str]) -> str:
    """A service's definition as text, with the host ports published on this machine as
    the service ports they stand for (free ports change them, not the result): in its
    ``ports``, in addresses on this machine (``127.0.0.1:55432``), and as whole values."""
    compose = dict(spec.compose)
    if "ports" in compose:
        compose["ports"] = sorted([m.container, m.protocol] for m in spec.ports)
    body = {
        "image": spec.image,
        "compose": compose,
        "x": dict(spec.extension),
        "local": [list(spec.local.command or ()), str(spec.local.cwd), dict(spec.local.env)],
    }
    return json.dumps(_ported(body, ports), sort_keys=True, default=str)


_HERE = r"((?:127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0):)"


def _ported(value: Any, ports: Mapping[int, str]) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _ported(v, ports) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_ported(v, ports) for v in value]
    if isinstance(value, str):
        for port, label in ports.items():
            if value.strip() == str(port):
                return label
            value = re.sub(rf"{_HERE}{port}(?![0-9])", rf"\g<1>{label}", value)
    return value


def _names_server(spec: ServiceSpec, server: ServiceSpec) -> bool:
    """Whether a job's environment points at ``server``: its name as a host, or a host
    port it publishes on this machine."""
    values = [*spec.environment.values(), *spec.local.env.values()]
    host = rf"(?:^|[/@=\s,;]){re.escape(server.name)}(?::\d+|/|$)"
    ports = [str(m.host) for m in server.ports if m.host is not None]
    local = rf"(?:127\.0\.0\.1|localhost|\[::1\]):(?:{'|'.join(ports)})(?![0-9])" if ports else ""
    return any(re.search(host, v) or (local and re.search(local, v)) for v in values)


def plan(
    stack: StackSpec,
    jobs: Collection[str],
    identities: Mapping[str, str],
    backend: str,
    inputs: Mapping[str, Digest | InputsProblem] | None = None,
) -> Plan:
    """Each job that declares inputs: whether it is snapshotted, its servers and key.
    ``identities``: the servers ``backend`` can save and seed, with their identity;
    ``inputs``: the jobs' digests taken at the boot (``jobinputs.digests``), else taken here."""
    edges = edges_of(stack)
    ports = port_labels(stack)
    if inputs is None:
        inputs = digests(stack)
    result = Plan(identities=dict(identities))
    for name in graph.start_order(edges):  # a job's own dependencies are planned first
        spec = stack.services[name]
        if name not in jobs or not spec.job_inputs:
            continue
        needs = graph.closure(edges, [name]) - {name}
        job = JobPlan(name, jobs=frozenset(j for j in needs if j in result.jobs))
        result.jobs[name] = job
        job.why_not = _why_not(stack, name, needs, result, backend)
        job.servers = tuple(sorted(n for n in needs if n in identities))
        if job.why_not:
            continue
        found = inputs.get(name) or InputsProblem("its inputs were not read")
        if isinstance(found, InputsProblem):
            if found.too_big:
                job.why_not = f"{found}: hashing that much at every boot costs what it saves"
            else:
                job.error = str(found)
            continue
        job.inputs = (found.files, found.size)
        job.key = make_key(
            [
                FORMAT,
                canonical(spec, ports),
                found.value,
                [[s, identities[s], canonical(stack.services[s], ports)] for s in job.servers],
                sorted(result.jobs[j].key for j in job.jobs),
            ]
        )
    for name, job in result.jobs.items():
        job.later = frozenset(j for j, p in result.jobs.items() if name in p.jobs)
    return result


def _why_not(stack: StackSpec, name: str, needs: set[str], planned: Plan, backend: str) -> str:
    """Why job ``name`` cannot be snapshotted, or "" (the rules of the docstring)."""
    servers = [n for n in needs if n in planned.identities]
    for dep in graph.start_order({n: edges_of(stack)[n] for n in needs}):
        if dep not in planned.identities:
            problem = _dependency_problem(stack, name, dep, planned, backend)
            if problem:
                return problem
    if not servers:
        return "it depends on no database server: there is nothing to snapshot"
    return _shared_problem(stack, name, needs, servers) or _naming_problem(
        stack, name, needs, planned
    )


def _dependency_problem(stack: StackSpec, name: str, dep: str, planned: Plan, backend: str) -> str:
    """Why ``dep``, a dependency of job ``name`` and no server it can snapshot, stops it."""
    if dep in planned.jobs:
        # (one that does not wait for it to complete made it not snapshotted: it
        # reaches its servers without waiting)
        if not planned.jobs[dep].snapshotted:
            return f"it depends on job '{dep}', which is not snapshotted"
        return ""
    spec = stack.services[dep]
    if spec.image_kind:
        return (
            f"its database server '{dep}' is not one the {spec.backend or backend} backend "
            "can snapshot "
            "(PostgreSQL and Redis run from the local backend's built-in recipes are)"
        )
    if spec.job:
        return f"it depends on job '{dep}', which declares no inputs"
    return (
        f"it depends on '{dep}', which is neither a database server nor a job with "
        "declared inputs: what that service does cannot be part of a snapshot"
    )


def _shared_problem(stack: StackSpec, name: str, needs: set[str], servers: list[str]) -> str:
    """A service that may write to one of the job's servers while the job runs."""
    edges = edges_of(stack)
    after = waiting_for(stack, name)
    for server in sorted(servers):
        for other in sorted(stack.services):
            if other == name or other in needs or other in after:
                continue
            if server in graph.closure(edges, [other]):
                return (
                    f"'{other}' also uses '{server}' and does not wait for '{name}' to "
                    "complete: the snapshot could hold what it writes"
                )
    return ""


def _naming_problem(stack: StackSpec, name: str, needs: set[str], planned: Plan) -> str:
    for other in sorted(planned.identities):
        if other not in needs and _names_server(stack.services[name], stack.services[other]):
            return (
                f"its environment names '{other}', which it does not depend on: add "
                f"'{other}' to its depends_on"
            )
    return ""


def choose(
    found: Plan, hits: Collection[str], decided: Mapping[str, str | None]
) -> dict[str, str | None]:
    """Server -> the job whose snapshot it starts from (None: it starts empty), given
    the jobs of the run whose snapshot exists (``hits``) and the servers already
    launched (``decided``, which stay as they are)."""
    sources = set(hits)
    while True:
        chosen: dict[str, str | None] = dict(decided)
        for server in found.identities:
            if server not in decided:
                writers = [j for j in found.writers(server) if j in sources]
                deepest = max(writers, key=lambda j: len(found.jobs[j].jobs), default=None)
                chosen[server] = deepest
        covered = {j for j in found.jobs if covers(found, j, chosen)}
        wrong = {
            j for j in sources if j not in covered or not found.jobs[j].jobs <= covered
        }  # fmt: skip
        if not wrong:
            return chosen
        sources -= wrong


def covers(found: Plan, job: str, chosen: Mapping[str, str | None]) -> bool:
    """Whether every server ``job`` writes starts from its snapshot or a later job's:
    then it need not run."""
    plan_ = found.jobs[job]
    if not plan_.snapshotted:
        return False
    return all(chosen.get(s, None) in ({job} | plan_.later) for s in plan_.servers)
