"""The model graph: the checked IR, one box per layer with its output type and parameter count."""

from __future__ import annotations

import dataclasses
from typing import Any

import networkx as nx

from ..nn.network import Network, ordered_inputs, ordered_nodes
from .labels import esc

KIND_COLOUR = {
    "input": "#ffffff",
    "embed": "#f2f2f2",
    "rnn": "#dbe9f6",
    "dropout": "#ffffff",
    "concat": "#fff6d5",
    "pool": "#fff6d5",
    "linear": "#f2f2f2",
    "mlp": "#f2f2f2",
    "split": "#fff6d5",
    "softmax": "#e5f5e0",
    "crf": "#e5f5e0",
}


def model_graph(net_or_graph: Network | nx.DiGraph) -> nx.DiGraph:
    """The IR as a picture graph (dot layout, bottom to top like the lecture's figures).

    With a Network each box shows its layer's parameter count; with a bare IR graph (no data
    read yet) the counts are left out.
    """
    net = net_or_graph if isinstance(net_or_graph, Network) else None
    ir = net.graph if net is not None else net_or_graph
    G = nx.DiGraph(layout="dot", rankdir="BT", grad=False, clusters={})
    defs = {n: _definition(n, a) for n, a in ir.nodes(data=True) if a.get("kind") != "input"}
    several = len(set(defs.values())) > 1  # a box per named definition when there are several
    for n in ordered_nodes(ir):
        cluster = defs.get(n) if several else None
        if cluster:
            G.graph["clusters"][cluster] = f"<B>{esc(cluster)}</B>"
        attrs = dict(ir.nodes[n], out_type=_out_type(net, n, ir.nodes[n]))
        G.add_node(n, kind="layer", label=_box(n, attrs, _param_count(net, n)), cluster=cluster)
    for n in ordered_nodes(ir):
        ins = ordered_inputs(ir, n)
        for k, p in enumerate(ins):
            t = _out_type(net, p, ir.nodes[p])
            label = str(t) if t is not None else ""
            if len(ins) > 1:
                label = f"{k + 1}: {label}"
            G.add_edge(p, n, kind="ir", label=label)
    return G


def _out_type(net: Network | None, n: str, a: dict[str, Any]) -> Any:
    """The node's output type; a head's class count (unknown to the checker, which has not
    read the data) filled in from the built network."""
    t = a.get("out_type")
    if t is None or getattr(t, "dim", 0) is not None or net is None:
        return t
    size = getattr(net.modules.get(n), "n", None)
    return dataclasses.replace(t, dim=int(size)) if isinstance(size, int) else t


def _definition(n: str, a: dict[str, Any]) -> str:
    """The named definition a node belongs to: its id is ``<definition>.<stage>.<layer>``."""
    return str(a.get("definition") or n.split(".")[0])


def _param_count(net: Network | None, n: str) -> int | None:
    if net is None:
        return None
    m = net.modules.get(n)
    return m.parameter_count() if m is not None else 0


def _params_text(a: dict[str, Any]) -> str:
    p = a.get("params") or {}
    shown = []
    for k, v in p.items():
        if k in ("cell", "bidirectional") or v is None:
            continue
        if isinstance(v, (list, tuple)):
            v = ".".join(str(x) for x in v) if all(isinstance(x, str) for x in v) else list(v)
        shown.append(f"{k}={v}")
    return ", ".join(shown)


def _box(n: str, a: dict[str, Any], count: int | None) -> str:
    kind = a.get("kind", "?")
    if a.get("label"):  # the source text of the stage, as written in the spec
        rows = [f"<B>{esc(a['label'])}</B>"]
    else:
        params = _params_text(a)
        rows = [f"<B>{esc(a.get('layer') or kind)}</B>" + (f"({esc(params)})" if params else "")]
    rows.append(f'<FONT POINT-SIZE="8" COLOR="gray35">{esc(n)}</FONT>')
    if a.get("out_type") is not None:
        rows.append(f"→ {esc(a['out_type'])}")
    if count is not None:
        rows.append(
            f'<FONT POINT-SIZE="9">{count:,} parameters</FONT>'
            if count
            else '<FONT POINT-SIZE="9">no parameters</FONT>'
        )
    cells = "".join(f"<TR><TD>{r}</TD></TR>" for r in rows)
    colour = KIND_COLOUR.get(kind, "#ffffff")
    return (
        f'<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2" '
        f'STYLE="rounded" BGCOLOR="{colour}">{cells}</TABLE>'
    )
