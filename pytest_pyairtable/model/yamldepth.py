"""How deep a YAML text nests, read from the text before libyaml sees it.

The refusal of deep nesting is ours whatever libyaml a PyYAML wheel bundles: 0.2.5 has
no limit (its composer recurses in C and crashes), 0.2.6 refuses 1,000 levels in its
own words, and its scanner reads up to 1,024 characters ahead of the events that
yamlshape.py counts, so on one line its limit speaks before our count of events does.
The levels are counted here as libyaml's scanner counts them: flow levels (``[``, ``{``)
plus block levels (its stack of indentation columns: pushed by ``-``, ``?`` and keys at
a deeper column, popped by a line indented less), never inside quoted, plain or block
scalars or comments. That is never more than libyaml's events nest (an indentless
sequence, ``key:`` then ``- x`` at the same column, is a level to the parser, not here),
so no file the event count accepts is refused; the event count catches what is left.

Linear: regular expressions read most lines whole, and jump over each scalar at once.
"""

from __future__ import annotations

import functools
import re

MAX_DEPTH = 100  # compose files nest under 15 levels; the walkers after us recurse per level

_BLANKS = re.compile(r"[ \t]*")
_SPACES = re.compile(r" *")
_WORD = re.compile(r"[^ \t\n]*")  # an anchor, a tag or an alias, in block context
_FLOW_WORD = re.compile(r"[^ \t\n,\[\]{}]*")  # the same, in flow context
# Where a plain scalar ends. In block context it keeps to its line (lines after it that
# are indented deeper continue it); in flow context it runs across lines, up to a flow
# indicator.
_BLOCK_PLAIN_END = re.compile(r":(?=[ \t\n]|\Z)|(?<=[ \t])#")
_FLOW_PLAIN_END = re.compile(r"[,\[\]{}]|:(?=[ \t\n,\[\]{}]|\Z)|(?<=[ \t\n])#")
# In flow context, what holds no level, at once: blanks, ',' and the indicators ':' and
# '?' (always indicators there), quoted scalars and plain ones (which may span lines).
_FLOW_RUN = re.compile(
    r"(?:[ \t\n,:?]+|'[^']*(?:''[^']*)*'|\"[^\"\\]*(?:\\[\s\S][^\"\\]*)*\""
    r"|[^\s\[\]{},:#?'\"&!*|>%@`-](?:[^\[\]{},:#]|:(?=[^\s\[\]{},])|(?<![ \t\n])#)*)*"
)
_SINGLE_QUOTED = re.compile(r"'[^']*(?:''[^']*)*'")
_DOUBLE_QUOTED = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_KEY_AFTER = re.compile(r"[ \t]*:(?=[ \t\n]|\Z)")  # after a quoted, alias or flow node
_BLOCK_SCALAR_HEADER = re.compile(r"[|>]([1-9]?)[+-]?([1-9]?)")
_DOCUMENT_MARKER = re.compile(r"(?:---|\.\.\.)(?=[ \t\n]|\Z)")
_LEADING_LINES = re.compile(r"(?:[ \t]*\n)* *")  # a block scalar's blank lines, first indent
_SPACE_RUNS = re.compile(r"(?:^|(?<=\n)) +")
_OTHER_BREAKS = "\r\x85\u2028\u2029"  # libyaml's line breaks besides \n
_HAS_OTHER_BREAK = re.compile(f"[{_OTHER_BREAKS}]")
_AS_NEWLINE = str.maketrans(dict.fromkeys(_OTHER_BREAKS, "\n"))

# Most lines of a compose file are read by one match: indentation, '- ' entries, a plain
# key, then a plain, quoted or alias value or a flow collection of scalars on one line, and
# a comment. The rest (anchors, quoted keys, nested flow, block scalars, ...) is read token
# by token. A plain scalar here holds no ': ' and no '#'. Each repetition below starts
# with a character the one before cannot hold: a failed match backtracks in linear time.
_PLAIN = r"(?:[^\s\-?:,\[\]{}#&*!|>'\"%@`]|[-?:][^\s,\[\]{}#])[^\n:#]*(?::[^\s:#][^\n:#]*)*"
_DQ = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_SQ = r"'[^'\n]*(?:''[^'\n]*)*'"
_FLAT = (  # no ': ' in a sequence: that is a mapping in it
    rf"\[[^\[\]{{}}'\"\n#:?]*(?:(?::[^\s,\[\]{{}}:#?'\"]|{_DQ}|{_SQ})[^\[\]{{}}'\"\n#:?]*)*\]"
    rf"|\{{[^\[\]{{}}'\"\n#]*(?:(?:{_DQ}|{_SQ})[^\[\]{{}}'\"\n#]*)*\}}"
)
_OTHER_VALUE = rf"(?:({_FLAT})|{_DQ}|{_SQ}|\*[^\s,\[\]{{}}]+|[&!]\S*)[ \t]*"  # 6 flow
_SIMPLE_LINE = re.compile(
    r"(?!(?:---|\.\.\.)(?:[ \t\n]|\Z))( *)((?:-(?: +|(?=\n|\Z)))*)"  # 1 indentation, 2 entries
    rf"(?:({_PLAIN}):(?:[ \t]+|(?=\n|\Z)))?"  # 3 a key
    rf"(({_PLAIN})|{_OTHER_VALUE})?"  # 4 a value, 5 a plain one
    r"(?:(?<![^ \t\n])(#)[^\n]*)?(?:\n|\Z)"  # 7 a comment (a plain value holds its blanks)
)
_SIMPLE_LENGTH = 400  # longer lines go token by token: a failed match backtracks over the line


def too_deep(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line (from 1) where ``text`` first nests deeper than ``limit``, else None."""
    scan = _Scan(text, limit)
    scan.run()
    return None if scan.over < 0 else scan.text.count("\n", 0, scan.over) + 1


def deepest(text: str) -> int:
    """How deep ``text`` nests, as counted here (for tests and measurements)."""
    scan = _Scan(text, 1 << 62)
    scan.run()
    return scan.deepest


def _skip(pattern: re.Pattern[str], text: str, pos: int, end: int) -> int:
    """Where ``pattern`` (which may match nothing) stops, from ``pos``."""
    found = pattern.match(text, pos, end)
    return pos if found is None else found.end()


@functools.lru_cache(maxsize=64)
def _block_scalar_lines(indent: int) -> re.Pattern[str]:
    """The lines of a block scalar: indented ``indent`` spaces or more, or blank."""
    return re.compile(rf"(?:(?: {{{indent}}}[^\n]*|[ \t]*)(?:\n|\Z))*")


class _Scan:
    def __init__(self, text: str, limit: int) -> None:
        # libyaml reads \r\n, \r, NEL, LS and PS as line breaks too (a block scalar's line
        # may start after an LS): one \n each keeps the columns and the line numbers
        if _HAS_OTHER_BREAK.search(text):
            text = text.replace("\r\n", "\n").translate(_AS_NEWLINE)
        self.text = text
        self.limit = limit
        self.indents: list[int] = []  # libyaml's block indentation columns
        self.flow = 0
        self.deepest = 0
        self.over = -1  # where the depth first went over the limit
        self.plain = -1  # a plain scalar ended its line: lines indented this deep continue it

    def deeper(self, at: int) -> bool:
        depth = len(self.indents) + self.flow
        if depth > self.deepest:
            self.deepest = depth
            if depth > self.limit:
                self.over = at
                return True
        return False

    def push(self, column: int, at: int) -> bool:
        """A block collection at ``column``, if deeper than the last (libyaml's roll)."""
        indents = self.indents
        if indents and indents[-1] >= column:
            return False
        indents.append(column)
        return self.deeper(at)

    def run(self) -> None:
        text, end = self.text, len(self.text)
        simple, simple_line = _SIMPLE_LINE.match, self.simple_line
        pos = 1 if text.startswith("\ufeff") else 0
        while pos < end and self.over < 0:
            line = simple(text, pos, pos + _SIMPLE_LENGTH)
            after = line.end() if line else -1
            if after < 0 or (after < end and text[after - 1] != "\n"):
                pos = self.line(pos)  # not simple, or longer than the match may look
            else:
                simple_line(line.regs, pos)  # type: ignore[union-attr]
                pos = after

    def simple_line(self, groups: tuple[tuple[int, int], ...], start: int) -> None:
        """What a line read by ``_SIMPLE_LINE`` opens, from its groups' spans."""
        _, (_, indented), (_, entries), (key, _), (value, _), (plain, _), (flow, _), (hash_, _) = (
            groups
        )
        column = indented - start
        if entries == indented and key < 0 and value < 0:
            if hash_ >= 0:  # a comment line ends a plain scalar; a blank line does not
                self.plain = -1
            return
        if 0 <= self.plain <= column:  # the plain scalar before goes on
            if hash_ >= 0:
                self.plain = -1
            return
        self.plain = -1
        indents = self.indents
        while indents and indents[-1] > column:
            indents.pop()
        for at in range(indented, entries):
            if self.text[at] == "-" and self.push(at - start, at):
                return
        if key >= 0 and self.push(key - start, key):
            return
        if flow >= 0:  # a flow collection of scalars: one level more
            self.flow = 1
            self.deeper(flow)
            self.flow = 0
        elif plain >= 0 and hash_ < 0:
            self.plain = (indents[-1] if indents else -1) + 1

    def line(self, start: int) -> int:
        """Reads the line at ``start`` in block context; returns where the next one starts."""
        text = self.text
        eol = text.find("\n", start)
        eol = len(text) if eol < 0 else eol
        pos = _skip(_SPACES, text, start, eol)
        if _skip(_BLANKS, text, pos, eol) == eol:
            return eol + 1
        column = pos - start
        if text[pos] == "#":
            self.plain = -1
            return eol + 1
        marker = _DOCUMENT_MARKER.match(text, pos) if column == 0 else None
        if 0 <= self.plain <= column and not marker:  # the plain scalar before goes on
            if _BLOCK_PLAIN_END.search(text, pos, eol):  # until a comment (or an error)
                self.plain = -1
            return eol + 1
        self.plain = -1
        if column == 0:
            if text[pos] == "%":  # a directive
                return eol + 1
            if marker:  # a new document: its levels start again
                self.indents.clear()
                if text[pos] == ".":
                    return eol + 1
                pos = marker.end()
        while self.indents and self.indents[-1] > column:
            self.indents.pop()
        return self.node(pos, start, eol)

    def node(self, pos: int, start: int, eol: int) -> int:  # noqa: PLR0911, PLR0912
        """Reads block-context tokens from ``pos`` to the line's end ``eol``."""
        text = self.text
        props = -1  # where the node's anchor or tag starts: a key's column is theirs
        keyed = False  # after a key only its value: a second key or entry is libyaml's error
        while True:
            pos = _skip(_BLANKS, text, pos, eol)
            if pos >= eol:
                return eol + 1
            char = text[pos]
            if char == "#":
                return eol + 1
            at = pos if props < 0 else props
            if char in "-?:" and (pos + 1 == eol or text[pos + 1] in " \t"):
                if keyed:
                    return eol + 1
                # ':' too: a value after no key (or after a bare anchor) opens a mapping
                if self.push((at if char == ":" else pos) - start, pos):
                    return eol + 1
                props = -1
                pos += 1
                continue
            if char in "&!":  # an anchor or a tag before the node
                props = at
                pos = _skip(_WORD, text, pos, eol)
                continue
            props = -1
            if char in "[{":
                after = self.flow_collection(pos)
                if after < 0:
                    return len(text)
                if after > eol:  # a key cannot span lines: what follows is no new level
                    eol = text.find("\n", after)
                    return len(text) if eol < 0 else eol + 1
            elif char in "|>":
                return self.block_scalar(pos, eol)
            elif char in "'\"":
                quoted = (_SINGLE_QUOTED if char == "'" else _DOUBLE_QUOTED).match(text, pos)
                if quoted is None:  # unclosed: the parser says so
                    return len(text)
                after = quoted.end()
                if after > eol:
                    eol = text.find("\n", after)
                    return len(text) if eol < 0 else eol + 1
            elif char == "*":  # an alias
                after = _skip(_WORD, text, pos, eol)
            else:  # a plain scalar: a key if ': ' ends it on this line
                found = _BLOCK_PLAIN_END.search(text, pos, eol)
                if found is not None and text[found.start()] == "#":  # a comment ends it
                    return eol + 1
                if found is None or keyed:
                    self.plain = (self.indents[-1] if self.indents else -1) + 1
                    return eol + 1
                after = found.start()
            key = _KEY_AFTER.match(text, after, eol)
            if key is None or keyed:
                return eol + 1
            if self.push(at - start, pos):
                return eol + 1
            keyed = True
            pos = key.end()

    def block_scalar(self, pos: int, eol: int) -> int:
        """Past a ``|`` or ``>`` scalar: lines indented as its first line, or blank."""
        text = self.text
        header = _BLOCK_SCALAR_HEADER.match(text, pos)
        parent = self.indents[-1] if self.indents else -1
        given = int(header.group(1) or header.group(2) or 0) if header else 0
        pos = eol + 1
        if given:
            indent = max(parent, 0) + given
        else:  # libyaml's rule: the deepest of the leading blank lines and the first line
            leading = text[pos : _skip(_LEADING_LINES, text, pos, len(text))]
            widest = max(map(len, _SPACE_RUNS.findall(leading)), default=0)
            indent = max(widest, parent + 1, 1)
        return _skip(_block_scalar_lines(indent), text, pos, len(text))

    def flow_collection(self, pos: int) -> int:
        """Past the flow collection opening at ``pos``; -1 when it nests too deep."""
        text = self.text
        end = len(text)
        while pos < end:
            pos = _skip(_FLOW_RUN, text, pos, end)
            if pos >= end:
                break
            char = text[pos]
            if char in "[{":
                self.flow += 1
                if self.deeper(pos):
                    return -1
                pos += 1
            elif char in "]}":
                self.flow -= 1
                pos += 1
                if self.flow == 0:
                    return pos
            elif char == "#":
                eol = text.find("\n", pos)
                pos = end if eol < 0 else eol
            elif char in "'\"":  # not closed: the parser says so
                return end
            elif char in "&!*":
                pos = _skip(_FLOW_WORD, text, pos, end)
            else:  # a plain scalar, over lines if need be
                found = _FLOW_PLAIN_END.search(text, pos + 1)
                pos = end if found is None else found.start()
        return end
