"""networkx picture graphs -> graphviz.Digraph -> DOT, SVG, PNG or PDF files.

The picture graphs (unrolled, op level, model) are networkx DiGraphs whose nodes carry a
``kind`` and an HTML ``label``; this module gives each kind its look, colours states and
recurrent edges by ||dL/ds_t|| on a log scale with a legend, and writes files. The DOT text is
deterministic: nodes and edges in the graph's insertion order, names from scopes, coordinates
rounded. SVG/PNG/PDF need Graphviz's ``dot`` program; without it the DOT file is still written
and the error says how to install Graphviz.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import graphviz
import networkx as nx

from ..errors import GraphvizMissing, RenderError

FORMATS = ("dot", "gv", "svg", "png", "pdf")
FONT = "Helvetica"
# Neato routes curved edges around nodes, but its router is slow on big graphs: above these
# edge counts a grid picture gets simple curves, then straight lines, and drops the dashed
# lines from each shared theta to its steps (the theta note still says it is shared).
# Measured with Graphviz 2.43 (2026-12-04): routed splines took 2.7 s for 146 edges; curved
# ones 0.3 s for 150 edges, 1.4 s for 250, 14 s for 350 and over 60 s for 530 (the cell level
# of deepmoji_sst2 over 8 words); straight lines 0.15 s for 530.
SPLINES_ROUTED = 120
SPLINES_CURVED = 240
# dot's newrank (which keeps the op level's time steps in order left to right) grows fast with
# the graph: 0.3 s for 76 edges, 2.4 s for 100, 14 s for 124, over 30 s for 148; without it a
# 30-word S-RNN's op level (192 edges) takes 0.2 s.
NEWRANK_EDGES = 90
DOT_TIMEOUT = 60.0  # seconds; RNNDSL_DOT_TIMEOUT overrides

NODE_STYLE: dict[str, dict[str, str]] = {
    "word": {"shape": "plaintext", "fontsize": "13", "fontname": "Times-Italic"},
    "char": {"shape": "plaintext", "fontsize": "12", "fontname": "Courier"},
    "collapsed": {"shape": "box", "style": "rounded,filled,dashed", "fillcolor": "#eef4fa"},
    "input": {"shape": "box", "style": "rounded", "color": "gray35"},
    "state": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbe9f6"},
    "s0": {"shape": "box", "style": "rounded,dashed", "color": "gray40", "fontsize": "10"},
    "param": {
        "shape": "note",
        "style": "dashed",
        "color": "gray45",
        "fontsize": "10",
        "fontcolor": "gray25",
    },
    "gate": {
        "shape": "circle",
        "width": "0.36",
        "fixedsize": "true",
        "fontsize": "11",
        "style": "filled",
        "fillcolor": "white",
    },
    "proposal": {
        "shape": "circle",
        "width": "0.4",
        "fixedsize": "false",
        "fontsize": "10",
        "style": "filled",
        "fillcolor": "#ece2f0",
    },
    "concat": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff6d5"},
    "position": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f2f2f2"},
    "vector": {"shape": "box", "style": "rounded,filled", "fillcolor": "#f2f2f2"},
    "pool": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff6d5"},
    "output": {"shape": "box", "style": "rounded,filled", "fillcolor": "#e5f5e0"},
    "tag": {"shape": "box", "style": "rounded,bold,filled", "fillcolor": "#e5f5e0"},
    "loss": {"shape": "box", "style": "filled", "fillcolor": "#fde0dd", "fontsize": "10"},
    "total": {"shape": "box", "style": "filled,bold", "fillcolor": "#fcc5c0", "fontsize": "11"},
    "rowlabel": {"shape": "plaintext", "fontsize": "10", "fontcolor": "gray25"},
    "fold": {"shape": "box", "style": "dotted", "color": "gray50", "fontsize": "10"},
    "legend": {"shape": "plaintext", "fontsize": "9"},
    # the op level
    "op": {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": "#f2f2f2",
        "fontsize": "9",
        "height": "0.25",
    },
    "stepop": {
        "shape": "box",
        "style": "rounded,filled",
        "fillcolor": "#dbe9f6",
        "fontsize": "9",
        "height": "0.25",
    },
    "leaf": {
        "shape": "box",
        "style": "dashed",
        "color": "gray45",
        "fontsize": "9",
        "height": "0.25",
    },
    "sentence": {"shape": "plaintext", "fontsize": "12", "fontname": "Times-Italic"},
    # the model graph
    "layer": {"shape": "plaintext", "fontsize": "10"},
}

EDGE_STYLE: dict[str, dict[str, str]] = {
    "word": {"arrowhead": "none", "style": "dotted", "color": "gray50"},
    "data": {"color": "gray30", "arrowsize": "0.6"},
    "cell": {"color": "gray30", "arrowsize": "0.5"},
    "recurrent": {"color": "black", "penwidth": "1.6", "arrowsize": "0.7"},
    "param": {"style": "dashed", "color": "gray65", "arrowhead": "none"},
    "chain": {"color": "#238b45", "penwidth": "1.8", "arrowsize": "0.7"},
    "attention": {"color": "#b15928", "arrowsize": "0.6", "fontsize": "8", "fontcolor": "#b15928"},
    "loss": {"color": "#cb181d", "arrowsize": "0.6"},
    "tape": {"color": "gray35", "arrowsize": "0.5", "fontsize": "7"},
    "ir": {"color": "gray25", "arrowsize": "0.7", "fontsize": "8"},
}

# viridis, sampled: small gradients dark blue-violet, large ones yellow
_VIRIDIS = (
    (0.267, 0.005, 0.329),
    (0.283, 0.141, 0.458),
    (0.254, 0.265, 0.530),
    (0.207, 0.372, 0.553),
    (0.164, 0.471, 0.558),
    (0.128, 0.567, 0.551),
    (0.135, 0.659, 0.518),
    (0.267, 0.749, 0.441),
    (0.478, 0.821, 0.318),
    (0.741, 0.873, 0.150),
    (0.993, 0.906, 0.144),
)


def colour(t: float) -> str:
    """The colour of t in [0, 1] on the viridis scale, as #rrggbb."""
    t = min(1.0, max(0.0, t)) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    f = t - i
    rgb = [a + (b - a) * f for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1])]
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


class LogScale:
    """Maps gradient norms to [0, 1] by log10 between the smallest and largest one shown."""

    def __init__(self, values: Iterable[float]):
        logs = [math.log10(v) for v in values if v is not None and v > 0 and math.isfinite(v)]
        self.lo = math.floor(min(logs)) if logs else -1.0
        self.hi = math.ceil(max(logs)) if logs else 0.0
        if self.hi - self.lo < 1:
            self.hi = self.lo + 1

    def __call__(self, v: float | None) -> float | None:
        if v is None or not (v > 0) or not math.isfinite(v):
            return None
        return (math.log10(v) - self.lo) / (self.hi - self.lo)

    def legend(self) -> str:
        """An HTML table: a colour swatch per decade from lo to hi."""
        decades = list(range(int(self.lo), int(self.hi) + 1))
        cells = "".join(
            f'<TD BGCOLOR="{colour(self((10.0**d)))}" WIDTH="28"> </TD>' for d in decades
        )
        ticks = "".join(f'<TD><FONT POINT-SIZE="8">1e{d}</FONT></TD>' for d in decades)
        return (
            f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">'
            f'<TR><TD COLSPAN="{len(decades)}">numbers and colours: <B>‖∂L/∂s<SUB>t</SUB>‖</B>'
            f" (log scale)</TD></TR>"
            f"<TR>{cells}</TR><TR>{ticks}</TR></TABLE>"
        )


def _fmt(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".") if v != 0 else "0"


_LONE_AFTER_SCRIPT = re.compile(r"(</SU[BP]>)([^<&\s])(?=<BR/>|</TD>|$)")


def _html(label: str) -> str:
    """An HTML-like label; lines with sub/superscripts go in table rows, which Graphviz spaces
    properly (with <BR/> a subscript runs into the next line)."""
    # Graphviz 2.43 drops a lone character after a sub/superscript at the end of a line (the
    # "]" of y_i = [s_i^f; s_i^b]); a hair space after it keeps it
    label = _LONE_AFTER_SCRIPT.sub(r"\1\2&#8202;", label)
    if "<BR/>" in label and ("<SUB>" in label or "<SUP>" in label):
        rows = "".join(f"<TR><TD>{line}</TD></TR>" for line in label.split("<BR/>"))
        label = f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">{rows}</TABLE>'
    return f"<{label}>"


def _luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b


def to_graphviz(G: nx.DiGraph, title: str | None = None) -> graphviz.Digraph:
    """A picture graph as a graphviz.Digraph (grid layout via neato, or dot's own layout)."""
    grid = G.graph.get("layout") == "grid"
    dg = graphviz.Digraph(name="rnndsl", strict=False)
    gattrs = {"fontname": FONT, "fontsize": "12", "labelloc": "t"}
    n_edges = G.number_of_edges()
    splines = (
        "true" if n_edges <= SPLINES_ROUTED else "curved" if n_edges <= SPLINES_CURVED else "line"
    )
    if grid:
        gattrs.update(layout="neato", splines=splines, overlap="true", outputorder="edgesfirst")
    else:
        gattrs.update(rankdir=G.graph.get("rankdir", "LR"), nodesep="0.18", ranksep="0.3")
        if n_edges <= NEWRANK_EDGES:
            gattrs["newrank"] = "true"
    if title:
        gattrs["label"] = _html(title)
    dg.attr("graph", **gattrs)
    dg.attr("node", fontname=FONT, fontsize="11", margin="0.06,0.03")
    dg.attr("edge", fontname=FONT)
    scale = None
    if G.graph.get("grad"):
        scale = LogScale(a.get("norm") for _, a in G.nodes(data=True))
    clusters: dict[str, list[str]] = {}
    plain: list[str] = []
    for node, attrs in G.nodes(data=True):
        (clusters.setdefault(attrs["cluster"], []) if attrs.get("cluster") else plain).append(node)
    for node in plain:
        dg.node(node, **_node_attrs(G.nodes[node], grid, scale))
    _clusters(dg, G, clusters, grid, scale)
    for u, v, attrs in G.edges(data=True):
        if grid and splines != "true" and attrs.get("kind") == "param":
            continue
        dg.edge(u, v, **_edge_attrs(attrs, scale))
    if scale is not None and grid:
        top = max(a["xy"][1] for _, a in G.nodes(data=True)) + 0.9
        left = min(a["xy"][0] for _, a in G.nodes(data=True))
        dg.node(
            "legend",
            label=_html(scale.legend()),
            pos=f"{left:.3f},{top:.3f}!",
            **NODE_STYLE["legend"],
        )
    elif scale is not None:
        dg.node("legend", label=_html(scale.legend()), **NODE_STYLE["legend"])
    return dg


def _clusters(
    dg: graphviz.Digraph,
    G: nx.DiGraph,
    clusters: Mapping[str, list[str]],
    grid: bool,
    scale: LogScale | None,
) -> None:
    """Nested clusters: a name 'a/b' is cluster b inside cluster a (op level: layer / step)."""
    titles = G.graph.get("clusters", {})
    tree: dict[str, Any] = {}
    for name, nodes in clusters.items():
        parts = name.split("/")
        cur = tree
        for k in range(len(parts)):
            cur = cur.setdefault("/".join(parts[: k + 1]), {})
        cur.setdefault("__nodes__", []).extend(nodes)

    def emit(parent: graphviz.Digraph, sub: Mapping[str, Any]) -> None:
        for name, body in sub.items():
            if name == "__nodes__":
                continue
            with parent.subgraph(name="cluster_" + name) as c:
                c.attr(
                    label=_html(titles.get(name, name.split("/")[-1])),
                    style="rounded",
                    color="gray70",
                    fontsize="9",
                    fontcolor="gray30",
                    margin="6",
                    labelloc="b",
                    labeljust="r",
                )
                for node in body.get("__nodes__", []):
                    c.node(node, **_node_attrs(G.nodes[node], grid, scale))
                emit(c, body)

    emit(dg, tree)


def _node_attrs(attrs: Mapping[str, Any], grid: bool, scale: LogScale | None) -> dict[str, str]:
    out = dict(NODE_STYLE.get(attrs["kind"], {}))
    out["label"] = _html(attrs["label"])
    if grid and "xy" in attrs:
        x, y = attrs["xy"]
        out["pos"] = f"{x:.3f},{y:.3f}!"
    if attrs.get("tooltip"):
        out["tooltip"] = str(attrs["tooltip"])
    t = scale(attrs.get("norm")) if scale is not None else None
    if t is not None:
        fill = colour(t)
        styles = [s for s in out.get("style", "").split(",") if s]
        out["style"] = ",".join(styles + ([] if "filled" in styles else ["filled"]))
        out["fillcolor"] = fill
        out["fontcolor"] = "white" if _luminance(fill) < 0.45 else "black"
    return out


def _edge_attrs(attrs: Mapping[str, Any], scale: LogScale | None) -> dict[str, str]:
    kind = attrs.get("kind", "data")
    out = dict(EDGE_STYLE.get(kind, {}))
    if attrs.get("label"):
        out["label" if kind != "attention" else "xlabel"] = str(attrs["label"])
    if kind == "attention" and attrs.get("weight") is not None:
        out["penwidth"] = _fmt(0.4 + 5.0 * float(attrs["weight"]))
    t = scale(attrs.get("norm")) if scale is not None and kind == "recurrent" else None
    if t is not None:
        out["color"] = colour(t)
        out["penwidth"] = _fmt(1.0 + 2.5 * t)
    return out


# --- files ---------------------------------------------------------------------------------------
def output_format(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise RenderError(
            f"cannot write {Path(path).name!r}: unknown picture format "
            f"{'.' + ext if ext else '(no extension)'}",
            hint="name the output FILE.svg, FILE.png, FILE.pdf or FILE.dot",
        )
    return "dot" if ext == "gv" else ext


def dot_available() -> bool:
    return shutil.which("dot") is not None


def write(dg: Any, path: str | os.PathLike) -> Path:
    """Write ``dg`` (a graphviz.Digraph or a Picture) as DOT, SVG, PNG or PDF (by the file
    extension); returns the path written.

    Raises GraphvizMissing (after writing FILE.dot) when a picture format is asked for and
    Graphviz's ``dot`` is not installed.
    """
    dg = getattr(dg, "digraph", dg)  # a Picture
    path = Path(path)
    fmt = output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        _atomic_write(path, dg.source.encode("utf-8"))
        return path
    if not dot_available():
        dot_path = path.with_suffix(".dot")
        _atomic_write(dot_path, dg.source.encode("utf-8"))
        raise GraphvizMissing(
            f"cannot make {path.name}: Graphviz's `dot` program is not installed; "
            f"the DOT source was written to {dot_path}",
            hint="install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
            f"install graphviz), then run: dot -T{fmt} {dot_path} -o {path}",
        )
    data = run_dot(dg.source, fmt, what=path.name, dot_path=path.with_suffix(".dot"))
    _atomic_write(path, data)
    return path


def dot_timeout() -> float:
    """The time limit of one `dot` run in seconds (RNNDSL_DOT_TIMEOUT, default 60)."""
    raw = os.environ.get("RNNDSL_DOT_TIMEOUT")
    if not raw:
        return DOT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise RenderError(
            f"RNNDSL_DOT_TIMEOUT={raw!r} is not a positive number of seconds",
            hint="e.g. RNNDSL_DOT_TIMEOUT=120",
        )
    return value


def run_dot(
    source: str,
    fmt: str,
    *,
    what: str = "the picture",
    dot_path: Path | None = None,
    timeout: float | None = None,
) -> bytes:
    """Graphviz's ``dot -T<fmt>`` on DOT text, under a time limit; returns its output.

    On a timeout the DOT text is kept at ``dot_path`` (when given) and a RenderError says how
    big the graph was and how to make it smaller.
    """
    limit = dot_timeout() if timeout is None else timeout
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(
            "cannot run Graphviz's dot: it is not on PATH",
            hint="apt-get install graphviz / brew install graphviz",
        )
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True, timeout=limit
        )
    except subprocess.TimeoutExpired:
        kept = ""
        if dot_path is not None:
            _atomic_write(dot_path, source.encode("utf-8"))
            kept = f"; the DOT source was written to {dot_path}"
        nodes = len(_DOT_NODE.findall(source))
        edges = source.count(" -> ")
        raise RenderError(
            f"Graphviz's dot did not finish {what} within {limit:g} s ({nodes} nodes, "
            f"{edges} edges){kept}",
            hint="fold more of the input (--steps 6), draw a lower level (--level layer), "
            "or allow more time: RNNDSL_DOT_TIMEOUT=SECONDS",
        ) from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip()
        raise RenderError(f"Graphviz failed to draw {what}: {err}")
    return done.stdout


_DOT_NODE = re.compile(r"^\t\S+ \[", re.M)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a picture."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
