"""Keep secrets out of everything we print, and names, paths and code in: the one
redaction layer.

Every front end passes what it shows through a ``Redactor`` (the pytest reports and
junit XML, warnings, the header, the summary, progress lines, the `pyairtable`
command's output, log tails, ``status``, timeline files), and the reprs of public
objects use one too. Structured output (``config``, ``status --json``, timelines) is
masked inside the data (``Redactor.data``) before it is serialised, so it still parses.

A secret is masked by where it stands and by its value:

- where it stands as a secret, whatever its value (shapes.py, the table in
  docs/reference.md): a URL's password (or its user name when that is a token), the
  value after a secret flag (``--password x``, mysql's ``-px``), after a secret's name
  (``DB_PASSWORD=x``, ``'api_token': 'x'``, ``password: x``), an ``Authorization``
  header's credentials, a webhook URL's path;
- by value, anywhere (a service's log, a test's output, a repr): the values of
  secret-named variables and the secrets written in the stack (URL passwords, secret
  flags), also percent-encoded, also as the fragment a truncation (``...``) leaves.

A value that would garble what users read if hidden everywhere is masked only where it
stands as a secret (``weak``): one equal to or contained in an identifier of the stack
(project, service, image, user, database and host names, the project's paths), one
shorter than ``MIN_FREE_TEXT`` characters, a number shorter than ``MIN_NUMBER`` digits,
or an ordinary word (commonwords.py). ``POSTGRES_PASSWORD: postgres`` keeps the service
``postgres`` readable and its password masked after its name and in its URLs.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from .commonwords import WORDS
from .shapes import (
    Span,
    authorization_spans,
    flag_spans,
    glued_password_spans,
    is_secret_name,
    mask_url_spans,
    pattern_spans,
    userinfo_spans,
)

__all__ = [
    "MASK",
    "MIN_FRAGMENT",
    "MIN_FREE_TEXT",
    "MIN_NUMBER",
    "Redactor",
    "dataclass_repr",
    "is_secret_name",
    "mask_patterns",
    "mask_url",
    "secret_values",
    "text_secrets",
    "weak_reason",
    "worth_masking",
]

MASK = "***"
MIN_FREE_TEXT = 6  # shorter values are masked only where they stand as secrets
MIN_NUMBER = 10  # digits only: shorter ones are ports, pids, times
MIN_FRAGMENT = 3  # the least of a secret a truncation's "..." leaves that is masked
# Values that are never worth hiding, and hiding them everywhere would garble all output.
_HARMLESS = frozenset(["true", "false", "yes", "no", "on", "off", "none", "null", "nil"])


def worth_masking(value: str) -> bool:
    """A known secret value worth masking at all (where it stands as a secret)."""
    return len(value) >= 3 and value.lower() not in _HARMLESS


def weak_reason(value: str, identifiers: Mapping[str, str] | Iterable[str] = ()) -> str | None:
    """Why ``value`` is masked only where it stands as a secret, never in free text; None
    when it is masked everywhere. ``identifiers``: names of the stack, each with what
    it is (``{"db": "the service name"}``)."""
    kinds = identifiers if isinstance(identifiers, Mapping) else dict.fromkeys(identifiers, "")
    for name, kind in kinds.items():
        if value == name:
            return f"equals {kind or 'a name of the stack'}"
    for name, kind in kinds.items():
        if value in name:
            return f"is part of {kind or 'a name of the stack'}"
    if len(value) < MIN_FREE_TEXT:
        return f"is shorter than {MIN_FREE_TEXT} characters"
    if value.isdigit() and len(value) < MIN_NUMBER:
        return f"is a number of fewer than {MIN_NUMBER} digits"
    if value.lower() in WORDS:
        return "is an ordinary word"
    return None


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
    """Secrets written in a piece of text: URL passwords (and token user names),
    values of secret flags (mysql's ``-px`` too), ``Authorization`` credentials."""
    found = {unquote(text[a:b]) for a, b in userinfo_spans(text)} if "@" in text else set()
    for spans in (flag_spans, glued_password_spans, authorization_spans):
        found |= {text[a:b] for a, b in spans(text)}
    return {v for v in found if worth_masking(v)}


class Redactor:
    """Masks secrets in text (``__call__``) and in data (``data``).

    ``secrets``: the known values; ``identifiers``: the stack's names and paths (with
    what each is, for the warning), which no value masking may touch."""

    def __init__(
        self,
        secrets: Iterable[str] = (),
        identifiers: Mapping[str, str] | Iterable[str] = (),
    ) -> None:
        kinds = identifiers if isinstance(identifiers, Mapping) else dict.fromkeys(identifiers, "")
        self.identifiers: dict[str, str] = dict(kinds)
        self.weak: dict[str, str] = {}  # value -> why it is masked only as a secret
        strong: set[str] = set()
        for value in {s for s in secrets if worth_masking(s)}:
            reason = weak_reason(value, self.identifiers)
            if reason is None:
                strong.add(value)
            else:
                self.weak[value] = reason
        self.secrets = sorted([*strong, *self.weak], key=len, reverse=True)
        encoded = {quote(s, safe="") for s in strong}  # as they appear inside URLs
        self._strong = sorted(strong | {e for e in encoded if weak_reason(e, kinds) is None},
                              key=len, reverse=True)  # fmt: skip

    def sparing(self, words: Iterable[str]) -> Redactor:
        """The same masking, minus the values contained in ``words`` (the identifiers of
        the code a traceback shows), which it leaves as written."""
        more = {w: "a name in the code" for w in words if w not in self.identifiers}
        if not any(s in w for s in self._strong for w in more):
            return self
        return Redactor(self.secrets, {**self.identifiers, **more})

    def __call__(self, text: str) -> str:
        return self._text(text, [])

    def _text(self, text: str, extra: list[Span]) -> str:
        if not text:
            return text
        spans = pattern_spans(text) + extra
        for secret in self._strong:
            at = text.find(secret)
            while at >= 0:
                spans.append((at, at + len(secret)))
                at = text.find(secret, at + len(secret))
        if "..." in text and self._strong:
            spans += self._fragments(text)
        if "-p" in text:
            spans += self._glued(text)
        return _masked(text, spans)

    def _fragments(self, text: str) -> list[Span]:
        """What a truncation left of a secret beside its ``...``: the start of one
        before it, the end of one after it (pytest's assertion text, ``saferepr``)."""
        spans: list[Span] = []
        at = text.find("...")
        while at >= 0:
            end = at + 3
            while end < len(text) and text[end] == ".":
                end += 1
            for secret in self._strong:
                before = _prefix_before(text, at, secret)
                if before and self._fragment(text[at - before : at]):
                    spans.append((at - before, at))
                after = _suffix_after(text, end, secret)
                if after and self._fragment(text[end : end + after]):
                    spans.append((end, end + after))
            at = text.find("...", end)
        return spans

    def _fragment(self, fragment: str) -> bool:
        """A fragment worth masking: not a name of the stack or part of one (``postgres``
        of ``postgres-pw-1`` in "waiting for postgres..."), not an ordinary word."""
        return fragment.lower() not in WORDS and not any(fragment in i for i in self.identifiers)

    def _glued(self, text: str) -> list[Span]:
        """A weak value glued to ``-p`` (a password flag) is still a password."""
        spans = []
        for value in self.weak:
            at = text.find("-p" + value)
            while at >= 0:
                spans.append((at + 2, at + 2 + len(value)))
                at = text.find("-p" + value, at + 2)
        return spans

    def data(self, value: Any, secret: bool = False) -> Any:
        """``value`` (mappings, lists, scalars) with its secrets masked: the values under a
        secret-named key wholly, every other string as text. Keys are names: kept."""
        if isinstance(value, str):
            return MASK if secret and value and not _reference(value) else self(value)
        if isinstance(value, Mapping):
            return {k: self.data(v, secret or self._secret_key(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            if not secret and value and all(isinstance(v, str) for v in value):
                return self._argv(value)
            return [self.data(v, secret) for v in value]
        if secret and isinstance(value, int | float) and not isinstance(value, bool):
            return MASK
        return value

    def _argv(self, argv: list[str] | tuple[str, ...]) -> list[str]:
        """A list of words (a command): each masked as text, and as one command line
        too, for what only the words around it make a secret (``["--password", "x"]``,
        mysql's ``["mysqladmin", "-px"]``). A span is masked in the word it starts in."""
        starts, at = [], 0
        for word in argv:
            starts.append(at)
            at += len(word) + 1
        extra: dict[int, list[Span]] = {}
        for start, end in pattern_spans(" ".join(argv)):
            n = bisect.bisect_right(starts, start) - 1
            if not _reference(argv[n]):
                stop = min(end, starts[n] + len(argv[n])) - starts[n]
                extra.setdefault(n, []).append((start - starts[n], stop))
        return [self._text(word, extra.get(n, [])) for n, word in enumerate(argv)]

    def _secret_key(self, key: Any) -> bool:
        return isinstance(key, str) and key not in self.identifiers and is_secret_name(key)


def _prefix_before(text: str, at: int, secret: str) -> int:
    """The length of the longest start of ``secret`` (not all of it, at least
    MIN_FRAGMENT) that ends at ``at``; 0 when none. Only where a candidate begins with
    the secret's first character is it compared (in C), so a long line costs little."""
    if text[max(0, at - MIN_FRAGMENT) : at] not in secret:
        return 0
    lowest = max(0, at - len(secret) + 1)
    start = text.find(secret[0], lowest, at - MIN_FRAGMENT + 1)
    while start >= 0:
        if secret.startswith(text[start:at]):
            return at - start
        start = text.find(secret[0], start + 1, at - MIN_FRAGMENT + 1)
    return 0


def _suffix_after(text: str, end: int, secret: str) -> int:
    """The length of the longest end of ``secret`` (not all of it, at least
    MIN_FRAGMENT) that starts at ``end``; 0 when none."""
    if text[end : end + MIN_FRAGMENT] not in secret:
        return 0
    last = secret[-1]
    stop = text.rfind(last, end + MIN_FRAGMENT - 1, end + len(secret) - 1)
    while stop >= 0:
        if secret.endswith(text[end : stop + 1]):
            return stop + 1 - end
        stop = text.rfind(last, end + MIN_FRAGMENT - 1, stop)
    return 0


def _reference(value: str) -> bool:
    """A value that only names another (``${DB_PASSWORD}``, ``$(cat /run/secrets/x)``)."""
    return value.startswith(("${", "$(", "$${", "$$("))


def mask_patterns(text: str) -> str:
    """Only the shapes: what can be hidden without knowing any secret value."""
    return _masked(text, pattern_spans(text))


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


def mask_url(url: str) -> str:
    """A URL as it may be shown: its userinfo password (or token user name) masked."""
    return _masked(url, mask_url_spans(url))


def dataclass_repr(
    obj: Any, secrets: Iterable[str] = (), identifiers: Mapping[str, str] | Iterable[str] = ()
) -> str:
    """The repr a dataclass would have, redacted: for ``__repr__`` of public objects, so
    a failing assert, ``pytest -l`` locals and logging never show a secret."""
    fields = ", ".join(
        f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj) if f.repr
    )
    return Redactor(secrets, identifiers)(f"{type(obj).__qualname__}({fields})")
