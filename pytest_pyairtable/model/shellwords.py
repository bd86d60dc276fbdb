"""A ``command:`` or ``entrypoint:`` string split as compose splits it (go-shellwords).

Not POSIX ``shlex``: splitting stops at the first unquoted ``;``, ``&``, ``|``, ``<`` or
``>``, so ``echo a && b`` runs ``["echo", "a"]``, exactly what the container would get.
No variables or backticks are expanded; a stray ``(`` or an unclosed quote is an error.
"""

from __future__ import annotations

_SPACES = " \t\r\n"


def split(line: str) -> list[str]:  # noqa: PLR0912 - go-shellwords, branch for branch
    """Raise ValueError("invalid command line string") where go-shellwords does."""
    args: list[str] = []
    buf = ""
    escaped = double = single = back = dollar = False
    got = False  # an argument (possibly empty, from quotes) is being built
    for ch in line:
        if escaped:
            buf += ch
            escaped, got = False, True
            continue
        if ch == "\\":
            if single:
                buf += ch
            else:
                escaped = True
            continue
        if ch in _SPACES:
            if single or double or back or dollar:
                buf += ch
            elif got:
                args.append(buf)
                buf, got = "", False
            continue
        if ch == "`" and not (single or double or dollar):
            back = not back
        elif ch == ")" and not (single or double or back):
            dollar = not dollar
        elif ch == "(" and not (single or double or back):
            if dollar or not buf.endswith("$"):
                raise ValueError("invalid command line string")
            dollar = True
            buf += ch
            continue
        elif ch == '"' and not (single or dollar):
            got = got or double
            double = not double
            continue
        elif ch == "'" and not (double or dollar):
            got = got or single
            single = not single
            continue
        elif ch in ";&|<>" and not (single or double or back or dollar):
            if ch == ">" and buf[:1] and buf[0] in "0123456789":
                got = False  # `2>&1`: the descriptor is not an argument
            break
        got = True
        buf += ch
    if got:
        args.append(buf)
    if escaped or single or double or back or dollar:
        raise ValueError("invalid command line string")
    return args
