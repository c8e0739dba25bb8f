"""The model IR: one networkx DiGraph per model, built by the checker.

Nodes are layers, named by scope so that names are stable across runs (no ``id()``):

    ewt.words               an input: a data field
    words.1.embed           stage 1 of the definition ``words``
    tagger.2.bilstm         stage 2 of ``tagger``; ``tagger.2.bilstm.1`` is its first stack copy
    tagger.3.stack.dropout.1  the dropout stack(2, dropout=0.3) puts before that copy
    tagger.1.concat.2.1.bilstm  stage 1 of the inline pipeline in concat's 2nd argument

Node attributes:
    kind      input | embed | rnn | dropout | concat | pool | linear | mlp | split | softmax | crf
    layer     the catalogue entry that made the node (bilstm, attention, ...; "input" for inputs)
    params    resolved arguments, defaults filled in (see docs/language.md for each kind)
    in_types  the input types, in edge order; out_type the output type (``types``)
    span      the source text the node comes from; label a short text for pictures
Edges carry ``order``, the input position (0-based), so concat's inputs stay ordered.
Graph attributes: ``name``, ``data`` (the dataset, or None), ``output`` (the last node, the head
for a model), ``head`` (its kind, or None) and ``inputs`` (the input nodes, in order).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import networkx as nx

from ..errors import Span
from . import types as T

NODE_KINDS = (
    "input",
    "embed",
    "rnn",
    "dropout",
    "concat",
    "pool",
    "linear",
    "mlp",
    "split",
    "softmax",
    "crf",
)
HEAD_KINDS = ("softmax", "crf")


class GraphBuilder:
    """Adds nodes and ordered edges to one model graph; the checker drives it."""

    def __init__(self, name: str, data: str | None = None):
        self.graph = nx.DiGraph(name=name, data=data, output=None, head=None, inputs=[])

    def has(self, node: str) -> bool:
        return node in self.graph

    def add(
        self,
        node: str,
        kind: str,
        layer: str,
        params: Mapping[str, Any],
        inputs: list[tuple[str | None, T.Type]],
        out_type: T.Type,
        span: Span | None,
        label: str,
    ) -> str:
        """Add a node fed by ``inputs`` (node id or None after an error, and its type)."""
        assert kind in NODE_KINDS, kind
        assert node not in self.graph, f"duplicate IR node {node}"
        self.graph.add_node(
            node,
            kind=kind,
            layer=layer,
            params=dict(params),
            in_types=[t for _, t in inputs],
            out_type=out_type,
            span=span,
            label=label,
        )
        for order, (src, _) in enumerate(inputs):
            if src is not None:
                self.graph.add_edge(src, node, order=order)
        if kind == "input":
            self.graph.graph["inputs"].append(node)
        return node

    def finish(self, output: str | None) -> nx.DiGraph:
        g = self.graph
        g.graph["output"] = output
        kind = g.nodes[output]["kind"] if output in g else None
        g.graph["head"] = kind if kind in HEAD_KINDS else None
        return g


def ordered_nodes(g: nx.DiGraph) -> list[str]:
    """The nodes in a topological order that follows the order they were added (stable)."""
    rank = {n: i for i, n in enumerate(g.nodes)}
    return list(nx.lexicographical_topological_sort(g, key=rank.__getitem__))


def inputs_of(g: nx.DiGraph, node: str) -> list[str]:
    """The nodes feeding ``node``, by edge ``order`` (0 where an edge has none)."""
    preds = sorted(g.in_edges(node, data="order", default=0), key=lambda e: e[2])
    return [src for src, _, _ in preds]


def needs_of(g: nx.DiGraph) -> set[str]:
    """Which batch parts a model reads besides the words: characters, feats, spans."""
    needs = set()
    for _, a in g.nodes(data=True):
        p = a.get("params", {})
        if a["kind"] == "input" and p.get("field") in ("chars", "feats"):
            needs.add(p["field"])
        if a["kind"] == "split":
            needs.add("spans")
    return needs


def walk(g: nx.DiGraph) -> Iterator[tuple[str, dict[str, Any]]]:
    for n in ordered_nodes(g):
        yield n, g.nodes[n]


def describe(g: nx.DiGraph) -> str:
    """A text listing of the graph: one node per line with its inputs; for tests and debugging."""
    lines = []
    for n, a in walk(g):
        ins = ", ".join(inputs_of(g, n))
        lines.append(
            f"{n}: {a['kind']} {a['label']} -> {a['out_type']}" + (f" <- {ins}" if ins else "")
        )
    return "\n".join(lines)
