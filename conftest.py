"""Repo-level pytest configuration: the plugin's own tests drive generated projects."""

pytest_plugins = ["pytester"]

# tests/projects/ holds whole projects whose suites our tests run in their own pytest
# (copied to a temp dir): never collected as part of ours.
collect_ignore = ["tests/projects"]


def pytest_xdist_auto_num_workers(config: object) -> int:
    """``-n auto`` (the suite's addopts): two workers per CPU. A test of ours spends most
    of its time waiting on what it started (pytest runs, servers, containers), so one
    worker per CPU left them idle a fifth of the run; at two, the CPUs are busy."""
    import os

    return 2 * len(os.sched_getaffinity(0))
