"""IndRNN (Li et al. 2018): s_i = g(x_i W + u * s_{i-1} + b), y_i = s_i (g = ReLU or tanh).

The recurrent weight u is a vector (one weight per unit, * element-wise): each unit reads only
its own previous state, so a step is no matrix product, and with ReLU and |u| <= 1 the gradient
through time neither explodes nor vanishes as fast as an Elman RNN's. It is the layer's W_hh,
of shape (D, 1, d) (``CellDef.diagonal``). PyTorch has no IndRNN: tests/cell_references.py holds
a NumPy reference of the equation.
"""

from __future__ import annotations

from ...autodiff import functional as F
from ...autodiff.ops import op
from .step import CellType, run_step


def _indrnn_core(xp, xg, carry, params, act="relu"):
    (h,), (u,) = carry, params
    a = h * u
    a += xg
    if act == "tanh":
        xp.tanh(a, out=a)
    else:
        xp.maximum(a, 0, out=a)

    def vjp(gs):
        (gh,) = gs
        if gh is None:
            gh = xp.zeros_like(a)
        da = gh * (1 - a * a) if act == "tanh" else gh * (a > 0)
        return da, (da * u,), ((da * h).sum(axis=-2, keepdims=True),)

    return (a,), vjp


@op("indrnn_step", multi=True)
def indrnn_step(xp, xg, h, u, mask=None, n=None, act: str = "relu"):
    """s_i = g(x_i W + u * s_{i-1} + b): xg (D, B, H) = x_i W + b, h (D, B, H), u (D, 1, H)."""
    return run_step(xp, _indrnn_core, xg, (h,), (u,), mask, n, act=act)


class IndRNNCell(CellType):
    name = "indrnn"

    def step_call(self, cell, params, carry, xg, mask, n):
        return "indrnn_step", (xg, carry[0], params["W_hh"], mask), {"n": n, "act": cell.act}

    def reference(self, cell, params, carry, xg):
        a = xg + carry[0] * params["W_hh"]
        return (F.tanh(a) if cell.act == "tanh" else F.relu(a),)
