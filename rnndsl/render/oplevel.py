"""The op level: every node of the tape, the cells run as their primitive reference ops.

One picture node per tape node, named by its scope and op (``<layer>.t3.sigmoid``, a second
sigmoid of the same scope ``<layer>.t3.sigmoid_2``), edges from the tape's ordered parents
(``[k]`` names the output of a multi-output op such as ``unbind``). Leaves: the parameters (by
name, in their layer's cluster) and the input. Clusters: one per layer, and inside a recurrent
layer one per time step. A step op covers both directions of a bi layer (the D axis), as on the
tape. Long inputs fold the middle steps of each layer into one ellipsis node. Laid out by dot,
left to right (time runs left to right because step t depends on step t-1).
"""

from __future__ import annotations

import math
import re

import networkx as nx

from ..autodiff.backend import to_host
from ..autodiff.tensor import Node, Tensor
from ..nn.module import NestedValue, Parameter
from .labels import esc, fmt_norm
from .layout import fold_range
from .tape import DIRECTIONS, Trace, owner_of

_STEP = re.compile(r"t(\d+)(?:\.|$)")


def build_ops(tr: Trace, steps: int | None = None) -> nx.DiGraph:
    """The op-level picture graph of a trace (run with ``reference=True``)."""
    graph = tr.net.graph
    ids = sorted(graph.nodes, key=len, reverse=True)
    rng = fold_range(tr.n, steps, "op")
    # each recurrent layer folds by its own step count (a character encoder's steps are the
    # characters of the longest word, a span model's outer layer runs over the spans)
    ranges = {k: fold_range(lt.steps, steps, "op") for k, lt in tr.layers.items()}
    G = nx.DiGraph(
        layout="dot",
        rankdir="LR",
        grad=tr.grad,
        n=tr.n,
        level="op",
        clusters={},
        folded=rng,
        words=list(tr.source.words),
        loss=tr.loss_info.text,
    )
    names: dict[int, str] = {}
    counts: dict[str, int] = {}
    fold_ops: dict[str, int] = {}
    carried = _carry_index(tr)
    for node in tr.tape:
        owner = owner_of(node.scope, ids)
        step = _step_of(node.scope, owner)
        lrng = ranges.get(owner) if owner is not None else None
        if owner in tr.layers and step is not None and lrng and lrng[0] <= step < lrng[1]:
            name = f"{owner}.fold"
            names[id(node)] = name
            fold_ops[name] = fold_ops.get(name, 0) + 1
            if name not in G:
                G.add_node(name, kind="fold", label="", cluster=owner)
            continue
        base = f"{node.scope}.{node.op}" if node.scope else f"tape.{node.op}"
        k = counts[base] = counts.get(base, 0) + 1
        name = base if k == 1 else f"{base}_{k}"
        names[id(node)] = name
        cluster = None
        if owner is not None:
            cluster = owner if step is None or owner not in tr.layers else f"{owner}/t{step}"
            G.graph["clusters"].setdefault(owner, esc(graph.nodes[owner].get("label") or owner))
            if step is not None and owner in tr.layers:
                G.graph["clusters"][cluster] = _step_title(tr, owner, step)
        kind = "stepop" if step is not None and owner in tr.layers else "op"
        label = f'{esc(node.op)}<BR/><FONT POINT-SIZE="7">{_shape(node)}</FONT>'
        norm = None
        if node is tr.loss.node:
            kind, label = "total", f'L<BR/><FONT POINT-SIZE="8">{tr.loss_info.text}</FONT>'
        elif tr.grad and id(node) in carried:
            extra, norm = _norm_label(tr, carried[id(node)])
            label += extra
        G.add_node(
            name,
            kind=kind,
            label=label,
            cluster=cluster,
            norm=norm,
            tooltip=f"{node.op} in scope {node.scope or '(none)'}",
        )
    for name, count in fold_ops.items():
        a, b = ranges[name[: -len(".fold")]]
        G.nodes[name]["label"] = (
            f'⋯ steps {a}…{b - 1} ⋯<BR/><FONT POINT-SIZE="8">{b - a} steps, {count} ops</FONT>'
        )
    leaves: dict[int, str] = {}
    for node in tr.tape:
        child = names[id(node)]
        for p in node.parents:
            if p is None:
                continue
            src = names[id(p.node)] if p.node is not None else _leaf(G, tr, p, leaves, ids)
            if src == child:
                continue
            label = f"[{p.index}]" if p.node is not None and p.node.n_out > 1 else ""
            if not G.has_edge(src, child):
                G.add_edge(src, child, kind="tape", label=label)
    _sentence(G, tr, ids, names)
    return G


def _step_of(scope: str, owner: str | None) -> int | None:
    if owner is None or len(scope) <= len(owner):
        return None
    m = _STEP.match(scope[len(owner) + 1 :])
    return int(m.group(1)) if m else None


def _shape(node: Node) -> str:
    shapes = node.out_shapes
    if len(shapes) > 3:
        return f"{len(shapes)} × {tuple(shapes[0])}"
    return ", ".join(str(tuple(s)) for s in shapes)


def _carry_index(tr: Trace) -> dict[int, tuple[str, int, int]]:
    """id(node that made a carry) -> (layer, step, carry part)."""
    out = {}
    for layer, lt in tr.layers.items():
        for k, carry in enumerate(lt.carries):
            for j, t in enumerate(carry):
                if t.node is not None:
                    out[id(t.node)] = (layer, k, j)
    return out


def _step_title(tr: Trace, layer: str, step: int) -> str:
    """t=k; for a nested layer also the items its step reads (one per inner sequence)."""
    lt = tr.layers[layer]
    if not lt.nested:
        return f"t={step}"
    text = "all inner sequences at once (one column each)"
    items = _inner_items(tr, layer)
    if items is not None:
        for d in range(lt.D):
            read = [
                seq[lt.inner_position(d, step, len(seq))] if step < len(seq) else "·"
                for seq in items
            ]
            line = " ".join(read)
            if len(line) > 48:
                line = line[:47] + "…"
            text += f"<BR/>{DIRECTIONS[d] + ' ' if lt.D == 2 else ''}reads: {esc(line)}"
    return f't={step}<BR/><FONT POINT-SIZE="7">{text}</FONT>'


def _inner_items(tr: Trace, layer: str) -> list[list[str]] | None:
    """The items of each column of a nested layer's batch: a word's characters, a span's
    words (None when they cannot be told)."""
    value = tr.values.get(layer)
    if not isinstance(value, NestedValue):
        return None
    words = tr.source.words
    cols = [int(i) for i in to_host(value.outer_index).reshape(-1)]
    lengths = [int(x) for x in value.inner.info.lengths]
    spans = tr.source.inputs.get("__spans__")
    if spans is not None and any(
        tr.net.graph.nodes[a]["kind"] == "split" for a in nx.ancestors(tr.net.graph, layer)
    ):
        index = to_host(spans[0])
        return [[words[int(index[j, i])] for j in range(lengths[i])] for i in range(len(cols))]
    out = []
    for i, row in enumerate(cols):
        chars = list(words[row]) if row < len(words) else []
        if len(chars) != lengths[i]:
            return None
        out.append(chars)
    return out


def _norm_label(tr: Trace, where: tuple[str, int, int]) -> tuple[str, float]:
    layer, k, j = where
    lt = tr.layers[layer]
    part = lt.module.cell.carries[j]
    if lt.nested:  # the norm over all inner sequences (columns) of the step
        vals = [
            math.sqrt(float((tr.inner_norms[layer][d, :, k, j] ** 2).sum())) for d in range(lt.D)
        ]
    else:
        vals = [tr.norm(layer, d, lt.position(d, k), j) for d in range(lt.D)]
    text = " ".join(
        f"{DIRECTIONS[d] if lt.D == 2 else ''} {fmt_norm(v)}".strip() for d, v in enumerate(vals)
    )
    label = f'<BR/><FONT POINT-SIZE="8">‖∂L/∂{part}‖ {text}</FONT>'
    return label, math.sqrt(sum(v * v for v in vals))


def _leaf(G: nx.DiGraph, tr: Trace, t: Tensor, leaves: dict[int, str], ids: list[str]) -> str:
    if id(t) in leaves:
        return leaves[id(t)]
    shape = "×".join(str(s) for s in t.shape)
    if isinstance(t, Parameter):
        name, label = f"param.{t.name}", f'{esc(t.name)}<BR/><FONT POINT-SIZE="7">{shape}</FONT>'
        owner = owner_of(t.name or "", ids)
        cluster = owner if owner is not None else None
    elif t is tr.source.leaf:
        name, label, cluster = "input.x", f'x<BR/><FONT POINT-SIZE="7">{shape}</FONT>', None
    else:
        name = f"leaf.{len(leaves)}"
        label, cluster = f'tensor<BR/><FONT POINT-SIZE="7">{shape}</FONT>', None
    G.add_node(name, kind="leaf", label=label, cluster=cluster)
    leaves[id(t)] = name
    return name


def _sentence(G: nx.DiGraph, tr: Trace, ids: list[str], names: dict[int, str]) -> None:
    """The words, linked to the input leaf or to the embedding lookups."""
    G.add_node("words", kind="sentence", label=esc(" ".join(tr.source.words)), cluster=None)
    if "input.x" in G:
        G.add_edge("words", "input.x", kind="word")
        return
    graph = tr.net.graph
    for node in tr.tape:
        owner = owner_of(node.scope, ids)
        if owner is not None and graph.nodes[owner]["kind"] == "embed":
            G.add_edge("words", names[id(node)], kind="word")
