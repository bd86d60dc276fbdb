"""Repo-level pytest configuration: the plugin's own tests drive generated projects."""

pytest_plugins = ["pytester"]

# tests/projects/ holds whole projects whose suites our tests run in their own pytest
# (copied to a temp dir): never collected as part of ours.
collect_ignore = ["tests/projects"]
