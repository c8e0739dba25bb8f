"""Pictures of networks: the model (IR) graph and the network unrolled over a real sentence.

    import rnndsl.render as R
    pic = R.unrolled("specs/pos_tagger.rnn", "the brown fox jumped", level="cell", grad=True)
    pic                                 # a Picture: shows inline in Jupyter
    pic.save("fox.svg")                 # or .png / .pdf / .dot
    R.model("specs/pos_tagger.rnn").save("model.svg")

What to draw: a ``.rnn`` spec, a run directory, a bare pipeline ("srnn(d=8) |> last") or a
Network (see ``api.py``). The unrolled pictures are read off the tape of a real forward pass
(and, with ``grad``, a backward pass with ``retain_graph=True``): see ``tape.py``. Levels:
``layer`` (one node per layer, direction and step), ``cell`` (each step opened into its state
parts and gates), ``op`` (every primitive op of the tape, the cells run as reference ops). A
character encoder or a span encoder is drawn as one small chain per word or span
(``nested.py``). Every picture keeps to a size Graphviz lays out in seconds: long inputs fold,
inner chains collapse to boxes (``expand=`` opens them), and ``dot`` runs under a time limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from ..nn.network import Network
from .api import Picture, Target, default_sentence, load_target, split_labels
from .dot import GraphvizMissing, dot_available, run_dot, to_graphviz, write
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
    expand: Sequence[int] | None = None,
) -> nx.DiGraph:
    """The unrolled picture as a networkx DiGraph (folded, laid out), before Graphviz."""
    tr = trace(net, x, level=level, grad=grad, data=data, targets=targets, words=words)
    return graph_of_trace(tr, level, steps, expand)


# a picture with more nodes than this is folded further (fewer steps kept), with a note
NODE_BUDGET = {"layer": 1500, "cell": 1500, "op": 900}


def graph_of_trace(
    tr: Trace, level: str = "layer", steps: int | None = None, expand: Sequence[int] | None = None
) -> nx.DiGraph:
    """The picture graph of a trace at ``level`` (a trace for 'op' must be run with
    ``level='op'``, i.e. with reference cells); ``expand`` opens inner chains (1-based)."""
    _check_level(level)
    if (level == "op") != tr.reference:
        raise RenderError(f"this trace was run for the {'op' if tr.reference else 'layer'} level")
    if level == "op":
        G = build_ops(tr, steps)
        rebuild = lambda k: build_ops(tr, k)  # noqa: E731
    else:
        base = build_unrolled(tr, level, expand, steps)
        G = place(fold(base, steps))
        rebuild = lambda k: place(fold(base, k))  # noqa: E731
    notes = list(G.graph.get("notes", []))
    if G.number_of_nodes() > NODE_BUDGET[level]:
        size = G.number_of_nodes()
        for k in (16, 8, 6, 4, 2):
            if k >= (steps or G.graph["n"]):
                continue
            G = rebuild(k)
            if G.number_of_nodes() <= NODE_BUDGET[level]:
                break
        notes.append(
            f"{size} nodes are more than Graphviz lays out in a few seconds at the {level} level "
            f"({NODE_BUDGET[level]}): drawn with {G.graph.get('folded') and 'the middle folded'}"
            f" ({G.number_of_nodes()} nodes)"
        )
    folded = G.graph.get("folded")
    if folded:
        a, b = folded
        unit = "spans" if G.graph.get("spans") else "words"
        notes.append(
            f"{unit} {a + 1}–{b} of {G.graph['n']} are folded into one column "
            f"(steps=N / --steps N keeps N of them)"
        )
    G.graph["notes"] = notes
    return G


def unrolled(
    what: Any,
    x: Any = None,
    *,
    level: str = "layer",
    grad: bool = False,
    steps: int | None = None,
    data: Any = None,
    targets: Any = None,
    labels: Any = None,
    expand: Sequence[int] | None = None,
    words: Sequence[str] | None = None,
    title: str | None = None,
    checkpoint: str | None = None,
) -> Picture:
    """The network unrolled over one sentence, as a Picture (inline in Jupyter, ``.save()``).

    what: a .rnn spec, a run directory, a pipeline or a Network (see ``load_target``).
    x: a sentence (str or list of words) or input vectors (T, D); default: the first dev
    sentence of the spec's data. ``labels`` (or ``targets``) gives the gold labels: tags, one
    per word ("DET ADJ NOUN VERB"), or an acceptor's label ("pos"), so ``grad`` shows the
    training loss's gradient for any sentence; without them a sentence found in the data gets
    its gold labels and any other a stated surrogate loss (the picture says which). ``grad``
    adds ||dL/ds_t||. ``steps`` keeps the first and last steps/2 positions of a long input
    (default: above 24 words keep 16 at the layer level, above 12 keep 8 at the cell level,
    above 10 keep 6 at the op level). ``expand`` lists the words (spans), 1-based, whose inner
    chains are drawn in full when they are collapsed to boxes by the size rule.
    """
    target = load_target(what, checkpoint)
    net = target.net
    net.graph.graph.setdefault("name", target.name)
    data = data if data is not None else target.data
    if x is None:
        x = default_sentence(target)
    if labels is not None:
        targets = split_labels(labels)
    tr = trace(net, x, level=level, grad=grad, data=data, targets=targets, words=words)
    G = graph_of_trace(tr, level, steps, expand)
    notes = list(tr.source.notes) + list(G.graph.get("notes", []))
    dg = to_graphviz(G, title=title if title is not None else default_title(tr, level))
    return Picture(dg, G, notes)


def default_title(tr: Trace, level: str) -> str:
    words = " ".join(tr.source.words)
    if len(words) > 60:
        words = words[:57] + "…"
    name = tr.net.graph.graph.get("name") or "network"
    text = f"<B>{esc(name)}</B> unrolled over “{esc(words)}” ({level} level)"
    caption = loss_caption(tr)
    if caption:
        text += f'<BR/><FONT POINT-SIZE="10">{esc(caption)}</FONT>'
    return text


def loss_caption(tr: Trace) -> str:
    """Which loss the picture draws: the gold one (where from), given labels, or a surrogate."""
    info, src = tr.loss_info, tr.source
    if info.kind == "gold":
        gold = src.gold if isinstance(src.gold, str) else " ".join(map(str, src.gold or ()))
        return f"the training loss; {src.gold_note}" + (f": {gold}" if gold else "")
    if tr.loss_info.head is None:
        return "a surrogate loss: the sum of the outputs (this pipeline has no head)"
    hint = "--labels TAG… per word" if info.per_position else "--label LABEL"
    return (
        "a surrogate loss: the sum of the head's scores (no gold labels for this sentence; "
        f"{hint} draws the training loss)"
    )


def model(what: Any, title: str | None = None, checkpoint: str | None = None) -> Picture:
    """The model (IR) graph: one box per layer with its output type and parameter count.

    what: a Network, an IR graph, a .rnn spec, a run directory or a pipeline."""
    if isinstance(what, nx.DiGraph):
        G = model_graph(what)
        return Picture(to_graphviz(G, title=title), G)
    target = load_target(what, checkpoint)
    if title is None and not isinstance(what, Network):
        title = (
            f"<B>{esc(target.name)}</B>: model graph, {target.net.parameter_count():,} parameters"
        )
    G = model_graph(target.net)
    return Picture(to_graphviz(G, title=title), G)


def draw(net: Network, input: Any = None, *, level: str = "layer", grad: bool = False,
         steps: int | None = None, **kw: Any) -> Picture:
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
    "Picture",
    "RenderError",
    "Source",
    "Target",
    "Trace",
    "dot_available",
    "default_sentence",
    "draw",
    "gradient_norms",
    "graph_of_trace",
    "load_target",
    "loss_caption",
    "make_source",
    "model",
    "model_graph",
    "norm_series",
    "norms_of",
    "norms_table",
    "plot_norms",
    "run_dot",
    "to_graphviz",
    "trace",
    "unrolled",
    "unrolled_graph",
    "write",
]
