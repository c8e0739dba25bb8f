"""Pictures of networks: the model (IR) graph and the network unrolled over a real sentence.

    import rnndsl
    net = rnndsl.compile("bilstm(d=4) |> stack(2)", input_dim=3)
    g = rnndsl.render.unrolled(net, "the brown fox jumped", level="cell", grad=True)
    g                                   # a graphviz.Digraph: shows inline in Jupyter
    rnndsl.render.draw(net)             # the model graph; draw(net, "the fox") = unrolled(...)
    rnndsl.render.write(g, "fox.svg")   # or .png / .pdf / .dot

The unrolled pictures are read off the tape of a real forward pass (and, with ``grad``, a
backward pass with ``retain_graph=True``): see ``tape.py``. Levels: ``layer`` (one node per
layer, direction and step), ``cell`` (each step opened into its state parts and gates), ``op``
(every primitive op of the tape, the cells run as reference ops).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import graphviz
import networkx as nx

from ..nn.network import Network
from .dot import GraphvizMissing, dot_available, to_graphviz, write
from .gradflow import gradient_norms, norm_series, norms_table, plot_norms
from .labels import esc
from .layout import fold, place
from .model import model_graph
from .oplevel import build_ops
from .tape import RenderError, Source, Trace, run_trace, source_from_vectors, source_from_words
from .unrolled import build_unrolled

LEVELS = ("layer", "cell", "op")


def make_source(
    net: Network,
    x: Any,
    *,
    data: Any = None,
    targets: Any = None,
    words: Sequence[str] | None = None,
) -> Source:
    """The sentence to draw: a string or word list, or vectors (T, D) / (1, T, D)."""
    if isinstance(x, Source):
        return x
    if isinstance(x, str) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], str)):
        return source_from_words(net, x, data=data, targets=targets)
    return source_from_vectors(net, x, words=words, targets=targets)


def trace(
    net: Network,
    x: Any,
    *,
    level: str = "layer",
    grad: bool = False,
    data: Any = None,
    targets: Any = None,
    words: Sequence[str] | None = None,
) -> Trace:
    """Run ``net`` once on one sentence keeping the tape (see ``make_source`` for ``x``)."""
    _check_level(level)
    src = make_source(net, x, data=data, targets=targets, words=words)
    return run_trace(net, src, grad=grad, reference=level == "op")


def unrolled_graph(
    net: Network,
    x: Any,
    *,
    level: str = "layer",
    grad: bool = False,
    steps: int | None = None,
    data: Any = None,
    targets: Any = None,
    words: Sequence[str] | None = None,
) -> nx.DiGraph:
    """The unrolled picture as a networkx DiGraph (folded, laid out), before Graphviz."""
    tr = trace(net, x, level=level, grad=grad, data=data, targets=targets, words=words)
    return graph_of_trace(tr, level, steps)


def graph_of_trace(tr: Trace, level: str = "layer", steps: int | None = None) -> nx.DiGraph:
    """The picture graph of a trace at ``level`` (a trace for 'op' must be run with
    ``level='op'``, i.e. with reference cells)."""
    _check_level(level)
    if (level == "op") != tr.reference:
        raise RenderError(f"this trace was run for the {'op' if tr.reference else 'layer'} level")
    if level == "op":
        return build_ops(tr, steps)
    return place(fold(build_unrolled(tr, level), steps))


def unrolled(
    net: Network,
    x: Any,
    *,
    level: str = "layer",
    grad: bool = False,
    steps: int | None = None,
    data: Any = None,
    targets: Any = None,
    words: Sequence[str] | None = None,
    title: str | None = None,
) -> graphviz.Digraph:
    """The network unrolled over one sentence, as a graphviz.Digraph.

    x: a sentence (str or list of words) or input vectors (T, D); ``data`` (a TaskData) gives
    the vocabulary for a network that embeds words and gold labels when the sentence is in it;
    ``targets`` gives gold labels directly (tags / a label, or class indices). ``grad`` adds
    ||dL/ds_t|| (the gold loss when known, else a stated surrogate). ``steps`` keeps the first
    and last steps/2 positions of a long input (default: above 24 words keep 16 at the layer
    level, above 12 keep 8 at the cell level, above 10 keep 6 at the op level).
    """
    tr = trace(net, x, level=level, grad=grad, data=data, targets=targets, words=words)
    G = graph_of_trace(tr, level, steps)
    return to_graphviz(G, title=title if title is not None else default_title(tr, level))


def default_title(tr: Trace, level: str) -> str:
    words = " ".join(tr.source.words)
    if len(words) > 60:
        words = words[:57] + "…"
    name = tr.net.graph.graph.get("name") or "network"
    text = f"<B>{esc(name)}</B> unrolled over “{esc(words)}” ({level} level)"
    if tr.source.gold_note:
        text += f'<BR/><FONT POINT-SIZE="10">{esc(tr.source.gold_note)}</FONT>'
    return text


def model(net_or_graph: Network | nx.DiGraph, title: str | None = None) -> graphviz.Digraph:
    """The model (IR) graph: one box per layer with its output type and parameter count."""
    return to_graphviz(model_graph(net_or_graph), title=title)


def draw(net: Network, input: Any = None, *, level: str = "layer", grad: bool = False,
         steps: int | None = None, **kw: Any) -> graphviz.Digraph:
    """A picture of ``net``: unrolled over ``input`` (a sentence or (T, D) vectors; see
    ``unrolled`` for the options), or the model graph when no input is given."""
    if input is None:
        return model(net)
    return unrolled(net, input, level=level, grad=grad, steps=steps, **kw)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise RenderError(f"unknown level {level!r}", hint="choose layer, cell or op")


def norms_of(net: Network, x: Any, **kw: Any) -> Mapping[str, Any]:
    """||dL/ds_t|| per recurrent layer: {layer: host array (D, n)} (see ``gradient_norms``)."""
    return gradient_norms(trace(net, x, grad=True, **kw))


__all__ = [
    "LEVELS",
    "GraphvizMissing",
    "RenderError",
    "Source",
    "Trace",
    "dot_available",
    "draw",
    "gradient_norms",
    "graph_of_trace",
    "make_source",
    "model",
    "model_graph",
    "norm_series",
    "norms_of",
    "norms_table",
    "plot_norms",
    "to_graphviz",
    "trace",
    "unrolled",
    "unrolled_graph",
    "write",
]
