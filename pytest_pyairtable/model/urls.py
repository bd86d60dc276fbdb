"""``--pyairtable-url NAME=URL``: services someone else runs, for the external backend."""

from __future__ import annotations

from ..support.errors import ConfigError
from ..support.redact import mask_url
from .bounds import URL_SCHEMES
from .probespec import url_problem


def parse_urls(values: tuple[str, ...]) -> dict[str, str]:
    """``NAME=URL`` items, each checked as ``x-pyairtable.url`` is (the settings call
    this at start, so that a careless value fails the run there, whatever the backend)."""
    urls = {}
    for value in values:
        name, sep, url = value.partition("=")
        problem = "expected NAME=URL" if not sep or not name or "://" not in url else None
        problem = problem or url_problem(url, URL_SCHEMES)
        if problem:
            raise ConfigError(
                f"--pyairtable-url {mask_url(value)!r}: {problem}. "
                "Fix: write NAME=URL, e.g. api-gateway=http://staging:8000"
            )
        urls[name] = url
    return urls
