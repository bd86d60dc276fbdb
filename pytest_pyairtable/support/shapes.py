"""Where a secret stands in text, found without knowing its value: the shapes of a
secret (the table in docs/reference.md lists each, with the test that checks it).

Each shape reads the text as given and returns spans (start, end) of values to mask;
``redact.py`` merges them with the known values' spans. Every pattern is one linear
pass: no alternation inside a repeated group, no backtracking over a value (a service
may print anything, and masking its log must never hang).
"""

from __future__ import annotations

import bisect
import re

Span = tuple[int, int]

_MARKERS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "WEBHOOK")
# Words that name a secret only as a word of their own: DB_PASS, REDIS_AUTH, MYSQL_PWD,
# SENTRY_DSN, a query's sig=; PWD alone is the shell's working directory.
_WORDS = re.compile(r"(?:^|[^A-Z0-9])(?:PASS|AUTH|PW|PWD|DSN|SIG)(?:[^A-Z0-9]|$)")
# The name of where a secret is kept holds a path or a name, not the secret
# (POSTGRES_PASSWORD_FILE, --password-file, SSL_KEY_PATH).
_NOT_A_VALUE = re.compile(r"[_.-](?:FILE|FILES|FILENAME|PATH|DIR)$")
# A lower-case key on a line of its own (`password: x` in a log) names a secret only by
# a marker that ordinary prose does not use (`primary key: id` is not one).
_STRICT = re.compile(
    r"pass(?:word|wd|phrase)|secret|token|credential|(?:^|[^a-z0-9])(?:pass|pwd|pw|auth)$"
    r"|(?:api|private|secret|access|signing|encryption|master)[_.-]?key"
)


def is_secret_name(name: str) -> bool:
    """Whether a variable, key or flag with this name holds a secret."""
    upper = name.upper()
    if upper == "PWD" or _NOT_A_VALUE.search(upper):
        return False
    return any(m in upper for m in _MARKERS) or bool(_WORDS.search(upper))


def _strict_secret_name(name: str) -> bool:
    return bool(_STRICT.search(name.lower()))


# -- URLs -------------------------------------------------------------------------------

_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)([^\s/?#\"'<>]*)@")
# A userinfo that pytest's truncation cut before its @: `redis://:hun...0.0.1:6379`.
_URL_CUT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#\"'<>@:]*:([^\s/?#\"'<>@]*)")
_URL = re.compile(r"\bhttps?://[^\s'\"<>()\[\]{}]+", re.I)


def looks_like_token(text: str) -> bool:
    """A user name that is really a key (Sentry's DSN, a token in a clone URL): long,
    letters and digits mixed; a person's or a role's name is neither."""
    return (
        len(text) >= 16
        and any(c.isdigit() for c in text)
        and any(c.isalpha() for c in text)
        and "." not in text
    )


def userinfo_spans(text: str) -> list[Span]:
    """A URL's password (``postgresql://app:***@db``), or its user name where that is
    a token (``https://***@o0.ingest.sentry.io/1``)."""
    spans = []
    for match in _URL_USERINFO.finditer(text):
        user, sep, password = match.group(2).partition(":")
        if sep and password:
            spans.append((match.start(2) + len(user) + 1, match.end(2)))
        if looks_like_token(user):
            spans.append((match.start(2), match.start(2) + len(user)))
    return spans


def cut_userinfo_spans(text: str) -> list[Span]:
    """The start of a password that a truncation (``...``) cut off before its ``@``."""
    spans = []
    for match in _URL_CUT.finditer(text):
        cut = match.group(1).find("...")
        fragment = match.group(1)[:cut]
        if cut > 0 and not fragment.isdigit():
            spans.append((match.start(1), match.start(1) + cut))
    return spans


def webhook_spans(text: str) -> list[Span]:
    """A webhook URL's secret, which sits in its path (Slack, Discord, Teams): its last
    segment, and every segment that looks like a token."""
    spans = []
    for match in _URL.finditer(text):
        url = match.group(0)
        if "hook" not in url.lower():
            continue
        path_at = url.find("/", url.find("//") + 2)
        if path_at < 0:
            continue
        end = min((i for i in (url.find("?", path_at), url.find("#", path_at)) if i >= 0),
                  default=len(url))  # fmt: skip
        pos = match.start() + path_at + 1
        segments = url[path_at + 1 : end].split("/")
        last = max((n for n, segment in enumerate(segments) if segment), default=-1)
        for n, segment in enumerate(segments):
            if (n == last and len(segment) >= 8) or looks_like_token(segment):
                spans.append((pos, pos + len(segment)))
            pos += len(segment) + 1
    return spans


def mask_url_spans(url: str) -> list[Span]:
    return userinfo_spans(url) if "@" in url else []


# -- flags ------------------------------------------------------------------------------

# A flag is one greedy run of name characters (no alternation inside it: "--token" a
# hundred thousand times over must not backtrack), judged by _secret_flag afterwards.
_FLAG = re.compile(
    r"(?<![\w-])(--?[A-Za-z0-9][\w.-]*)(\s*=\s*|\s+|['\"],\s*['\"])(?!-)([^\s'\",]+)"
)
_FLAG_MARKERS = ("pass", "secret", "token", "key", "credential")
# mysql's and mariadb's clients take the password glued to -p (`mysqladmin -uroot -pX`);
# elsewhere -p glued to a word is a port or bundled short options (`cp -pR`).
_GLUED_P = re.compile(r"(?<![\w-])-p([^\s'\",;&|)]+)")
_MYSQL = re.compile(r"\b(?:mysql|mariadb)[\w-]*", re.I)


def _secret_flag(flag: str) -> bool:
    name = flag.lstrip("-").lower()
    if _NOT_A_VALUE.search(name.upper()):
        return False
    return any(m in name for m in _FLAG_MARKERS) or name.endswith("auth")


def flag_spans(text: str) -> list[Span]:
    """The value after a secret flag: ``--password x``, ``--token=x``, ``('--api-key', 'x')``."""
    return [m.span(3) for m in _FLAG.finditer(text) if _secret_flag(m.group(1))]


def glued_password_spans(text: str) -> list[Span]:
    """``-pSECRET`` on a line that runs a mysql or mariadb client."""
    if "-p" not in text:
        return []
    clients = [m.start() for m in _MYSQL.finditer(text)]
    if not clients:
        return []
    breaks = [m.start() for m in re.finditer("\n", text)]
    spans = []
    for match in _GLUED_P.finditer(text):
        n = bisect.bisect_left(clients, match.start()) - 1
        if n < 0:
            continue
        line = bisect.bisect_left(breaks, match.start())
        line_start = breaks[line - 1] if line else -1
        if clients[n] > line_start and not match.group(1).isdigit():
            spans.append(match.span(1))
    return spans


# -- key and value ----------------------------------------------------------------------

# Keys, each up to where its value starts; the value is read only after a secret key.
_PAIR_KEY = re.compile(r"(?<![\w.-])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?=[^\s&;,])")
_PAIR_VALUE = re.compile(r"[^\s&;'\",]+")
_QUOTED_KEY = re.compile(r"(['\"])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)\1\s*:\s*(?=['\"])")
# A backslash is read only as an escape, so an unclosed value is one linear scan.
_QUOTED_VALUE = re.compile(r"(['\"])((?:\\.|(?!\1)[^\\\n])*)\1")
_LINE_KEY = re.compile(r"(?<![\w.-])(?P<name>[A-Za-z][A-Za-z0-9_-]*):[ \t]+(?![\[{])(?=\S)")
_LINE_VALUE = re.compile(r"[^\n]*")
# A value that only names another (`PASS="$(cat /run/secrets/x)"`, `${DB_PASSWORD}`)
# is code, not a secret: it stays as written.
_REFERENCE = re.compile(r"\$\$?(?:\(|\{|[A-Z_][A-Z0-9_]*(?![^\s&;'\",]))")
_AUTHORIZATION = re.compile(
    r"(?i)(?<![\w-])(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?"
    r"(?:(?:bearer|basic|token|digest|bot|apikey|key)[ \t]+)?(?P<value>[^\s'\",]+)"
)


def pair_spans(text: str) -> list[Span]:
    """``DB_PASSWORD=x``, libpq's ``password=x``, a query's ``token=x``; a quoted value
    (``password='x'``, a repr's keyword) is masked inside its quotes."""
    spans: list[Span] = []
    covered = 0
    for key in _PAIR_KEY.finditer(text):
        if key.start() < covered or not is_secret_name(key.group("name")):
            continue  # inside a secret value found already (each read once: linear)
        at = key.end()
        if _REFERENCE.match(text, at):
            continue
        quoted = _QUOTED_VALUE.match(text, at) if text[at] in "'\"" else None
        if quoted is not None:
            span, covered = quoted.span(2), quoted.end()
            if _REFERENCE.match(text, span[0]):
                continue
        else:  # bare, or a quote a truncation left open
            bare = _PAIR_VALUE.match(text, at + (text[at] in "'\""))
            if bare is None:
                continue
            span, covered = bare.span(), bare.end()
        if span[1] > span[0]:
            spans.append(span)
    return spans


def quoted_pair_spans(text: str) -> list[Span]:
    """``'JWT_SECRET': 'x'`` (a dict's repr, JSON)."""
    return _value_spans(text, _QUOTED_KEY, _QUOTED_VALUE, group=2)


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
            continue
        found = value.match(text, key.end())
        if found is not None and not _REFERENCE.match(text, found.start(group)):
            spans.append(found.span(group))
            covered = found.end()
    return spans


def line_spans(text: str) -> list[Span]:
    """``POSTGRES_PASSWORD: x`` (YAML, a log line; ``password: x`` in lower case too):
    the rest of the line, or of the quoted string the key stands in (a curl header
    ``-H 'X-Api-Key: x' http://...`` keeps its URL)."""
    spans: list[Span] = []
    covered = scanned = 0
    opened = {"'": 0, '"': 0}  # quotes seen on the current line before the key
    for key in _LINE_KEY.finditer(text):
        name = key.group("name")
        if key.start() < covered:
            continue
        if not (_strict_secret_name(name) or (name.isupper() and is_secret_name(name))):
            continue
        newline = text.rfind("\n", scanned, key.start())  # each character read once
        if newline >= 0:
            scanned, opened = newline + 1, {"'": 0, '"': 0}
        for quote in opened:
            opened[quote] += text.count(quote, scanned, key.start())
        scanned = key.start()
        if _REFERENCE.match(text, key.end()):
            continue
        value = _LINE_VALUE.match(text, key.end())
        assert value is not None
        end = value.end()
        for quote, count in opened.items():
            closing = text.find(quote, key.end(), end) if count % 2 else -1
            end = closing if closing >= 0 else end
        if end > key.end():
            spans.append((key.end(), end))
            covered = end
    return spans


def authorization_spans(text: str) -> list[Span]:
    """``Authorization: Bearer x`` (a header, a curl ``-H``), ``'Authorization': 'Basic x'``."""
    return [m.span("value") for m in _AUTHORIZATION.finditer(text)]


def pattern_spans(text: str) -> list[Span]:
    """Every shape's spans; each shape reads the text as given, not another's masks (a
    mask could hide the key that makes the rest a secret)."""
    spans: list[Span] = []
    if "@" in text:
        spans += userinfo_spans(text)
    if "://" in text:
        spans += cut_userinfo_spans(text) if "..." in text else []
        spans += webhook_spans(text)
    if "-" in text:
        spans += flag_spans(text)
        spans += glued_password_spans(text)
    if "=" in text:
        spans += pair_spans(text)
    if ":" in text:
        spans += quoted_pair_spans(text)
        spans += line_spans(text)
    if ":" in text or "=" in text:
        spans += authorization_spans(text)
    return spans
