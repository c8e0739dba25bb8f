"""Gradient flow through time: ||dL/ds_t|| per step as numbers, a table and a plot.

The vanishing-gradient lesson: run an acceptor over a long input, put the loss on the final
vector, and look at how much of it reaches each earlier state. An S-RNN's norms shrink
geometrically towards the start; gated cells (LSTM, GRU) keep them much larger.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..autodiff import backend as Bk
from .tape import DIRECTIONS, Trace


def gradient_norms(tr: Trace) -> dict[str, Any]:
    """{layer: host array (D, n)}: ||dL/ds_i|| by direction and input position (0-based).

    For an LSTM s_i = [c_i; h_i]. The backward direction's state at position i is the one
    that has read x_n ... x_i.
    """
    if not tr.grad:
        raise ValueError("the trace was run without grad=True")
    return {layer: Bk.host.sqrt((a * a).sum(axis=-1)) for layer, a in tr.part_norms.items()}


def norm_series(tr: Trace, prefix: str = "") -> dict[str, list[float]]:
    """One named list of norms per layer and direction, e.g. {'lstm (fwd)': [...]}."""
    out: dict[str, list[float]] = {}
    for layer, arr in gradient_norms(tr).items():
        cell = tr.layers[layer].module.cell.kind
        for d in range(arr.shape[0]):
            name = f"{prefix}{layer} [{cell}]" + (
                f" ({DIRECTIONS[d]})" if arr.shape[0] == 2 else ""
            )
            out[name] = [float(v) for v in arr[d]]
    return out


def norms_table(named: Mapping[str, Sequence[float]], words: Sequence[str]) -> str:
    """A plain-text table: one row per position, one column per series."""
    names = list(named)
    wcol = max([4] + [len(w) for w in words])
    widths = [max(10, len(n)) for n in names]
    head = f"{'i':>4}  {'word':<{wcol}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths))
    lines = [head, "-" * len(head)]
    for i, w in enumerate(words):
        cells = "  ".join(f"{named[n][i]:>{wd}.3e}" for n, wd in zip(names, widths))
        lines.append(f"{i + 1:>4}  {w:<{wcol}}  {cells}")
    return "\n".join(lines)


def plot_norms(
    named: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    words: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Plot several norm series on one log-scale axis (e.g. S-RNN vs LSTM vs GRU) into a PNG."""
    import matplotlib  # matplotlib is slow to import; only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(len(v) for v in named.values())
    fig, ax = plt.subplots(figsize=(min(14.0, 4.0 + 0.18 * n), 3.8))
    for name, values in named.items():
        xs = [i + 1 for i, v in enumerate(values) if v > 0]
        ax.semilogy(xs, [v for v in values if v > 0], marker="o", markersize=3, label=name)
    ax.set_xlabel("position i")
    ax.set_ylabel("‖∂L/∂s_i‖")
    if words is not None and len(words) <= 40:
        ax.set_xticks(range(1, len(words) + 1))
        ax.set_xticklabels(words, rotation=60, fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
