"""Keep secrets out of everything we print."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")


def mask_url_passwords(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host``, for text printed
    before the stack (and so its secrets) is known, e.g. settings given as URLs."""
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if len(s) >= 3}  # masking "1" would mangle all output
        values |= {quote(s, safe="") for s in values}  # as they appear inside URLs
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text
