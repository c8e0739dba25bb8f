"""The size of a checked model: parameters and the memory one training step needs, estimated in
``check`` against this machine's memory, so a model that cannot fit is an error at its train
statement and not a run that dies allocating hundreds of gigabytes.

The estimate: float32 parameters kept four times (weights, gradients, Adam's two moments), plus
the activations back-propagation through time keeps for one batch of ``ESTIMATE_LENGTH`` tokens:
each node's output, and for a recurrent layer its gates too (``ACTIVATION_FACTOR`` outputs). Sizes
that need the data (the vocabulary of an embedding) count when ``sizes`` gives them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from .. import limits
from ..errors import Diagnostic
from . import catalogue as C
from .ir import walk
from .summary import node_params

ESTIMATE_LENGTH = 50  # tokens of a typical sequence, for the activation estimate
ACTIVATION_FACTOR = {"recurrent": 8, "embedding": 1}  # outputs kept per node for its backward
BYTES = 4  # float32


@dataclass(frozen=True)
class Estimate:
    params: int  # parameters the model has (at least, when a size is unknown)
    step_bytes: int  # memory of one training step
    complete: bool  # every size was known


def machine_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def estimate(g: nx.DiGraph, batch: int, sizes: Mapping[str, int] | None = None) -> Estimate:
    """Parameters and step memory of one model graph for batches of ``batch`` sequences."""
    params, activations, complete = 0, 0, True
    for node, a in walk(g):
        n = node_params(g, node, sizes)
        if n is None:
            complete = False
        else:
            params += n
        dim = getattr(a.get("out_type"), "dim", None)
        if isinstance(dim, int):
            layer = C.LAYERS.get(a.get("layer", ""))
            factor = ACTIVATION_FACTOR.get(layer.category if layer else "", 2)
            activations += factor * dim
    step = BYTES * (4 * params + batch * ESTIMATE_LENGTH * activations)
    return Estimate(params, step, complete)


def _gb(n: int) -> str:
    if n < 1024**3:
        return f"{n / 1024**2:,.1f} MiB"
    return f"{n / 1024**3:,.1f} GiB"


def describe(est: Estimate, memory: int | None) -> str:
    """The line the summary shows under a model's table."""
    at_least = "" if est.complete else "at least "
    text = f"Estimated memory per training step: {at_least}{_gb(est.step_bytes)}"
    if memory:
        text += f" (this machine has {_gb(memory)})"
    return text


def diagnostics(checked: object) -> list[Diagnostic]:
    """An error at the train (or eval) statement for each model over the parameter limit or
    over this machine's memory."""
    out: list[Diagnostic] = []
    train = getattr(checked, "train", None)
    batch = int(getattr(train, "batch", 32) or 32)
    memory = machine_memory()
    spec = getattr(checked, "spec", None)
    statements = {
        getattr(st.model, "name", None): st
        for st in getattr(spec, "statements", ())
        if hasattr(st, "model")
    }
    for name, g in getattr(checked, "models", {}).items():
        est = estimate(g, batch)
        st = statements.get(name)
        span = getattr(st, "span", None)
        if est.params > limits.MAX_PARAMETERS:
            out.append(Diagnostic(
                "ModelTooLarge",
                f"model {name} has {est.params:,} parameters, over the limit of "
                f"{limits.MAX_PARAMETERS:,} (rnndsl.limits.MAX_PARAMETERS)",
                span,
                "make d smaller or stack fewer layers",
            ))
        elif memory and est.step_bytes > memory:
            out.append(Diagnostic(
                "ModelTooLarge",
                f"model {name} needs about {_gb(est.step_bytes)} per training step (batch "
                f"{batch}, {ESTIMATE_LENGTH} tokens), more than this machine's {_gb(memory)}",
                span,
                "make d or the batch smaller, or stack fewer layers",
            ))
    return out
