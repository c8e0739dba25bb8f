"""The picture API for scripts and notebooks: what to draw (a spec, a run, a network) -> Picture.

    import rnndsl.render as R
    pic = R.unrolled("specs/pos_tagger.rnn", "the brown fox jumped", level="layer", grad=True)
    pic                          # shows inline in Jupyter (SVG)
    pic.save("fox.svg")          # or .png / .pdf / .dot
    pic.notes                    # what was folded or collapsed, words outside the vocabulary
    R.model("specs/pos_tagger.rnn").save("model.svg")

The first argument is a ``.rnn`` spec file (its train statement's model, else its last model;
the data it declares gives the vocabulary and, for a sentence found in it, the gold labels), a
run directory written by ``rnndsl run`` (its spec, vocabulary and best weights), a bare
pipeline such as ``"srnn(d=8) |> last"`` (run on fixed pseudo-random word vectors), or a
Network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import graphviz
import networkx as nx

from ..nn.network import Network
from . import dot as D
from .tape import RenderError

PIPELINE_INPUT_DIM = 8  # the word-vector size of a bare pipeline


@dataclass
class Target:
    """What a picture draws: the network, the data behind it (or None), and a display name."""

    net: Network
    data: Any
    name: str


@dataclass
class Picture:
    """A picture: its Graphviz graph, the networkx graph it was made from, and notes.

    Displays inline in Jupyter (``_repr_svg_`` / ``_repr_mimebundle_``, through Graphviz's
    ``dot`` under the same time limit as ``save``); ``save(path)`` writes DOT, SVG, PNG or PDF
    by the extension. ``source`` is the DOT text. Other attributes are the graphviz.Digraph's.
    """

    digraph: graphviz.Digraph
    graph: nx.DiGraph | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.digraph.source

    def save(self, path: str | os.PathLike) -> Path:
        """Write the picture; the format comes from the extension (.svg .png .pdf .dot)."""
        return D.write(self.digraph, path)

    def svg(self) -> str:
        """The picture as SVG text (needs Graphviz's ``dot``)."""
        return D.run_dot(self.digraph.source, "svg").decode("utf-8")

    def _repr_svg_(self) -> str:
        return self.svg()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **_: Any) -> dict:
        if not D.dot_available():
            return {"text/plain": repr(self)}
        return {"image/svg+xml": self.svg()}

    def __getattr__(self, name: str) -> Any:  # pipe, render, ... of the graphviz.Digraph
        if name == "digraph":
            raise AttributeError(name)
        return getattr(self.digraph, name)

    def __repr__(self) -> str:
        size = ""
        if self.graph is not None:
            size = f" {self.graph.number_of_nodes()} nodes, {self.graph.number_of_edges()} edges"
        return f"<rnndsl Picture{size}>"


def _quiet(msg: str) -> None:
    pass


def load_target(
    spec: Any, checkpoint: str | None = None, log: Callable[[str], None] = _quiet
) -> Target:
    """The network of a spec file, a trained run directory, a bare pipeline or a Network."""
    if isinstance(spec, Network):
        return Target(spec, None, str(spec.graph.graph.get("name") or "network"))
    if checkpoint is None and isinstance(spec, (str, os.PathLike)) and Path(spec).is_dir():
        checkpoint = os.fspath(spec)
    if checkpoint:
        from ..prepare import load_run

        if not Path(checkpoint).is_dir():
            raise RenderError(
                f"no run directory {checkpoint}", hint="give the --out folder of `rnndsl run`"
            )
        prep, run_dir = load_run(checkpoint, log=log)
        return Target(prep.net, prep.data, f"{prep.cfg.model} ({run_dir})")
    spec = os.fspath(spec)
    path = Path(spec)
    if path.suffix != ".rnn" and not path.exists() and ("|>" in spec or "(" in spec):
        from ..api import compile as compile_pipeline

        net = compile_pipeline(spec, input_dim=PIPELINE_INPUT_DIM)
        net.graph.graph.setdefault("name", spec)
        return Target(net, None, spec)
    if not path.is_file():
        raise RenderError(
            f"no spec file {spec}",
            hint="give a .rnn file, a run directory, or a pipeline in quotes like "
            '"srnn(d=8) |> last"',
        )
    from .. import lang
    from ..prepare import prepare

    checked = lang.load(str(path))
    if checked.train is not None:
        prep = prepare(checked, log=log)
        return Target(prep.net, prep.data, prep.cfg.model)
    if not checked.models:
        raise RenderError(f"{spec} defines no model")
    name = list(checked.models)[-1]
    data = checked.models[name].graph.get("data")
    if data is None:
        raise RenderError(
            f"model {name} of {spec} reads no data, so its input size is unknown",
            hint="add a train statement, or draw a pipeline with rnndsl.compile",
        )
    stand_in = SimpleNamespace(
        models=checked.models, data=checked.data, train=SimpleNamespace(model=name, data=data)
    )
    prep = prepare(stand_in, log=log)
    return Target(prep.net, prep.data, name)


def default_sentence(target: Target) -> list[str]:
    """The first dev (else training) sentence of the data, for a picture without input."""
    data = target.data
    for examples in (getattr(data, "dev", None), getattr(data, "train", None)):
        if examples:
            return list(examples[0].words)
    raise RenderError("give the sentence to unroll over", hint='--input "the brown fox jumped"')


def split_labels(labels: Any) -> Any:
    """``"DET ADJ NOUN"`` -> a list of tags; a single label stays a string; None stays None."""
    if isinstance(labels, str) and len(labels.split()) > 1:
        return labels.split()
    return labels


__all__ = [
    "Picture",
    "Target",
    "default_sentence",
    "load_target",
    "split_labels",
]
