"""Repo-level pytest configuration: the plugin's own tests drive generated projects."""

pytest_plugins = ["pytester"]
