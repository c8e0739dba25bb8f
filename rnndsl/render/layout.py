"""Folding long inputs and placing the unrolled graph on its grid.

``fold`` keeps the first and last steps of a long input and replaces the middle of every row by
one ellipsis node (its label says how many steps it holds and, with gradients, their range);
``place`` turns positions and rows into coordinates (inches) for Graphviz's neato.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from .tape import RenderError

# inputs longer than this are folded to this many steps when no step count is given
AUTO_FOLD = {"layer": (24, 16), "cell": (12, 8), "op": (10, 6)}
DX = {"layer": 1.25, "cell": 2.55}  # inches between positions
LABEL_GAP = {"layer": 1.75, "cell": 2.2}  # from the first column to the row labels


def fold_range(n: int, steps: int | None, level: str = "layer") -> tuple[int, int] | None:
    """The positions [a, b) to fold, or None: ``steps`` keeps the first and last steps/2."""
    if steps is None:
        above, steps = AUTO_FOLD[level]
        if n <= above:
            return None
    if steps < 2:
        raise RenderError(f"--steps {steps} keeps too little", hint="keep at least 2 steps")
    head, tail = (steps + 1) // 2, steps // 2
    if n - head - tail < 2:  # folding a single step saves nothing
        return None
    return head, n - tail


def fold(G: nx.DiGraph, steps: int | None) -> nx.DiGraph:
    """A copy of ``G`` with the middle positions of every row folded into an ellipsis node."""
    n = G.graph["n"]
    rng = fold_range(n, steps, G.graph.get("level", "layer"))
    if rng is None:
        return G
    a, b = rng
    F = nx.DiGraph()
    F.graph.update(G.graph, folded=(a, b))
    mapped: dict[str, str] = {}
    folded_of: dict[str, list[str]] = {}
    for node, attrs in G.nodes(data=True):
        pos = attrs.get("pos")
        if isinstance(pos, int) and a <= pos < b:
            group = attrs.get("group")
            assert group is not None, f"{node} has a position but no fold group"
            mapped[node] = f"{group}.fold"
            folded_of.setdefault(mapped[node], []).append(node)
    # nodes in their original order; each ellipsis where its group's first folded node was
    for node, attrs in G.nodes(data=True):
        if node not in mapped:
            F.add_node(node, **attrs)
        elif mapped[node] not in F:
            F.add_node(mapped[node], **_ellipsis(G, folded_of[mapped[node]], b - a))
    for u, v, attrs in G.edges(data=True):
        mu, mv = mapped.get(u, u), mapped.get(v, v)
        if mu == mv:
            continue
        if F.has_edge(mu, mv):
            old = F.edges[mu, mv]
            if old.get("kind") == "attention" and "weight" in attrs:
                old["weight"] = old.get("weight", 0.0) + attrs["weight"]
                old["label"] = f"Σ {old['weight']:.2f}"
            continue
        F.add_edge(mu, mv, **attrs)
    return F


def _ellipsis(G: nx.DiGraph, nodes: list[str], m: int) -> dict[str, Any]:
    first = G.nodes[nodes[0]]
    norms = [
        G.nodes[x]["norm"]
        for x in nodes
        if G.nodes[x].get("norm") is not None and G.nodes[x]["kind"] == "state"
    ]
    weights = [G.nodes[x]["weight"] for x in nodes if G.nodes[x].get("weight") is not None]
    label = f"⋯ {m} steps ⋯" if first["kind"] not in ("word",) else f"⋯ {m} words ⋯"
    attrs: dict[str, Any] = {
        "kind": "fold",
        "pos": "fold",
        "group": first.get("group"),
        "y": first["y"],
        "dy": max(G.nodes[x].get("dy", 0.0) for x in nodes) / 2,
    }
    positive = [x for x in norms if x > 0]
    if positive:
        label += f'<BR/><FONT POINT-SIZE="7">{min(positive):.1e} … {max(positive):.1e}</FONT>'
        attrs["norm"] = math.exp(sum(math.log(x) for x in positive) / len(positive))
    if weights:
        label += f'<BR/><FONT POINT-SIZE="8">Σα {sum(weights):.2f}</FONT>'
    attrs["label"] = label
    return attrs


def place(G: nx.DiGraph) -> nx.DiGraph:
    """Give every node ``xy`` (inches): its column from ``pos``, its height from ``y``/``dy``."""
    level = G.graph.get("level", "layer")
    n = G.graph["n"]
    dx = DX[level]
    folded = G.graph.get("folded")
    order: list[Any] = [-1]
    for p in range(n):
        if folded and folded[0] <= p < folded[1]:
            if p == folded[0]:
                order.append("fold")
            continue
        order.append(p)
    order.append(n)
    widths = G.graph.get("widths") or {}  # columns that hold an inner chain are wider
    col, x = {}, 0.0
    for i, key in enumerate(order):  # the ellipsis column gets more room for its label
        wide = key == "fold" or (i > 0 and order[i - 1] == "fold")
        step = 1.35 * dx if wide else dx
        if i and (key in widths or order[i - 1] in widths):
            step = max(step, (widths.get(key, dx) + widths.get(order[i - 1], dx)) / 2)
        x += step if i else 0.0
        col[key] = x
    first, last = col[0] if 0 in col else col["fold"], col[n - 1] if n - 1 in col else col["fold"]
    anchors = {"first": first, "last": last, "center": (first + last) / 2}
    col["label"] = -LABEL_GAP[level]
    for node, attrs in G.nodes(data=True):
        pos = attrs.get("pos")
        x = anchors[attrs.get("anchor") or "center"] if pos is None else col[pos]
        attrs["xy"] = (x + attrs.get("dx", 0.0), attrs["y"] + attrs.get("dy", 0.0))
    return G
