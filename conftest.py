"""Repo-level pytest configuration: the plugin's own tests drive generated projects."""

import gc
import os
import sys

pytest_plugins = ["pytester"]

# pytest rewrites the asserts of every module of an installed pytest plugin (hypothesis,
# anyio, xdist... all of their modules) and keeps the result as bytecode, unless bytecode
# may not be written: with PYTHONDONTWRITEBYTECODE=1 (set on some CI images, ours among
# them) each of the suite's ~500 pythons parsed and rewrote them again, 0.3-0.7 s of CPU
# each. The suite lets them be kept, from here on and in what it starts.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# tests/projects/ holds whole projects whose suites our tests run in their own pytest
# (copied to a temp dir): never collected as part of ours.
collect_ignore = ["tests/projects"]


def pytest_xdist_auto_num_workers(config: object) -> int:
    """``-n auto`` (the suite's addopts): two workers per CPU. A test of ours spends most
    of its time waiting on what it started (pytest runs, servers, containers), so one
    worker per CPU left them idle a fifth of the run; at two, the CPUs are busy."""
    return 2 * len(os.sched_getaffinity(0))


def pytest_collection_finish(session: object) -> None:
    """What is there once the tests are collected (the test modules, what they import,
    the items) stays for the whole run: the collector stops traversing it at each full
    collection. A worker spent ~8% of its CPU in the collector before, most of it on these."""
    gc.freeze()
