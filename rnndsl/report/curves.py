"""Training curves: loss (train and dev), each dev metric, the learning rate, by epoch.

Every series has its own colour and marker, the epoch axis has integer ticks only, and each
kind of number has its own panel (losses, percentages, perplexity, learning rate), so no two
series share a colour or a scale they do not have in common.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# (key in an epoch record, label, colour, marker); colours of the Okabe-Ito palette, told apart
# also by people with colour-blindness, and markers besides
LOSSES = (("train_loss", "train loss", "#0072B2", "o"), ("dev_loss", "dev loss", "#D55E00", "s"))
SCORES = (("dev_accuracy", "dev accuracy", "#009E73", "o"),
          ("dev_f1", "dev F1", "#CC79A7", "s"),
          ("dev_macro_f1", "dev macro-F1", "#E69F00", "^"),
          ("dev_precision", "dev precision", "#56B4E9", "v"),
          ("dev_recall", "dev recall", "#000000", "D"))
PERPLEXITY = (("dev_perplexity", "dev perplexity", "#D55E00", "s"),)
LR = (("lr", "learning rate", "#555555", "o"),)
PANELS = (("loss", LOSSES), ("dev score (%)", SCORES), ("perplexity", PERPLEXITY),
          ("learning rate", LR))


def panels(history: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[tuple]]]:
    """The panels that have data: (y label, [(key, label, colour, marker), ...])."""
    out = []
    for ylabel, series in PANELS:
        have = [s for s in series if any(isinstance(r.get(s[0]), (int, float)) for r in history)]
        if ylabel == "dev score (%)":  # micro-F1 repeats accuracy or F1: not drawn twice
            have = [s for s in have if s[0] != "dev_micro_f1"]
        if have:
            out.append((ylabel, have))
    return out


def _draw(ax: Any, history: Sequence[Mapping[str, Any]], ylabel: str, series: list[tuple]
          ) -> None:
    from matplotlib.ticker import MaxNLocator

    for key, label, colour, marker in series:
        pts = [(r["epoch"], r[key]) for r in history if isinstance(r.get(key), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=colour,
                label=label, linewidth=1.6, markersize=5)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ylabel == "learning rate":
        values = [r["lr"] for r in history if isinstance(r.get("lr"), (int, float))]
        if values and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        if ax.get_yscale() == "linear":
            ax.set_ylim(0, max(values, default=1) * 1.15 or 1)  # a constant lr: one level line
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_curve(run_dir: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """curve.png: the panels side by side (written atomically)."""
    ps = panels(history)
    if not history or not ps:
        return
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ps), figsize=(3.6 * len(ps), 3.2), squeeze=False)
    for ax, (ylabel, series) in zip(axes[0], ps):
        _draw(ax, history, ylabel, series)
    fig.tight_layout()
    tmp = Path(run_dir) / ".curve.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(Path(run_dir) / "curve.png")


def panel_svgs(history: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Each panel as (title, SVG text), for the report."""
    plt = _pyplot()
    out = []
    for ylabel, series in panels(history):
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        _draw(ax, history, ylabel, series)
        fig.tight_layout()
        buf = io.StringIO()
        with plt.rc_context({"svg.hashsalt": "rnndsl"}):  # the same run, the same page
            fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
        out.append((ylabel, buf.getvalue()))
    return out


__all__ = ["panel_svgs", "panels", "save_curve"]
