"""Binding call arguments to catalogue parameters and checking each value against its type.

``bind`` is used for layers, readers and function-like setting values (``adam(lr=1e-3)``); it
reports every problem through the context and returns the resolved values, defaults filled in,
or None when something was wrong. Data fields, definition names and paths need the checker's
knowledge; they go through the ``ValueContext`` it passes in.
"""

from __future__ import annotations

import codecs
import difflib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, Protocol

from .. import limits
from ..errors import Span, did_you_mean
from . import catalogue as C
from .syntax import Arg, Bool, Call, Expr, ListExpr, Num, Ref, Str, to_source


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()


@dataclass(frozen=True)
class FieldRef:
    """A resolved data field (``ewt.tags``), or a bare class count in ``compile_pipeline``."""

    dataset: str | None
    field: str | None
    role: str  # tokens | tags | labels | next | classes
    depth: int  # nesting of the tokens (words 1, chars 2); 0 for sentence labels
    scheme: str | None = None  # tag scheme of a tags field (bio, iobes, none, ...)
    classes: int | None = None  # a class count given as a number
    span: Span | None = field(default=None, compare=False)

    @property
    def dotted(self) -> str | None:
        return f"{self.dataset}.{self.field}" if self.field is not None else None

    @property
    def per(self) -> str | None:
        """``token`` for per-position targets, ``sequence`` for sentence labels."""
        return {"tags": "token", "next": "token", "labels": "sequence"}.get(self.role)


@dataclass(frozen=True)
class FuncValue:
    """A function-like setting value: ``adam(lr=0.001)`` is ``FuncValue("adam", {"lr": ...})``."""

    name: str
    args: dict[str, Any]


class ValueContext(Protocol):
    base_dir: FsPath | None
    counts_ok: bool  # heads may take a class count (compile_pipeline only)
    check_paths: bool  # False: a trained run's spec copy, whose data may be elsewhere now

    def report(
        self, kind: str, message: str, span: Span | None, hint: str | None = None
    ) -> None: ...

    def field(self, ref: Ref, ftype: C.FieldArg, owner: str) -> FieldRef | None: ...

    def definition_names(self) -> Sequence[str]: ...


def source_text(expr: Expr, limit: int = 40) -> str:
    text = to_source(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(owner: str, name: str) -> str:
    return f"{owner}: {name}" if owner else name


def bind(
    ctx: ValueContext,
    owner: str,
    params: Sequence[C.Param],
    args: Sequence[Arg],
    span: Span,
    example: str = "",
) -> dict[str, Any]:
    """Match ``args`` to ``params``, check every value, fill in defaults.

    Positional arguments fill the positional parameters in order (a variadic one takes them all);
    unknown, duplicate and missing arguments are reported. A value that is missing or wrong is
    INVALID in the result (see ``valid``), so that what does not depend on it can still be
    checked.
    """
    given: dict[str, Expr | list[Expr]] = {}
    first_span: dict[str, Span] = {}
    variadic = next((p for p in params if p.variadic), None)
    positional = [p for p in params if p.positional and not p.variadic]
    pos_args = [a for a in args if a.name is None]
    if variadic is not None:
        given[variadic.name] = [a.value for a in pos_args]
    else:
        for p, a in zip(positional, pos_args):
            given[p.name] = a.value
            first_span[p.name] = a.span
        for a in pos_args[len(positional) :]:
            names = ", ".join(p.name for p in positional)
            if positional:
                msg = f"{owner} takes {len(positional)} positional argument(s) ({names})"
            else:
                msg = f"{owner} takes no positional arguments"
            keywords = [p.name for p in params if p.name not in given]
            hint = (
                f"name the argument, e.g. {keywords[0]}={source_text(a.value)}"
                if keywords
                else f"{owner} takes no more arguments"
            )
            ctx.report("UnknownArgument", msg, a.span, hint)
    by_name = {p.name: p for p in params}
    for a in args:
        if a.name is None:
            continue
        name = a.name.name
        p = by_name.get(name)
        if p is None or p.variadic:
            choices = [q.name for q in params if not q.variadic]
            hint = did_you_mean(name, choices) or (
                f"{owner} takes " + ", ".join(choices) if choices else f"{owner} takes no names"
            )
            ctx.report("UnknownArgument", f"{owner} has no argument '{name}'", a.name.span, hint)
            continue
        if name in given:
            where = first_span.get(name)
            first = f" (first at line {where.line}, column {where.column})" if where else ""
            ctx.report(
                "DuplicateArgument", f"{owner}: {name} is given twice{first}", a.name.span, None
            )
            continue
        given[name] = a.value
        first_span[name] = a.span
    for p in params:
        if p.required and p.name not in given and not p.variadic:
            doc = f" ({p.doc})" if p.doc else ""
            ctx.report(
                "MissingArgument",
                f"{owner} needs {p.name}{doc}",
                span,
                f"for example: {example}" if example else None,
            )
    values: dict[str, Any] = {}
    for p in params:
        if p.name not in given:
            values[p.name] = [] if p.variadic else INVALID if p.required else p.default
            continue
        expr = given[p.name]
        if p.variadic or isinstance(p.type, (C.PipelineArg, C.LayerArg)):
            values[p.name] = expr  # the checker evaluates layers and pipelines
            continue
        assert not isinstance(expr, list)
        values[p.name] = check_value(ctx, p.type, expr, owner, p.name, p.hint)
    return values


def valid(values: Mapping[str, Any]) -> bool:
    """Whether every value ``bind`` returned is usable."""
    return all(v is not INVALID for v in values.values())


class InvalidArgument(Exception):
    """Raised by ``Guarded`` when a shape rule reads a value that had an error."""


class Guarded(Mapping[str, Any]):
    """Bound values as a shape rule sees them: reading an INVALID one raises InvalidArgument,
    so the output type is unknown exactly when it depends on a wrong value."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = values

    def __getitem__(self, key: str) -> Any:
        v = self._values[key]
        if v is INVALID:
            raise InvalidArgument(key)
        return v

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def fits(t: C.ValueType, expr: Expr) -> bool:
    """Whether ``expr`` has the syntactic shape of a ``t`` value (which option of a OneOf)."""
    if isinstance(t, (C.Int, C.Float)):
        return isinstance(expr, Num)
    if isinstance(t, C.Bool):
        return isinstance(expr, Bool)
    if isinstance(t, C.Enum):
        return isinstance(expr, Str) or (isinstance(expr, Ref) and len(expr.parts) == 1)
    if isinstance(t, (C.Text, C.Path)):
        return isinstance(expr, Str)
    if isinstance(t, C.Nothing):
        return isinstance(expr, Ref) and expr.dotted == "none"
    if isinstance(t, C.ListOf):
        return isinstance(expr, ListExpr) or fits(t.item, expr)
    if isinstance(t, C.OneOf):
        return any(fits(o, expr) for o in t.options)
    if isinstance(t, C.FieldArg):
        return isinstance(expr, (Ref, Num))
    if isinstance(t, C.Func):
        return isinstance(expr, (Ref, Call))
    if isinstance(t, C.DefinitionName):
        return isinstance(expr, Ref)
    return True


def check_value(
    ctx: ValueContext,
    t: C.ValueType,
    expr: Expr,
    owner: str,
    name: str,
    hint: str | None = None,
) -> Any:
    """The resolved value of ``expr`` as a ``t``, or INVALID after reporting why not."""
    label = _label(owner, name)
    got = source_text(expr)

    def bad(expected: str, extra: str | None = None) -> Any:
        ctx.report("BadValue", f"{label} must be {expected}, got {got}", expr.span, extra)
        return INVALID

    def in_range(v: float, r: C.Range) -> Any:
        if v in r:
            return v
        if isinstance(t, C.Int) and r.lo is not None and r.hi is not None:
            r = C.Range(lo=r.lo) if v < r.lo else C.Range(hi=r.hi)  # the side that was crossed
        ctx.report("OutOfRange", f"{label} must be {r}, got {got}", expr.span, hint)
        return INVALID

    if isinstance(t, C.OneOf):
        for option in t.options:
            if fits(option, expr):
                return check_value(ctx, option, expr, owner, name, hint)
        return bad(t.describe())
    if isinstance(t, C.Int):
        if not isinstance(expr, Num):
            return bad("an integer")
        if isinstance(expr.value, float):
            extra = f"write {int(expr.value)}" if expr.value.is_integer() else None
            return bad("an integer", extra)
        return in_range(expr.value, t.range)
    if isinstance(t, C.Float):
        if not isinstance(expr, Num):
            return bad("a number")
        if not math.isfinite(expr.value):
            return bad("a finite number")
        return in_range(float(expr.value), t.range)
    if isinstance(t, C.Bool):
        if not isinstance(expr, Bool):
            return bad("true or false")
        return expr.value
    if isinstance(t, C.Enum):
        word = None
        if isinstance(expr, Str):
            word = expr.value
        elif isinstance(expr, Ref) and len(expr.parts) == 1:
            word = expr.dotted
        if word in t.choices:
            return word
        choices = ", ".join(t.choices)
        return bad(f"one of {choices}", did_you_mean(word, t.choices) if word else None)
    if isinstance(t, C.Text):
        if not isinstance(expr, Str):
            extra = f'write "{got}"' if isinstance(expr, Ref) else None
            return bad("a string in double quotes", extra)
        if isinstance(t, C.Encoding):
            try:
                info = codecs.lookup(expr.value)
            except LookupError:
                return bad("a text encoding Python knows",
                           'e.g. "utf-8", "latin-1" or "cp1252" (Windows Western European)')
            if not _ascii_text_codec(info):
                return bad("a text encoding that reads ASCII as ASCII (the readers split "
                           "lines at byte \\n)",
                           f"'{expr.value}' is a {'text' if info._is_text_encoding else 'bytes'}"
                           ' codec, not a file encoding; e.g. "utf-8", "latin-1" or "cp1252"')
        return expr.value
    if isinstance(t, C.Vectors) and isinstance(expr, Str):
        return check_vectors(ctx, t, expr, label)
    if isinstance(t, C.Path):
        if not isinstance(expr, Str):
            return bad("a path in double quotes")
        return check_path(ctx, t, expr, label)
    if isinstance(t, C.Nothing):
        return None if fits(t, expr) else bad("none")
    if isinstance(t, C.ListOf):
        items = expr.items if isinstance(expr, ListExpr) else (expr,)
        if len(items) < t.min_len:
            return bad(f"a list of at least {t.min_len} item(s)")
        out = [check_value(ctx, t.item, item, owner, name, hint) for item in items]
        return INVALID if any(v is INVALID for v in out) else out
    if isinstance(t, C.FieldArg):
        if isinstance(expr, Num) and t.count_ok and ctx.counts_ok:
            return _class_count(ctx, expr, owner, label)
        if not isinstance(expr, Ref):
            example = "sst.labels" if "labels" in t.roles else "ewt.tags"
            extra = f"name the data field to predict, e.g. {owner}({example})"
            return bad(t.describe(), extra if t.count_ok else None)
        ref = ctx.field(expr, t, owner)
        return INVALID if ref is None else ref
    if isinstance(t, C.DefinitionName):
        names = ctx.definition_names()
        if isinstance(expr, Ref) and len(expr.parts) == 1 and expr.dotted in names:
            return expr.dotted
        if isinstance(expr, Ref) and len(expr.parts) == 1:
            ctx.report(
                "UnknownName",
                f"{label}: no definition named '{expr.dotted}'",
                expr.span,
                did_you_mean(expr.dotted, names),
            )
            return INVALID
        return bad("the name of a definition")
    if isinstance(t, C.Func):
        return check_func(ctx, t, expr, label)
    raise AssertionError(f"no check for value type {t!r}")


def _class_count(ctx: ValueContext, expr: Num, owner: str, label: str) -> Any:
    if not isinstance(expr.value, int) or not 2 <= expr.value <= C.SIZE.hi:  # type: ignore[operator]
        ctx.report(
            "OutOfRange",
            f"{label} must be a data field or a class count in [2, {C.SIZE.hi:,}], "
            f"got {source_text(expr)}",
            expr.span,
        )
        return INVALID
    return FieldRef(None, None, "classes", 1, classes=expr.value, span=expr.span)


def check_func(ctx: ValueContext, t: C.Func, expr: Expr, label: str) -> Any:
    """``adam``, ``adam(lr=1e-3)``, ``dev.accuracy(patience=3)`` or ``none``."""
    ref = expr.func if isinstance(expr, Call) else expr
    names = [f.name for f in t.choices]
    if isinstance(ref, Ref) and ref.dotted == "none" and t.none_ok and not isinstance(expr, Call):
        return None
    fd = t.get(ref.dotted) if isinstance(ref, Ref) else None
    if fd is None:
        got = ref.dotted if isinstance(ref, Ref) else source_text(expr)
        ctx.report(
            "BadValue",
            f"{label} must be one of {', '.join(names + (['none'] if t.none_ok else []))}, "
            f"got {got}",
            ref.span,
            did_you_mean(got, names) if isinstance(ref, Ref) else None,
        )
        return INVALID
    args = expr.args if isinstance(expr, Call) else ()
    values = bind(ctx, fd.name, fd.params, args, expr.span)
    return FuncValue(fd.name, values) if valid(values) else INVALID


def _ascii_text_codec(info: codecs.CodecInfo) -> bool:
    """A codec that decodes bytes to text and reads ASCII as ASCII (UTF-8, latin-1, cp1252):
    not rot13/hex/base64/zlib (bytes <-> bytes), punycode, UTF-16 or EBCDIC."""
    sample = b'az09 \t#"-.,'
    try:
        return bool(info._is_text_encoding) and info.decode(sample)[0] == sample.decode("ascii")
    except (UnicodeError, ValueError, TypeError):
        return False


def check_path(ctx: ValueContext, t: C.Path, expr: Str, label: str) -> Any:
    written = expr.value
    base = ctx.base_dir or FsPath.cwd()
    resolved = FsPath(os.path.normpath(os.path.join(base, written)))
    longest = max((len(part) for part in str(resolved).split(os.sep)), default=0)
    if len(str(resolved)) > limits.MAX_PATH_CHARS or longest > 255:
        what = "a part of this path" if longest > 255 else "this path"
        size, limit = (longest, 255) if longest > 255 else (len(str(resolved)),
                                                            limits.MAX_PATH_CHARS)
        ctx.report("BadValue", f"{label}: {what} is {size:,} characters long, over the limit of "
                   f"{limit:,} of this system", expr.span, "give a shorter path")
        return INVALID
    if not t.must_exist or not ctx.check_paths:
        return str(resolved)
    if t.folder and resolved.is_dir():
        return str(resolved)
    if not t.folder and resolved.exists() and not resolved.is_dir():
        why = limits.not_regular(resolved)
        if why is None:
            return str(resolved)
        ctx.report("BadValue", f"{label}: {written} is {why}",
                   expr.span, "give the path of a regular file")
        return INVALID
    if resolved.exists():
        what = "a folder" if t.folder else "a file"
        other = "a file" if t.folder else "a folder"
        ctx.report("BadValue", f"{label} must be {what}, but {written} is {other}", expr.span)
        return INVALID
    message, hint = missing_path(written, base)
    ctx.report("MissingFile", message, expr.span, hint)
    return INVALID


def check_vectors(ctx: ValueContext, t: C.Vectors, expr: Str, label: str) -> Any:
    """A packaged vector set's name (returned as written) or a vector file (its absolute path).

    A string with no folder separator and no dot that names no file is taken for a misspelt
    name, so the hint lists the known names rather than the spec's folder."""
    written = expr.value
    if written in C.PRETRAINED_VECTORS:
        return written
    base = ctx.base_dir or FsPath.cwd()
    looks_like_name = not any(c in written for c in "/\\.")
    if looks_like_name and not (base / written).exists():
        known = ", ".join(f'"{n}"' for n in C.PRETRAINED_VECTORS)
        close = did_you_mean(written, list(C.PRETRAINED_VECTORS))
        ctx.report(
            "BadValue",
            f"{label}: no pretrained vectors named '{written}'",
            expr.span,
            (close + " " if close else "") + f"known names: {known}; or give a file path "
            "(GloVe or word2vec)",
        )
        return INVALID
    return check_path(ctx, t, expr, label)


def missing_path(written: str, base: FsPath) -> tuple[str, str]:
    """The message and hint for a path that does not exist: which part is missing, and the
    closest existing name in its folder."""
    parts = written.replace("\\", "/").split("/")
    cur = FsPath("/") if written.startswith("/") else base
    for i, part in enumerate(parts):
        if part in ("", "."):
            continue
        nxt = cur / part
        if nxt.exists():
            cur = nxt
            continue
        try:
            siblings = sorted(os.listdir(cur)) if cur.is_dir() else []
        except OSError:
            siblings = []
        close = difflib.get_close_matches(part, siblings, n=1, cutoff=0.6)
        last = i == len(parts) - 1
        prefix = "/".join(parts[:i])
        message = (
            f"no such file: {written}"
            if last
            else f"no such folder: {'/'.join(parts[: i + 1])} (in {written})"
        )
        if close:
            fixed = "/".join(p for p in (prefix, close[0]) if p)
            rest = parts[i + 1 :]
            if rest and (cur / close[0] / "/".join(rest)).exists():
                fixed = "/".join([fixed, *rest])
            elif rest:
                fixed += "/"
            return message, f"did you mean '{fixed}'?"
        return message, "paths are relative to the folder of the spec file"
    return f"no such file: {written}", "paths are relative to the folder of the spec file"
