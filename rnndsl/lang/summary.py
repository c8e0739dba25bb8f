"""A Keras-like summary table of each model: layers, output types, parameter counts.

Counts come from each layer's count rule in the catalogue. A count that needs a vocabulary or
tag-set size shows ``?`` until ``sizes`` gives it (``{"ewt.words": 19674, "ewt.tags": 17}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from . import catalogue as C
from .ir import inputs_of, walk
from .results import CheckedSpec
from .types import with_dim


def node_params(g: nx.DiGraph, node: str, sizes: Mapping[str, int] | None = None) -> int | None:
    """The parameter count of one IR node; None when a size it needs is unknown."""
    a = g.nodes[node]
    layer = C.LAYERS.get(a["layer"])
    if layer is None or layer.count is None:
        return 0
    size = (sizes or {}).get
    t_in = a["in_types"][0] if a["in_types"] else None
    return layer.count(a["params"], t_in, size)


def _sizes_needed(a: Mapping[str, Any]) -> list[str]:
    params = a["params"]
    if a["kind"] == "embed":
        return [params["source"]]
    if a["kind"] in ("softmax", "crf") and params.get("classes") is None:
        return [params["target"]]
    return []


def model_table(g: nx.DiGraph, sizes: Mapping[str, int] | None = None) -> str:
    """The summary table of one model graph."""
    rows = [("Layer", "Type", "Output", "Params")]
    total, missing = 0, []
    for node, a in walk(g):
        n = node_params(g, node, sizes)
        if n is None:
            missing += [s for s in _sizes_needed(a) if s not in missing]
        else:
            total += n
        label = a["label"]
        ins = inputs_of(g, node)
        if a["kind"] == "concat" and len(ins) > 1:
            label = f"{label} <- {', '.join(ins)}"
        out_type = a["out_type"]
        if a["kind"] in ("softmax", "crf") and out_type.dim is None:
            out_type = with_dim(out_type, (sizes or {}).get(a["params"]["target"]))
        rows.append((node, label, str(out_type), "?" if n is None else f"{n:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    widths[1] = min(widths[1], 48)

    def line(r: tuple[str, str, str, str]) -> str:
        kind = r[1] if len(r[1]) <= widths[1] else r[1][: widths[1] - 3] + "..."
        return (
            f"{r[0]:<{widths[0]}}  {kind:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}"
        ).rstrip()

    rule = "-" * len(line(rows[0]).ljust(sum(widths) + 6))
    head = f"Model: {g.graph['name']}" + (
        f" (data: {g.graph['data']})" if g.graph.get("data") else ""
    )
    out = [head, rule, line(rows[0]), rule, *(line(r) for r in rows[1:]), rule]
    if missing:
        out.append(f"Total params: {total:,} + ? (needs the sizes of {', '.join(missing)})")
    else:
        out.append(f"Total params: {total:,}")
    return "\n".join(out)


def summary_table(checked: CheckedSpec, sizes: Mapping[str, int] | None = None) -> str:
    """The summary tables of every model a spec trains or evaluates."""
    if not checked.models:
        return "No model: the spec has no train or eval statement."
    return "\n\n".join(model_table(g, sizes) for g in checked.models.values())
