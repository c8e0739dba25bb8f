"""The values that flow through a pipeline while it is checked, and small helpers on stages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Span
from . import syntax as S
from . import types as T
from .values import FieldRef

# ---------------------------------------------------------------------------------------------
# Values flowing through a pipeline while it is checked


@dataclass(frozen=True)
class _Rnn:
    """The recurrent layer a value comes out of: what stack(k) repeats."""

    node: str | None  # None when the layer has a wrong argument (no graph is built then)
    layer: str
    params: Mapping[str, Any]
    label: str
    in_node: str | None
    in_type: T.Type


@dataclass(frozen=True)
class _Head:
    name: str
    span: Span
    target: FieldRef | None


@dataclass(frozen=True)
class _Out:
    node: str | None  # the IR node computing this value; None after an error
    type: T.Type
    label: str = ""  # the stage that made it, for messages
    pooled_by: str | None = None  # the pooling that made it a Vec (for hints)
    source: str | None = None  # the data field of token ids
    rnn: _Rnn | None = None
    head: _Head | None = None


_UNKNOWN = _Out(None, T.UNKNOWN)
_STRUCTURAL = ("stack", "bi", "skip", "concat", "spans")


def _stage_name(st: S.Expr) -> str:
    if isinstance(st, S.Call):
        return st.func.dotted
    if isinstance(st, S.Ref):
        return st.dotted
    return S.to_source(st)


def _arg_span(args: Sequence[S.Arg], name: str, default: Span) -> Span:
    for a in args:
        if a.name is not None and a.name.name == name:
            return a.value.span
    return default
