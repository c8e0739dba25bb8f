"""A small tokenizer of spec text, independent of the grammar: statement boundaries for the
parser's error recovery, and the context of a syntax error (the token before it, the brackets
still open)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class _Tok:
    kind: str  # name | number | string | pipe | punct
    text: str
    offset: int
    line: int
    column: int

    @property
    def end(self) -> int:
        return self.offset + len(self.text)


_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<comment>\#[^\n]*)|(?P<string>"([^"\\\n]|\\.)*"?)|(?P<pipe>\|>)
    |(?P<number>-?(\d+(\.\d+)?|\.\d+)([eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*)|(?P<punct>.)""",
    re.X | re.S,
)


def _tokenize(text: str) -> list[_Tok]:
    out = []
    line, line_start = 1, 0
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "punct"
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, m.group(), m.start(), line, m.start() - line_start + 1))
        newlines = m.group().count("\n")
        if newlines:
            line += newlines
            line_start = m.start() + m.group().rfind("\n") + 1
    return out


_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_STATEMENT_WORDS = ("data", "train", "eval")


def _indent(text: str, offset: int) -> int:
    start = text.rfind("\n", 0, offset) + 1
    return offset - start


def _statement_starts(text: str, toks: list[_Tok]) -> list[int]:
    """Offsets where statements probably start, for recovery after a syntax error.

    A keyword followed by a name (``train m on d``, ``data x = ...``), ``output {``, or a name
    followed by ``=`` that opens a line outside any bracket. An unclosed ``(`` or ``[`` does not
    hide a following ``name =`` line indented no deeper than its statement.
    """
    starts = [0]
    stack: list[str] = []
    stmt_indent = 0
    for i, tok in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        first_on_line = i == 0 or toks[i - 1].line != tok.line
        start = False
        if tok.kind == "name" and nxt is not None:
            if tok.text in _STATEMENT_WORDS and nxt.kind == "name":
                start = True
            elif tok.text == "output" and nxt.text == "{":
                start = True
            elif first_on_line and nxt.text == "=":
                indent = _indent(text, tok.offset)
                start = not stack or ("{" not in stack and indent <= stmt_indent)
        if start and i > 0:
            starts.append(tok.offset)
        if start:
            stack.clear()
            stmt_indent = _indent(text, tok.offset)
        if tok.text in _OPEN:
            stack.append(tok.text)
        elif tok.text in _CLOSE and stack and stack[-1] == _CLOSE[tok.text]:
            stack.pop()
    return starts


