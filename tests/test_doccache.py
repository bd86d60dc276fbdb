"""The parsed-documents cache: a warm load reads the same documents without YAML, and
the cache never answers for a text it did not parse (model/doccache.py)."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_pyairtable.model import doccache
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.model.yamlread import load_documents
from pytest_pyairtable.support.errors import ComposeFileError

ROOT = Path(__file__).resolve().parent.parent

# Every kind of plain value the reader builds: aliases and merges, go-yaml scalars.
PLAIN = """\
x-base: &base
  image: busybox
  labels: {big: 9223372036854775807, over: 9223372036854775808}
  environment: [A=1]
services:
  a:
    <<: *base
    healthcheck: {interval: 1.5e3, retries: 0x1F, test: [CMD, "true"]}
    stop_grace_period: .inf
    x-flags: [yes, no, true, ~, 010, 0o17, 1_000, .nan, -.inf, "quoted", '']
    x-binary: !!binary aGVsbG8=
  b: *base
---
second: document
"""
# The reader's markers: JSON cannot say them, so such a file is not kept.
MARKED = "services:\n  a: {ports: !reset [], environment: !override [B=2], x-when: 2024-01-31}\n"
# Aliases that expand a short text far beyond its size: not kept either.
AMPLIFIED = (
    "x: &x [" + ", ".join(["0123456789"] * 50) + "]\n" + "y: [" + ", ".join(["*x"] * 200) + "]\n"
)


# A valid project with an alias, a merge and go-yaml scalars.
VALID = """\
x-base: &base
  image: busybox
  environment: [A=1, FLAG=yes]
  labels: {size: 010}
services:
  a:
    <<: *base
    environment: [B=2]
  b: *base
"""


def cache_in(directory: Path) -> Path:
    return directory / ".pyairtable" / "documents"


def exact(value: object) -> object:
    """A value as compared here: key order, and each scalar's type (True is not 1, 1 is
    not 1.0), count; NaN equals NaN."""
    if isinstance(value, dict):
        return [(k, exact(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [exact(v) for v in value]
    return (type(value).__name__, repr(value))


def test_cached_documents_are_the_parsed_ones(tmp_path: Path) -> None:
    parsed = load_documents(PLAIN, "compose.yaml")
    first = doccache.DocumentCache(tmp_path / "documents")
    assert first.get(PLAIN) is None
    first.put(PLAIN, parsed)
    first.save()
    again = doccache.DocumentCache(tmp_path / "documents").get(PLAIN)
    assert again is not None
    assert exact(again) == exact(parsed)
    flags = again[0]["services"]["a"]["x-flags"]
    assert flags[:7] == ["yes", "no", True, None, 8, 15, 1000] and flags[8] == -math.inf
    assert type(again[0]["services"]["a"]["healthcheck"]["interval"]) is float


@pytest.mark.parametrize("text", [MARKED, AMPLIFIED], ids=["markers", "amplified"])
def test_what_json_cannot_keep_as_written_is_parsed_each_time(tmp_path: Path, text: str) -> None:
    cache = doccache.DocumentCache(tmp_path / "documents")
    cache.put(text, load_documents(text, "compose.yaml"))
    cache.save()
    assert doccache.DocumentCache(tmp_path / "documents").get(text) is None


def test_a_warm_load_imports_no_yaml_and_gives_the_same_stack(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(VALID)
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from pytest_pyairtable.model.spec import load_stack
        stack = load_stack(Path({str(tmp_path / "compose.yaml")!r}), environ={{}})
        print(json.dumps([sorted(stack.services), "yaml" in sys.modules,
                          repr([stack.services[n] for n in sorted(stack.services)])]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def load() -> list[object]:
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        return list(json.loads(out.stdout))

    cold, warm = load(), load()
    assert cold[1] is True and warm[1] is False  # the warm load never imported YAML
    assert cold[0] == warm[0] == ["a", "b"] and cold[2] == warm[2]


def test_a_rewritten_file_is_parsed_again_even_with_its_old_time_and_size(
    tmp_path: Path,
) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  a: {image: one}\n")
    before = compose.stat()
    assert load_stack(compose, environ={}).services["a"].image == "one"
    compose.write_text("services:\n  a: {image: two}\n")  # same size
    os.utime(compose, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert compose.stat().st_size == before.st_size
    assert load_stack(compose, environ={}).services["a"].image == "two"


def test_a_damaged_cache_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  a: {image: x}\n")
    load_stack(compose, environ={})
    cache = cache_in(tmp_path)
    good = cache.read_bytes()
    other_reader = json.loads(good)
    other_reader["version"] = "0;another reader"  # an older plugin, an edited yamlread.py
    other_reader["entries"] = {
        k: [{"services": {"a": {"image": "stale"}}}] for k in other_reader["entries"]
    }
    for damaged in (
        b"",
        good[: len(good) // 2],
        b"\x00not json",
        b"\xe9" * 64,
        b'{"version": 1, "entries": {"x": NaN_}}',
        json.dumps(other_reader).encode(),
    ):
        cache.write_bytes(damaged)
        assert load_stack(compose, environ={}).services["a"].image == "x"
        assert cache.read_bytes() == good


def test_a_file_that_fails_is_never_cached(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  a: {image: x}\n")
    load_stack(compose, environ={})
    kept = cache_in(tmp_path).read_bytes()
    compose.write_text("services:\n  a: {image: x\n")  # unclosed flow mapping
    for _ in range(2):
        with pytest.raises(ComposeFileError, match="YAML error"):
            load_stack(compose, environ={})
    assert cache_in(tmp_path).read_bytes() == kept  # neither the failure nor a rewrite
    failing = tmp_path / "elsewhere" / "compose.yaml"
    failing.parent.mkdir()
    failing.write_text("services: [\n")
    with pytest.raises(ComposeFileError):
        load_stack(failing, environ={})
    assert not (failing.parent / ".pyairtable").exists()  # nothing made for a failed load


def test_the_cache_holds_only_the_last_load_owner_only_and_no_variable_value(
    tmp_path: Path,
) -> None:
    compose = tmp_path / "compose.yaml"
    for n in range(3):
        compose.write_text(f"services:\n  a: {{image: 'x:${{TOKEN}}', labels: [v{n}]}}\n")
        load_stack(compose, environ={"TOKEN": "s3cr3t-value"})
    cache = cache_in(tmp_path)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    data = cache.read_bytes()
    assert b"v2" in data and b"v0" not in data and b"v1" not in data
    assert b"${TOKEN}" in data and b"s3cr3t-value" not in data  # parsed before interpolation


def test_where_no_cache_can_be_made_loads_still_work(tmp_path: Path) -> None:
    cache = doccache.cache_for(Path("/proc/self/compose.yaml"))  # no directory can go there
    assert cache.get(PLAIN) is None
    cache.put(PLAIN, load_documents(PLAIN, "compose.yaml"))
    cache.save()  # nothing to write to, and no error
    assert cache.path is not None and not cache.path.exists()


def test_cached_and_fresh_documents_mix_in_one_load(tmp_path: Path) -> None:
    """A load that reads one file from the cache and parses another (an include edited
    since the last run). An include may define a service again only identically; with
    a NaN in it, that holds only if the cache gives the reader's NaN back."""
    compose = tmp_path / "compose.yaml"
    compose.write_text("include: [inc.yaml]\nservices:\n  a: {image: x, x-n: [.nan]}\n")
    inc = tmp_path / "inc.yaml"
    inc.write_text("services:\n  a: {image: x, x-n: [.nan]}\n")
    assert sorted(load_stack(compose, environ={}).services) == ["a"]
    inc.write_text("# edited\nservices:\n  a: {image: x, x-n: [.nan]}\n")
    assert sorted(load_stack(compose, environ={}).services) == ["a"]
    cached = json.loads(cache_in(tmp_path).read_text())["entries"]
    assert len(cached) == 2  # the main file's (a hit) and the include's new text
