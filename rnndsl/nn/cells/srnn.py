"""The Elman RNN: s_i = g(x_i W^x + s_{i-1} W^s + b), y_i = s_i (g = tanh or ReLU)."""

from __future__ import annotations

from ...autodiff import functional as F
from ...autodiff.ops import op
from ...autodiff.tensor import OuterGrad
from .step import CellType, TorchLayout, run_step, times_wt


def _srnn_core(xp, xg, carry, params, act="tanh"):
    (h,), (W,) = carry, params
    a = xp.matmul(h, W)
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
        return da, (times_wt(xp, da, W),), (OuterGrad([(h, da)]),)

    return (a,), vjp


@op("srnn_step", multi=True)
def srnn_step(xp, xg, h, W, mask=None, n=None, act: str = "tanh"):
    """s_i = R_SRNN(s_{i-1}, x_i) = g(s_{i-1} W^s + x_i W^x + b), g = tanh or ReLU; y_i = s_i."""
    return run_step(xp, _srnn_core, xg, (h,), (W,), mask, n, act=act)


class SRNNCell(CellType):
    name = "srnn"
    torch = TorchLayout("RNN")

    def step_call(self, cell, params, carry, xg, mask, n):
        return "srnn_step", (xg, carry[0], params["W_hh"], mask), {"n": n, "act": cell.act}

    def reference(self, cell, params, carry, xg):
        a = xg + F.matmul(carry[0], params["W_hh"])
        return (F.tanh(a) if cell.act == "tanh" else F.relu(a),)

    def torch_options(self, cell):
        return {"nonlinearity": cell.act}

    def layer_kernel(self, cell):
        return {"tanh": 0, "relu": 1}.get(cell.act)
