"""One builder per IR node kind: build the module from the node's checked params, run it.

``BUILDERS`` maps every kind of ``lang.ir.NODE_KINDS`` to a ``Builder``. ``Network`` asks the
table and never branches on a kind; a kind without a builder fails the meta-test
(tests/test_tables.py) before anything runs. Adding a layer kind is a catalogue entry (lang/)
and one row here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..autodiff import functional as F
from ..errors import ShapeError
from .cells import Cell
from .heads import CRFHead, SoftmaxHead
from .layers import (
    MLP,
    Embedding,
    Init,
    Linear,
    Pool,
    Recurrent,
    concat_values,
    map_inner,
    split_spans,
)
from .module import Module, NestedValue, RunContext, SeqValue, VecValue

if TYPE_CHECKING:
    from .network import Network


@dataclass(frozen=True)
class Node:
    """What a builder sees of one IR node while the network is built."""

    net: Network
    name: str
    params: Mapping[str, Any]
    init: Init
    pretrained: Mapping[str, Any]

    @property
    def d_in(self) -> int:
        return self.net.in_dim(self.name)


@dataclass(frozen=True)
class Call:
    """What a builder sees of one IR node while the network runs."""

    module: Module | None
    name: str
    params: Mapping[str, Any]
    ins: list
    inputs: Mapping[str, Any]  # the network's inputs by node name or field (and "__spans__")
    ctx: RunContext

    @property
    def x(self) -> Any:
        return self.ins[0] if self.ins else None


@dataclass(frozen=True)
class Builder:
    """``build`` makes the node's module (None: the kind has no parameters); ``run`` maps the
    node's input values to its output value."""

    build: Callable[[Node], Module | None]
    run: Callable[[Call], Any]


def _none(node: Node) -> None:
    return None


def opt(p: Mapping[str, Any], key: str, default: Any) -> Any:
    """A layer parameter, or ``default`` when it is absent or None (not applicable)."""
    v = p.get(key)
    return default if v is None else v


def target_of(p: Mapping[str, Any]) -> Any:
    """A head's target: a data field, or a class count (compile("... |> softmax(3)"))."""
    if p.get("target") is not None:
        return p["target"]
    if p.get("dataset") and p.get("field"):
        return f"{p['dataset']}.{p['field']}"
    return int(p.get("classes") or 0)


def field_name(target: Any) -> str:
    """'ewt.tags' for a field given as a string, a (dataset, field) pair or a FieldRef."""
    if isinstance(target, (list, tuple)):
        return ".".join(str(t) for t in target)
    if hasattr(target, "dataset") and hasattr(target, "field"):
        return f"{target.dataset}.{target.field}"
    return str(target)


def map_data(value: Any, fn, keep_bi: bool = True) -> Any:
    """Apply ``fn`` to the arrays of a value; a layer that mixes features ends a bi layout."""
    if isinstance(value, NestedValue):
        return NestedValue(map_data(value.inner, fn, keep_bi), value.outer_index, value.outer)
    if isinstance(value, SeqValue):
        return SeqValue(fn(value.data), value.info, value.bidirectional and keep_bi)
    if isinstance(value, VecValue):
        return VecValue(fn(value.data))
    raise TypeError(f"cannot map over {type(value).__name__}")


# --- input --------------------------------------------------------------------------------------
def _run_input(c: Call) -> Any:
    if c.name in c.inputs:
        return c.inputs[c.name]
    key = f"{c.params.get('dataset')}.{c.params.get('field')}"
    if key in c.inputs:
        return c.inputs[key]
    raise ShapeError(f"no input given for {c.name} ({key})")


# --- embed --------------------------------------------------------------------------------------
def _build_embed(node: Node) -> Module:
    p, net = node.params, node.net
    src = p.get("source") or p.get("field")
    return Embedding(node.name, net.size_of(src, "vocabulary"), int(p["d"]), node.init,
                     pretrained=node.pretrained.get(node.name),
                     freeze=bool(opt(p, "freeze", False)),
                     dropout=float(opt(p, "dropout", 0)),
                     word_dropout=float(opt(p, "word_dropout", 0)),
                     word_dropout_alpha=float(opt(p, "word_dropout_alpha", 0)),
                     counts=net.counts.get(field_name(src)) if src else None)


def _run_embed(c: Call) -> Any:
    x, m = c.x, c.module
    if x.outer is None:
        return SeqValue(m.lookup(x.ids, c.ctx), x.info)
    inner = SeqValue(m.lookup(x.ids, c.ctx), x.info)
    return NestedValue(inner, x.outer_index, x.outer)


# --- rnn ----------------------------------------------------------------------------------------
def _build_rnn(node: Node) -> Module:
    p = node.params
    cell = Cell(p["cell"], act=p.get("act"), reset=p.get("reset"))  # None: not applicable
    return Recurrent(node.name, cell, node.d_in, int(p["d"]),
                     bool(opt(p, "bidirectional", False)), node.init, s0=opt(p, "s0", "zeros"),
                     forget_bias=float(opt(p, "forget_bias", 0.0)),
                     dropout=float(opt(p, "dropout", 0.0)))


def _run_rnn(c: Call) -> Any:
    return map_inner(c.x, lambda v: c.module.forward(v, c.ctx))


# --- structure and feed-forward -----------------------------------------------------------------
def _run_dropout(c: Call) -> Any:
    p = c.params
    rate = float(opt(p, "p", p.get("rate", 0.0)))
    if not c.ctx.train or rate <= 0:
        return c.x
    return map_data(c.x, lambda t: F.dropout(t, rate, c.ctx.rng))


def _run_concat(c: Call) -> Any:
    return concat_values(c.ins)


def _run_split(c: Call) -> Any:
    spans = c.inputs.get("__spans__")
    if spans is None:
        raise ShapeError("this model splits sentences into spans; the batch has none")
    return split_spans(c.x, *spans)


def _build_pool(node: Node) -> Module:
    return Pool(node.name, node.params["mode"], node.d_in, node.init)


def _run_forward(c: Call) -> Any:
    return c.module.forward(c.x, c.ctx)


def _build_linear(node: Node) -> Module:
    return Linear(node.name, node.d_in, int(node.params["d"]), node.init)


def _run_linear(c: Call) -> Any:
    return map_data(c.x, c.module.apply, keep_bi=False)


def _build_mlp(node: Node) -> Module:
    p = node.params
    sizes = p.get("sizes") or [int(p["d"])] * int(opt(p, "layers", 1))
    return MLP(node.name, node.d_in, [int(s) for s in sizes], node.init,
               act=opt(p, "act", "tanh"), dropout=float(opt(p, "dropout", 0)))


def _run_mlp(c: Call) -> Any:
    return map_data(c.x, lambda t: c.module.apply(t, c.ctx), keep_bi=False)


# --- heads --------------------------------------------------------------------------------------
def _build_softmax(node: Node) -> Module:
    p = node.params
    return SoftmaxHead(node.name, node.d_in, node.net.size_of(target_of(p), "classes"),
                       node.init, loss=p.get("loss") or "xent")


def _build_crf(node: Node) -> Module:
    p, net = node.params, node.net
    return CRFHead(node.name, node.d_in, net.size_of(target_of(p), "tags"), node.init,
                   tag_names=net.tag_names.get(field_name(target_of(p))),
                   scheme=str(opt(p, "scheme", "none")),
                   constraints=bool(opt(p, "constraints", True)))


def _run_head(c: Call) -> Any:
    return c.x  # the head's scores are computed by loss()/predict()


BUILDERS: dict[str, Builder] = {
    "input": Builder(_none, _run_input),
    "embed": Builder(_build_embed, _run_embed),
    "rnn": Builder(_build_rnn, _run_rnn),
    "dropout": Builder(_none, _run_dropout),
    "concat": Builder(_none, _run_concat),
    "pool": Builder(_build_pool, _run_forward),
    "linear": Builder(_build_linear, _run_linear),
    "mlp": Builder(_build_mlp, _run_mlp),
    "split": Builder(_none, _run_split),
    "softmax": Builder(_build_softmax, _run_head),
    "crf": Builder(_build_crf, _run_head),
}


def builder(kind: str) -> Builder:
    """The builder of an IR kind; a kind without one is a ShapeError (the meta-test keeps the
    table complete)."""
    b = BUILDERS.get(kind)
    if b is None:
        raise ShapeError(f"layer kind {kind!r} has no builder in rnndsl.nn.builders")
    return b
