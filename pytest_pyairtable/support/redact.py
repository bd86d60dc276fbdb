"""Keep secrets out of everything we print: the one redaction layer.

Every front end passes what it shows through a ``Redactor`` (the pytest reports and
junit XML, the header, the summary, progress lines, the `pyairtable` command's output,
log tails, ``status``, timeline files), and the reprs of public objects use one too.
It masks:

- known secret values (variables named like secrets, passwords given in URLs or on
  command lines), also as they appear percent-encoded inside URLs;
- the password of any URL's userinfo (``postgresql://app:***@db/app``);
- the value after a secret-looking command-line flag (``--password x``, ``--token=x``,
  ``--requirepass x``, ``'--api-key', 'x'`` in a repr'd argv);
- the value of a secret-named ``KEY=value`` pair (``DB_PASSWORD=x``, libpq's
  ``password=x``, a query string's ``token=x``), of a quoted ``'KEY': 'value'`` pair (a
  dict's repr, JSON) and of an upper-case ``KEY: value`` line (YAML, log lines).

A name is secret-looking when it contains PASSWORD, PASSWD, SECRET, TOKEN, KEY or
CREDENTIAL, or has PASS or AUTH as a word of its own (``DB_PASS``, ``REDIS_AUTH``).
Masking errs towards hiding: ``monkey=x`` loses its value too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"
_MARKERS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL")
_WORDS = re.compile(r"(?:^|[^A-Z0-9])(?:PASS|AUTH|PW)(?:[^A-Z0-9]|$)")
# Values that are never worth hiding, and hiding them everywhere would garble all output.
_HARMLESS = frozenset(["true", "false", "yes", "no", "on", "off", "none", "null", "nil"])

_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)([^\s/?#\"'<>]*)@")
# A flag is one greedy run of name characters (no alternation inside it: "--token" a
# hundred thousand times over must not backtrack), judged by _secret_flag afterwards.
_FLAG = re.compile(
    r"(?<![\w-])(--?[A-Za-z0-9][\w.-]*)(\s*=\s*|\s+|['\"],\s*['\"])(?!-)([^\s'\",]+)"
)
_FLAG_MARKERS = ("pass", "secret", "token", "key", "credential")
# Keys, each up to where its value starts; the value is read only after a secret key.
_PAIR_KEY = re.compile(r"(?<![\w.-])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?=[^\s&;'\",])")
_PAIR_VALUE = re.compile(r"[^\s&;'\",]+")
_QUOTED_KEY = re.compile(r"(['\"])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\1\s*:\s*(?=['\"])")
# A backslash is read only as an escape, so an unclosed value is one linear scan.
_QUOTED_VALUE = re.compile(r"(['\"])((?:\\.|(?!\1)[^\\\n])*)\1")
_LINE_KEY = re.compile(r"(?<![\w.-])(?P<name>[A-Z][A-Z0-9_]*):[ \t]+(?![\[{])(?=\S)")
_LINE_VALUE = re.compile(r"[^\n]*")
Span = tuple[int, int]


def is_secret_name(name: str) -> bool:
    """Whether a variable, key or flag with this name holds a secret."""
    upper = name.upper()
    return any(m in upper for m in _MARKERS) or bool(_WORDS.search(upper))


def worth_masking(value: str) -> bool:
    """A known secret value that can be masked everywhere without garbling output."""
    return len(value) >= 3 and value.lower() not in _HARMLESS


def secret_values(pool: Mapping[str, Any]) -> set[str]:
    """The values of the secret-named entries of ``pool``; nested mappings and lists
    are walked (an ``x-`` block, labels), a secret-named key hides all below it."""
    found: set[str] = set()

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, secret or is_secret_name(str(key)))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)
        elif secret and isinstance(value, str | int) and not isinstance(value, bool):
            found.add(str(value))

    walk(pool, False)
    return {v for v in found if worth_masking(v)}


def text_secrets(text: str) -> set[str]:
    """Secrets written in a piece of text: URL passwords, values of secret flags."""
    found = {unquote(m) for m in _url_passwords(text)}
    found |= {text[start:end] for start, end in _flag_spans(text)}
    return {v for v in found if worth_masking(v)}


def _url_passwords(text: str) -> list[str]:
    return [text[start:end] for start, end in _userinfo_spans(text)]


class Redactor:
    """Masks known secret values and secret-looking patterns in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if worth_masking(s)}
        values |= {quote(s, safe="") for s in values}  # as they appear inside URLs
        self._secrets = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return mask_patterns(text)


def mask_patterns(text: str) -> str:
    """Only the patterns: what can be hidden without knowing any secret value. Each
    pattern reads the text as given, not another's masks (a mask could hide the key
    that makes the rest a secret); what any of them finds is masked."""
    spans: list[Span] = []
    if "@" in text:
        spans += _userinfo_spans(text)
    if "-" in text:
        spans += _flag_spans(text)
    if "=" in text:
        spans += _value_spans(text, _PAIR_KEY, _PAIR_VALUE)
    if ":" in text:
        spans += _value_spans(text, _QUOTED_KEY, _QUOTED_VALUE, group=2)
        spans += _value_spans(text, _LINE_KEY, _LINE_VALUE)
    return _masked(text, spans)


def _value_spans(
    text: str, keys: re.Pattern[str], value: re.Pattern[str], group: int = 0
) -> list[Span]:
    """Where the value after each secret-named key is. A key that is not secret does
    not take its value out of the search: it may hold one that is (``X: JWT_SECRET: x``,
    ``opts=password=x``, ``'a': 'API_TOKEN': 'x'``)."""
    spans: list[Span] = []
    covered = 0
    for key in keys.finditer(text):
        if key.start() < covered or not is_secret_name(key.group("name")):
            continue  # inside a secret value found already (each read once: linear)
        found = value.match(text, key.end())
        if found is not None:
            spans.append(found.span(group))
            covered = found.end()
    return spans


def _flag_spans(text: str) -> list[Span]:
    return [m.span(3) for m in _FLAG.finditer(text) if _secret_flag(m.group(1))]


def _userinfo_spans(text: str) -> list[Span]:
    spans = []
    for match in _URL_USERINFO.finditer(text):
        user, sep, password = match.group(2).partition(":")
        if sep and password:
            spans.append((match.start(2) + len(user) + 1, match.end(2)))
    return spans


def _masked(text: str, spans: list[Span]) -> str:
    """``text`` with each span, and each run of overlapping ones, replaced by one mask."""
    out: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        if start < pos or (start == pos and out):  # overlaps (or touches) the last mask
            pos = max(pos, end)
            continue
        out += [text[pos:start], MASK]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _secret_flag(flag: str) -> bool:
    name = flag.lstrip("-").lower()
    return any(m in name for m in _FLAG_MARKERS) or name.endswith("auth")


def mask_url(url: str) -> str:
    """A URL as it may be shown: its userinfo password masked."""
    return _masked(url, _userinfo_spans(url)) if "@" in url else url


def dataclass_repr(obj: Any, secrets: Iterable[str] = ()) -> str:
    """The repr a dataclass would have, redacted: for ``__repr__`` of public objects, so
    a failing assert, ``pytest -l`` locals and logging never show a secret."""
    fields = ", ".join(
        f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj) if f.repr
    )
    return Redactor(secrets)(f"{type(obj).__qualname__}({fields})")
