"""Spec text -> AST (``syntax``). The only module that imports lark.

Lark's LALR parser builds a parse tree with positions; ``_ToAst`` turns it into frozen syntax
nodes with spans. Lark's errors are translated here, at one boundary, into ``ParseError``
diagnostics that name the slip (a missing ``|>``, an unclosed ``(``, ``:`` for ``=``) and say how
to fix it. After a syntax error the parser recovers at the next statement and reports the first
error of each statement.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from .. import limits
from ..errors import Diagnostic, Span, SpecError, normalize_source
from . import syntax as S
from .tokens import _CLOSE, _OPEN, _statement_starts, _Tok, _tokenize

# ---------------------------------------------------------------------------------------------
# Loading the grammar


def grammar_text() -> str:
    """The grammar: ``rnndsl/grammars/rnn.lark`` in an installed wheel, else the checkout's
    top-level ``grammars/rnn.lark``."""
    for package, parts in (
        ("rnndsl.grammars", ("rnn.lark",)),
        ("rnndsl", ("grammars", "rnn.lark")),
    ):
        try:
            resource = importlib.resources.files(package)
            for part in parts:
                resource = resource / part
            if resource.is_file():
                return resource.read_text(encoding="utf-8")
        except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
            continue
    return (Path(__file__).resolve().parents[2] / "grammars" / "rnn.lark").read_text("utf-8")


@functools.cache
def _lark() -> lark.Lark:
    return lark.Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        start=["start", "pipeline"],
    )


# ---------------------------------------------------------------------------------------------
# Parse tree -> AST


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: m.group(1) if m.group(1) in '"\\' else m.group(0), body)


@v_args(meta=True)
class _ToAst(Transformer):
    """One method per grammar rule; a rule without one raises instead of leaking a lark.Tree."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def __default__(self, data, children, meta):
        raise AssertionError(f"no AST rule for grammar rule {data!r}")

    def _span(self, meta) -> Span:
        return Span(meta.line, meta.column, meta.end_line, meta.end_column, self.path)

    def _tok_span(self, tok: Token) -> Span:
        return Span(tok.line, tok.column, tok.end_line, tok.end_column, self.path)

    def start(self, meta, children):
        return tuple(c for c in children if not isinstance(c, Token))

    def pipeline(self, meta, children):
        return children[0]

    def data_stmt(self, meta, children):
        name, reader = children
        return S.DataStmt(name, reader, self._span(meta))

    def definition(self, meta, children):
        name, value = children
        return S.Definition(name, value, self._span(meta))

    def train_stmt(self, meta, children):
        model, data, settings = children
        return S.TrainStmt(model, data, settings, self._span(meta))

    def eval_stmt(self, meta, children):
        model, data, settings = children
        return S.EvalStmt(model, data, settings, self._span(meta))

    def output_stmt(self, meta, children):
        return S.OutputStmt(children[0], self._span(meta))

    def block(self, meta, children):
        return tuple(c for c in children if isinstance(c, S.Setting))

    def setting(self, meta, children):
        key, value = children
        return S.Setting(key, value, self._span(meta))

    def pipe(self, meta, children):
        return S.Pipe(tuple(children), self._span(meta))

    def call(self, meta, children):
        func, *args = children
        return S.Call(func, tuple(args), self._span(meta))

    def keyword_argument(self, meta, children):
        name, value = children
        return S.Arg(name, value, self._span(meta))

    def positional_argument(self, meta, children):
        return S.Arg(None, children[0], self._span(meta))

    def list(self, meta, children):
        return S.ListExpr(tuple(children), self._span(meta))

    def ref(self, meta, children):
        return S.Ref(tuple(children), self._span(meta))

    def ident(self, meta, children):
        (tok,) = children
        return S.Ident(str(tok), self._tok_span(tok))

    def string(self, meta, children):
        (tok,) = children
        return S.Str(_unescape(str(tok)[1:-1]), self._tok_span(tok))

    def number(self, meta, children):
        (tok,) = children
        text = str(tok)
        if len(text) > limits.MAX_NUMBER_CHARS:  # int() refuses past 4,300 digits anyway
            message = limits.over(
                "the length of this number", len(text), limits.MAX_NUMBER_CHARS, "MAX_NUMBER_CHARS"
            )
            hint = "write large or small numbers with an exponent, e.g. 1e6"
            raise SpecError([Diagnostic("ParseError", message, self._tok_span(tok), hint)])
        value: int | float = int(text) if re.fullmatch(r"-?\d+", text) else float(text)
        return S.Num(value, self._tok_span(tok))

    def true(self, meta, children):
        return S.Bool(True, self._span(meta))

    def false(self, meta, children):
        return S.Bool(False, self._span(meta))


# ---------------------------------------------------------------------------------------------
# Syntax errors a person can act on

_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "_PIPE": "'|>'",
    "$END": "the end of the input",
}

# Common slips, as examples of the error they cause (the idea of lark's match_examples). Lark's
# own match_examples compares whole parser states, stack depth included, so the same slip one
# bracket deeper would not match; we key on the LALR state and lookahead instead.
_SLIPS: dict[str, tuple[tuple[str, str], ...]] = {
    "after_name": (("start", "x = a b(d=1)"), ("start", "x = a b |> c"), ("start", "x = a b")),
    "missing_comma": (
        ("start", "x = f(a=1 b=2)"),
        ("start", "x = f(1 2)"),
        ("start", "x = f(a b)"),
        ("start", 'x = f(a="x" b=2)'),
        ("start", "x = f(g(1) b=2)"),
        ("pipeline", "f(a=1 b=2)"),
        ("pipeline", "f(1 2)"),
    ),
    "list_comma": (("start", "x = [a b]"), ("start", "x = [1 2]"), ("start", 'x = ["a" "b"]')),
    "missing_value": (("start", "x = f(d=)"), ("start", "x = f(d=, e=1)")),
    "setting_value": (("start", "train m on d { batch = }"), ("start", "output { dir = ; }")),
    "missing_stage": (
        ("start", "x = a |> )"),
        ("start", "x = a |>"),
        ("start", "x = a |> |> b"),
        ("pipeline", "a |>"),
    ),
    "statement_value": (("start", "x = "), ("start", "x = )"), ("start", "x = |> a")),
    "keyword_name": (
        ("start", "train = a"),
        ("start", "data = a"),
        ("start", "eval = a"),
        ("start", "train m on = a"),
    ),
    "output_block": (("start", "output = a"), ("start", "output dir")),
    "missing_block": (("start", "train m on d epochs = 3"), ("start", "eval m on d metrics")),
    "missing_on": (("start", "train m d {}"), ("start", "train m with d {}")),
    "setting_eq": (("start", "train m on d { epochs 3 }"), ("start", "output { dir }")),
    "setting_end": (("start", "train m on d { epochs = 3 batch = 2 )"),),
}


@functools.cache
def _slip_table() -> dict[tuple, str]:
    table: dict[tuple, str] = {}
    for label, examples in _SLIPS.items():
        for start, text in examples:
            try:
                _lark().parse(text, start=start)
            except UnexpectedToken as e:
                keys = (
                    (e.state.position, frozenset(e.accepts), e.token.type),
                    (e.state.position, frozenset(e.accepts)),
                )
                for key in keys:
                    table.setdefault(key, label)
            else:  # pragma: no cover - an example that parses is a bug in the table
                raise AssertionError(f"slip example parses: {text!r}")
    return table


def _slip(e: UnexpectedToken) -> str | None:
    table = _slip_table()
    accepts = frozenset(e.accepts or e.expected)
    exact = table.get((e.state.position, accepts, e.token.type))
    return exact or table.get((e.state.position, accepts))


def _expected(names: set[str] | frozenset[str]) -> str:
    words = sorted({_TERMINAL_WORDS.get(n, _literal(n)) for n in names if not n.startswith("__")})
    if not words:
        return ""
    if len(words) > 6:
        words = words[:6] + ["..."]
    return "expected " + ", ".join(words)


def _literal(terminal: str) -> str:
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else terminal.lower()


def _describe(tok: _Tok | None) -> str:
    if tok is None:
        return "the end of the input"
    if tok.kind == "name":
        return f"'{tok.text}'"
    if tok.kind == "number":
        return f"the number {tok.text}"
    if tok.kind == "string":
        return f"the string {tok.text}"
    return f"'{tok.text}'"


@dataclass
class _Context:
    """Where a syntax error happened, in terms of our own tokens."""

    text: str
    toks: list[_Tok]  # the chunk's tokens
    index: int  # index of the offending token in toks; len(toks) at the end of the input
    path: str
    next_line: int | None = None  # where the next statement starts, when this is not the last

    @property
    def tok(self) -> _Tok | None:
        return self.toks[self.index] if self.index < len(self.toks) else None

    def describe(self, tok: _Tok | None) -> str:
        if tok is None and self.next_line is not None:
            return f"the start of the next statement (line {self.next_line})"
        return _describe(tok)

    def before(self, k: int = 1) -> _Tok | None:
        i = self.index - k
        return self.toks[i] if 0 <= i < len(self.toks) else None

    def span(self, tok: _Tok | None) -> Span:
        if tok is None:  # just after the last token
            last = self.toks[-1] if self.toks else None
            if last is None:
                return Span(1, 1, 1, 2, self.path)
            end_line = last.line + last.text.count("\n")
            col = (
                last.column + len(last.text)
                if "\n" not in last.text
                else len(last.text) - last.text.rfind("\n")
            )
            return Span(end_line, col, end_line, col + 1, self.path)
        return Span(tok.line, tok.column, tok.line, tok.column + len(tok.text), self.path)

    def open_brackets(self) -> list[_Tok]:
        stack: list[_Tok] = []
        for tok in self.toks[: self.index]:
            if tok.text in _OPEN:
                stack.append(tok)
            elif tok.text in _CLOSE and stack and stack[-1].text == _CLOSE[tok.text]:
                stack.pop()
        return stack


def _error(ctx: _Context, message: str, tok: _Tok | None, hint: str | None) -> Diagnostic:
    return Diagnostic("ParseError", message, ctx.span(tok), hint)


def _bracket_error(ctx: _Context, accepts: frozenset[str]) -> Diagnostic | None:
    """An unclosed bracket, when the error comes at the end, or on a later line where the
    closing bracket would fit; a stray or mismatched closing bracket."""
    tok = ctx.tok
    opened = ctx.open_brackets()
    if tok is not None and tok.text in _CLOSE:
        if not opened:
            return _error(ctx, f"'{tok.text}' closes nothing", tok, "remove it")
        top = opened[-1]
        if _OPEN[top.text] != tok.text:
            return _error(
                ctx,
                f"'{tok.text}' does not match the '{top.text}' at line {top.line}, "
                f"column {top.column}",
                tok,
                f"close it with '{_OPEN[top.text]}'",
            )
    closer = {"(": "RPAR", "[": "RSQB", "{": "RBRACE"}
    if opened and (
        tok is None or (tok.line > opened[-1].line and closer[opened[-1].text] in accepts)
    ):
        top = opened[-1]
        at = ctx.describe(tok) + (f" on line {tok.line}" if tok is not None else "")
        return _error(
            ctx,
            f"'{top.text}' is not closed",
            top,
            f"add '{_OPEN[top.text]}' before {at}",
        )
    return None


def _token_error(e: UnexpectedToken, ctx: _Context) -> Diagnostic:
    accepts = frozenset(e.accepts or e.expected)
    bracket = _bracket_error(ctx, accepts)
    if bracket is not None:
        return bracket
    tok, prev = ctx.tok, ctx.before()
    slip = _slip(e)
    expected = _expected(accepts)
    if slip == "after_name" and prev is not None:
        before = ctx.before(2)
        first_on_line = before is None or before.line != prev.line
        continues = tok is not None and tok.text in ("(", "|>")
        if (
            before is not None
            and before.text not in (";", "}")
            and (continues or not first_on_line)
        ):
            return _error(
                ctx,
                f"missing '|>' before '{prev.text}'",
                prev,
                f"join pipeline stages with '|>': ... |> {prev.text}"
                + ("(...)" if tok is not None and tok.text == "(" else ""),
            )
        return _error(
            ctx,
            f"expected '=' after '{prev.text}', found {ctx.describe(tok)}",
            tok,
            f"a definition reads `{prev.text} = pipeline`",
        )
    if slip == "missing_comma":
        return _error(
            ctx, f"missing ',' before {ctx.describe(tok)}", tok, "separate arguments with ','"
        )
    if slip == "list_comma":
        return _error(
            ctx, f"missing ',' before {ctx.describe(tok)}", tok, "separate items with ','"
        )
    if slip == "missing_value" and prev is not None:
        name = ctx.before(2)
        what = f"'{name.text}='" if name is not None else "'='"
        return _error(ctx, f"missing value after {what}", prev, "give a value, e.g. d=64")
    if slip == "setting_value" and prev is not None:
        key = ctx.before(2)
        what = f"'{key.text} ='" if key is not None else "'='"
        return _error(ctx, f"missing value after {what}", prev, "give a value, e.g. batch = 32")
    if slip == "missing_stage":
        pipe = prev if prev is not None and prev.text == "|>" else None
        return _error(
            ctx,
            f"missing stage after '|>', found {ctx.describe(tok)}",
            pipe or tok,
            "every '|>' needs a stage after it: a layer, a definition or a data field",
        )
    if slip == "statement_value":
        return _error(
            ctx,
            f"missing value after '=', found {ctx.describe(tok)}",
            tok,
            "a definition reads `name = pipeline`, e.g. tagger = embed(ewt.words, d=100)",
        )
    if slip == "keyword_name" and prev is not None:
        return _error(
            ctx,
            f"'{prev.text}' is a keyword and cannot name a definition",
            prev,
            f"choose another name, e.g. {prev.text}_1; keywords: data, train, eval, output, on",
        )
    if slip == "output_block":
        return _error(
            ctx,
            f"expected '{{' after 'output', found {ctx.describe(tok)}",
            tok,
            'write output { dir = "runs/x" }',
        )
    if slip == "missing_block":
        return _error(
            ctx,
            f"expected '{{' after the dataset name, found {ctx.describe(tok)}",
            tok,
            "settings go in braces: train tagger on ewt { epochs = 3 }",
        )
    if slip == "missing_on":
        return _error(
            ctx,
            f"expected 'on' after the model name, found {ctx.describe(tok)}",
            tok,
            "write train MODEL on DATA { ... }",
        )
    if slip == "setting_eq" and prev is not None:
        return _error(
            ctx,
            f"expected '=' after '{prev.text}', found {ctx.describe(tok)}",
            tok,
            f"settings read `key = value`, e.g. {prev.text} = ...",
        )
    if tok is not None and tok.text == "=" and prev is not None and prev.kind == "name":
        before = ctx.before(2)
        if before is not None and before.text == "|>":
            return _error(
                ctx,
                "missing stage after '|>'",
                before,
                f"remove the '|>' or add a stage after it; '{prev.text} =' starts a new statement",
            )
    return _error(ctx, f"unexpected {ctx.describe(tok)}", tok, expected or None)


def _char_error(e: UnexpectedCharacters, ctx: _Context) -> Diagnostic:
    ch = ctx.text[e.pos_in_stream] if e.pos_in_stream < len(ctx.text) else ""
    nxt = ctx.text[e.pos_in_stream + 1 : e.pos_in_stream + 2]
    span = Span(e.line, e.column, e.line, e.column + 1, ctx.path)
    if ch == ":":
        return Diagnostic(
            "ParseError",
            "':' where '=' belongs",
            span,
            "write key = value in blocks and name=value in calls, e.g. epochs = 20, bilstm(d=128)",
        )
    if ch == "|" or (ch in "-=>" and nxt == ">"):
        width = 2 if nxt == ">" or nxt == "|" else 1
        span = Span(e.line, e.column, e.line, e.column + width, ctx.path)
        return Diagnostic(
            "ParseError",
            f"unexpected '{ch}{nxt if width == 2 else ''}'",
            span,
            "pipeline stages are joined with '|>'",
        )
    if ch == '"':
        return Diagnostic(
            "ParseError", "unterminated string", span, "close the string with '\"' on the same line"
        )
    if ch == "'":
        return Diagnostic("ParseError", 'unexpected "\'"', span, 'strings use double quotes: "..."')
    shown = (
        repr(ch)[1:-1] if ch.isprintable()
        else f"\\x{ord(ch):02x}" if ch and ord(ch) < 256
        else f"\\u{ord(ch):04x}" if ch
        else ""
    )
    return Diagnostic(
        "ParseError", f"unexpected character '{shown}'", span, _expected(e.allowed or set()) or None
    )


def _diagnose(e: UnexpectedInput, text: str, path: str, next_line: int | None = None) -> Diagnostic:
    toks = _tokenize(text)
    if isinstance(e, UnexpectedToken):
        pos = len(text) if e.token.type == "$END" else e.token.start_pos
    else:
        pos = e.pos_in_stream
    index = next((i for i, t in enumerate(toks) if t.offset >= pos), len(toks))
    ctx = _Context(text, toks, index, path, next_line)
    if isinstance(e, UnexpectedToken):
        return _token_error(e, ctx)
    if isinstance(e, UnexpectedCharacters):
        return _char_error(e, ctx)
    return Diagnostic("ParseError", "syntax error", ctx.span(ctx.tok), None)


# ---------------------------------------------------------------------------------------------
# Entry points


def _parse_tree(text: str, start: str, path: str):
    tree = _lark().parse(text, start=start)
    try:
        return _ToAst(path).transform(tree)
    except VisitError as e:  # an exception inside a rule method: a bug, not the user's
        raise e.orig_exc from None


def _blank(prefix: str) -> str:
    """Whitespace that keeps the lines and columns of ``prefix``."""
    return re.sub(r"[^\n]", " ", prefix)


def _too_deep(path: str, text: str = "") -> SpecError:
    """Nesting past Python's recursion limit (the limits scan should have caught it first):
    reported at the deepest bracket."""
    toks = _tokenize(text) if len(text) <= limits.MAX_SPEC_BYTES else []
    depth, deepest, at = 0, 0, None
    for tok in toks:
        if tok.text in _OPEN:
            depth += 1
            if depth > deepest:
                deepest, at = depth, tok
        elif tok.text in _CLOSE:
            depth = max(0, depth - 1)
    span = Span(at.line, at.column, at.line, at.column + 1, path) if at else Span(1, 1, 1, 2, path)
    return SpecError([Diagnostic("ParseError", "the spec nests too deeply to read", span)], text)


def _limit_error(text: str, path: str) -> SpecError | None:
    """The first size limit (``rnndsl.limits``) a spec's text is over, at its place, or None.
    Checked before Lark parses, so the parser and checker only see texts of bounded size."""
    if len(text) > limits.MAX_SPEC_BYTES:
        message = limits.over(
            "the size of the spec (characters)", len(text), limits.MAX_SPEC_BYTES, "MAX_SPEC_BYTES"
        )
        hint = "a spec declares data, a model and its training; put data in data files"
        return SpecError([Diagnostic("ParseError", message, Span(1, 1, 1, 2, path), hint)], text)

    def at(tok: _Tok, message: str, hint: str | None = None) -> SpecError:
        span = Span(tok.line, tok.column, tok.line, tok.column + len(tok.text), path)
        return SpecError([Diagnostic("ParseError", message, span, hint)], text)

    stack: list[int] = [0]  # stages of the pipeline at each bracket depth
    statements = 0
    prev: _Tok | None = None
    for tok in _tokenize(text):
        if tok.kind == "name" and len(tok.text) > limits.MAX_NAME_CHARS:
            size = len(tok.text)
            return at(tok, limits.over("the length of this name", size, limits.MAX_NAME_CHARS,
                                       "MAX_NAME_CHARS"))
        if prev is not None and prev.kind == "number" and prev.end == tok.offset:
            if tok.kind in ("name", "number"):  # 0x10, 1_000, 1e, 1.2.3
                shown = prev.text + tok.text
                bad = _Tok("number", shown, prev.offset, prev.line, prev.column)
                return at(bad, f"malformed number '{shown}'",
                          "numbers are decimal, with an optional exponent: 16, 1000, 1e-3")
        if tok.text in _OPEN:
            if len(stack) > limits.MAX_NESTING:
                return at(tok, limits.over("the nesting of brackets", len(stack),
                                           limits.MAX_NESTING, "MAX_NESTING"),
                          "name the inner parts with definitions: inner = ...")
            stack.append(0)
        elif tok.text in _CLOSE and len(stack) > 1:
            stack.pop()
        elif tok.kind == "pipe":
            stack[-1] += 1
            if stack[-1] >= limits.MAX_PIPELINE_STAGES:
                return at(tok, limits.over("the number of stages of this pipeline",
                                           stack[-1] + 1, limits.MAX_PIPELINE_STAGES,
                                           "MAX_PIPELINE_STAGES"),
                          "stack(k) repeats a recurrent layer k times")
        elif tok.text == "=" and len(stack) == 1:
            statements += 1
            stack[0] = 0
            if statements > limits.MAX_STATEMENTS:
                return at(tok, limits.over("the number of statements", statements,
                                           limits.MAX_STATEMENTS, "MAX_STATEMENTS"))
        elif tok.text in ("{", "}", ";"):
            stack[-1] = 0
        prev = tok
    return None


def parse(text: str, path: str = "<spec>") -> S.Spec:
    """Parse a whole spec. Raises SpecError with the first syntax error of every statement.
    A byte-order mark is dropped and CR or CRLF line ends read as LF (``normalize_source``)."""
    text = normalize_source(text)
    limit = _limit_error(text, path)
    if limit is not None:
        raise limit
    try:
        statements = _parse_tree(text, "start", path)
        return S.Spec(statements, path)
    except UnexpectedInput as e:
        first = _diagnose(e, text, path)
    except RecursionError:
        raise _too_deep(path, text) from None
    except SpecError as e:
        raise SpecError(e.diagnostics, text) from None
    # Recover: parse each statement on its own, at its own position (the text before it is
    # blanked out, which keeps line and column numbers right), and keep the first error of each.
    diags: list[Diagnostic] = []
    starts = _statement_starts(text, _tokenize(text))
    for begin, end in zip(starts, starts[1:] + [len(text)]):
        chunk = _blank(text[:begin]) + text[begin:end]
        next_line = text.count("\n", 0, end) + 1 if end < len(text) else None
        try:
            _parse_tree(chunk, "start", path)
        except UnexpectedInput as e:
            diags.append(_diagnose(e, chunk, path, next_line))
        except SpecError as e:
            diags.extend(e.diagnostics)
    if not diags:
        diags = [first]
    unique = list(dict.fromkeys(diags))
    raise SpecError(unique, text)


def parse_pipeline(text: str, path: str = "<pipeline>") -> S.Expr:
    """Parse a bare pipeline (``bilstm(d=16) |> stack(2)``) as ``compile_pipeline`` takes it."""
    text = normalize_source(text)
    limit = _limit_error(text, path)
    if limit is not None:
        raise limit
    try:
        return _parse_tree(text, "pipeline", path)
    except UnexpectedInput as e:
        raise SpecError([_diagnose(e, text, path)], text) from None
    except RecursionError:
        raise _too_deep(path, text) from None
    except SpecError as e:
        raise SpecError(e.diagnostics, text) from None
