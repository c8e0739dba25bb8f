"""The abstract syntax of a spec: frozen dataclasses, each with the span of its source text.

Nodes compare by structure: ``span`` is left out of ``==`` and ``hash``, so a spec parsed from
its printed form (``to_source``) equals the original. The checker reads these nodes and never
changes them.

    Spec
      DataStmt(name, reader)             data ewt = conllu(train="...")
      Definition(name, value)            tagger = embed(ewt.words, d=100) |> bilstm(d=64)
      TrainStmt(model, data, settings)   train tagger on ewt { epochs = 3 }
      EvalStmt(model, data, settings)    eval tagger on ewt { metrics = [accuracy] }
      OutputStmt(settings)               output { dir = "runs/x" }
    Expr = Pipe | Call | Ref | ListExpr | Str | Num | Bool
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from ..errors import Span

_NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    return field(default=_NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Ident:
    """A name as written: a definition, a layer, a key, a field or an enum value."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Ref:
    """A plain or dotted name: ``last``, ``ewt.tags``, ``dev.accuracy``."""

    parts: tuple[Ident, ...]
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join(p.name for p in self.parts)


@dataclass(frozen=True)
class Str:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Num:
    """An int or a float, as written: ``5`` is an int, ``5.0`` and ``1e3`` are floats."""

    value: int | float
    span: Span = _span()


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Arg:
    """One argument of a call; ``name`` is None for a positional argument."""

    name: Ident | None
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    """``func(args)``: a layer, a reader, an optimizer, ``dev.accuracy(patience=3)``."""

    func: Ref
    args: tuple[Arg, ...]
    span: Span = _span()

    @property
    def positional(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.name is None)


@dataclass(frozen=True)
class Pipe:
    """Two or more stages joined by ``|>``: the output of each stage is the input of the next."""

    stages: tuple[Expr, ...]
    span: Span = _span()


Expr = Union[Pipe, Call, Ref, ListExpr, Str, Num, Bool]


@dataclass(frozen=True)
class Setting:
    """``key = value`` inside a ``train``, ``eval`` or ``output`` block."""

    key: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class DataStmt:
    name: Ident
    reader: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Definition:
    name: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class TrainStmt:
    model: Ident
    data: Ident
    settings: tuple[Setting, ...]
    span: Span = _span()


@dataclass(frozen=True)
class EvalStmt:
    model: Ident
    data: Ident
    settings: tuple[Setting, ...]
    span: Span = _span()


@dataclass(frozen=True)
class OutputStmt:
    settings: tuple[Setting, ...]
    span: Span = _span()


Statement = Union[DataStmt, Definition, TrainStmt, EvalStmt, OutputStmt]


@dataclass(frozen=True)
class Spec:
    statements: tuple[Statement, ...]
    path: str = field(default="<spec>", compare=False)


def stages(expr: Expr) -> tuple[Expr, ...]:
    """The stages of a pipeline; a single term is a pipeline of one stage."""
    return expr.stages if isinstance(expr, Pipe) else (expr,)


# ---------------------------------------------------------------------------------------------
# Printing: the inverse of parsing, up to layout and comments.

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*\Z")


def _number(value: int | float) -> str:
    if isinstance(value, bool):  # bool is an int; never a Num value, but keep printing honest
        return "1" if value else "0"
    return repr(value)


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_source(node: Expr | Statement | Spec | Arg | Setting | Ident) -> str:
    """Spec text for a node; parsing the text gives back an equal node."""
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Ref):
        return node.dotted
    if isinstance(node, Str):
        return _string(node.value)
    if isinstance(node, Num):
        return _number(node.value)
    if isinstance(node, Bool):
        return "true" if node.value else "false"
    if isinstance(node, ListExpr):
        return "[" + ", ".join(to_source(i) for i in node.items) + "]"
    if isinstance(node, Arg):
        value = to_source(node.value)
        return value if node.name is None else f"{node.name.name}={value}"
    if isinstance(node, Call):
        return f"{node.func.dotted}(" + ", ".join(to_source(a) for a in node.args) + ")"
    if isinstance(node, Pipe):
        return " |> ".join(to_source(s) for s in node.stages)
    if isinstance(node, Setting):
        return f"{node.key.name} = {to_source(node.value)}"
    if isinstance(node, DataStmt):
        return f"data {node.name.name} = {to_source(node.reader)}"
    if isinstance(node, Definition):
        return f"{node.name.name} = {to_source(node.value)}"
    if isinstance(node, (TrainStmt, EvalStmt, OutputStmt)):
        if isinstance(node, OutputStmt):
            head = "output"
        else:
            word = "train" if isinstance(node, TrainStmt) else "eval"
            head = f"{word} {node.model.name} on {node.data.name}"
        if not node.settings:
            return head + " {}"
        body = "".join(f"  {to_source(s)}\n" for s in node.settings)
        return f"{head} {{\n{body}}}"
    if isinstance(node, Spec):
        return "".join(to_source(s) + "\n" for s in node.statements)
    raise TypeError(f"to_source: not a syntax node: {type(node).__name__}")


def is_bare_name(text: str) -> bool:
    """Whether ``text`` can be written as a bare name (an identifier) in a spec."""
    return bool(_BARE.match(text))
