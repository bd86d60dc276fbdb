"""Flake hunt: the whole test suite N times, each on a fresh clone with empty caches.

    python benchmarks/flakes.py --runs 10 [--hog] [--timeout 900] [-- PYTEST ARGS]

Each run clones the current commit (HEAD: commit what you want tested) into a new
temp dir and runs ``python -m pytest`` there (as the README says, so on the xdist
workers the clone's pyproject.toml asks for; ``-- -n 0`` for one process), with that
clone first on PYTHONPATH (so
the stand-ins, reapers and CLI it starts run its code, and nothing is installed),
an empty XDG_CACHE_HOME (no cached PostgreSQL clusters), no .pytest_cache and no
bytecode from earlier runs, and its own TMPDIR. ``--hog`` keeps every core busy
beside the suite with spinning processes that end by themselves at the deadline and
are killed at the end in any case.

It prints each failure with its test id as it happens, then a summary: runs with
failures, each failing test with how often it failed, and the wall time per run
(median, min, max). After each run it also checks that nothing the run started
still lives (a process whose environment names the run's TMPDIR): a run is over
when pytest returns. Exit status 1 if any run failed or left anything behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"  # not committed (.gitignore)
# Spins until the deadline, or until flakes.py is gone (its parent pid changes).
HOG = """
import os, sys, time
end, parent = float(sys.argv[1]), os.getppid()
while time.time() < end and os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


def failures(junit: Path) -> list[tuple[str, str]]:
    """(test id, first line of the message) of every failed or erroring test."""
    if not junit.exists():
        return [("<no report>", "pytest wrote no junit report (crashed or timed out?)")]
    found = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for outcome in ("failure", "error"):
            for problem in case.findall(outcome):
                module = case.get("classname", "").replace(".", "/")
                test_id = f"{module}.py::{case.get('name')}" if module else case.get("name", "?")
                message = (problem.get("message") or problem.text or "").strip()
                found.append(
                    (f"{test_id} ({outcome})", message.splitlines()[0][:200] if message else "")
                )
    return found


def totals(junit: Path) -> str:
    if not junit.exists():
        return "no report"
    outcomes: Counter[str] = Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
        outcomes[kinds[0] if kinds else "passed"] += 1
    return ", ".join(f"{outcomes[k]} {k}" for k in ("passed", "failure", "error", "skipped"))


def leftovers(tmpdir: Path) -> list[str]:
    """Live processes started under ``tmpdir`` (by their environment)."""
    needle = f"={tmpdir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(
            item.startswith((b"PYAIRTABLE_TMPDIR", b"TMPDIR")) and needle in item
            for item in environ
        ):
            found.append(f"{entry.name}: {cmdline}")
    return found


def start_hog(seconds: float) -> list[subprocess.Popen[bytes]]:
    end = str(time.time() + seconds)
    return [subprocess.Popen([sys.executable, "-c", HOG, end]) for _ in range(os.cpu_count() or 1)]


def one_run(
    commit: str, work: Path, timeout: float, pytest_args: list[str]
) -> tuple[list[tuple[str, str]], str, float, Path | None]:
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    tmpdir, cache = work / "tmp", work / "cache"
    tmpdir.mkdir()
    for path in (work, tmpdir):  # PostgreSQL runs as another user and must reach its dirs
        path.chmod(0o755)
    env = {
        **os.environ,
        "PYTHONPATH": str(clone),
        "XDG_CACHE_HOME": str(cache),
        "TMPDIR": str(tmpdir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    junit = work / "junit.xml"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}"]
    argv += ["-o", "junit_logging=all"]  # a failure's captured output in the report
    started = time.monotonic()
    proc = subprocess.Popen(
        [*argv, *pytest_args],
        cwd=clone,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: a timed-out run is ended whole
    )
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass  # reported as a failure: pytest wrote no report
    finally:  # timed out, or flakes.py interrupted: end the whole run (its reapers clean up)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    took = time.monotonic() - started
    found = failures(junit)
    if proc.returncode not in (0, 1) and not found:
        found.append(("<pytest>", f"exited with code {proc.returncode}"))
    found += [("<left running after pytest returned>", item) for item in leftovers(tmpdir)]
    kept = None
    if found and junit.exists():  # the full text of each failure, for a post-mortem
        RESULTS.mkdir(parents=True, exist_ok=True)
        kept = RESULTS / f"flakes-{commit[:10]}-{time.strftime('%Y%m%d-%H%M%S')}.xml"
        shutil.copy(junit, kept)
    return found, totals(junit), took, kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--hog", action="store_true", help="keep every core busy beside it")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args()
    # SIGTERM as Ctrl-C: the run in progress, its temp dir and the hogs are ended too
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    hog_note = f", beside {os.cpu_count()} spinning processes" if args.hog else ""
    print(f"flakes: {args.runs} runs of commit {commit[:10]}{hog_note}")
    if dirty:
        print("flakes: note: uncommitted changes are not part of the runs")
    hogs = start_hog(args.runs * args.timeout) if args.hog else []
    failed_tests: Counter[str] = Counter()
    bad_runs, times = 0, []
    try:
        for n in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="pyairtable-flakes-") as work:
                found, summary, took, kept = one_run(
                    commit, Path(work), args.timeout, args.pytest_args
                )
            times.append(took)
            print(f"run {n}/{args.runs}: {summary} in {took:.1f}s", flush=True)
            for test_id, message in found:
                print(f"  FAILED {test_id}: {message}", flush=True)
                failed_tests[test_id] += 1
            if kept is not None:
                print(f"  (the full text of these failures: {kept})", flush=True)
            bad_runs += bool(found)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(f"summary: {args.runs - bad_runs} of {args.runs} runs green{hog_note}")
    for test_id, count in failed_tests.most_common():
        print(f"  {test_id}: failed in {count} of {args.runs} runs")
    print(
        f"  wall time per run: median {statistics.median(times):.1f}s "
        f"(min {min(times):.1f}s, max {max(times):.1f}s)"
    )
    return 1 if bad_runs else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("flakes: interrupted; the run in progress was ended", file=sys.stderr)
        sys.exit(130)
