"""The LSTM: s_j = [c_j; h_j], gates i, f, o and proposal z (Hochreiter & Schmidhuber 1997).

Internal gate order (i, f, o, z), so the three sigmoids are one contiguous block; PyTorch's is
(i, f, g, o). The gate arithmetic has fused overrides (Numba on the host, CuPy on a GPU), tested
equal to the generic one here.
"""

from __future__ import annotations

from typing import Any

from ...autodiff import backend as Bk
from ...autodiff import functional as F
from ...autodiff.ops import op
from ...autodiff.tensor import OuterGrad
from .step import FUSED_CPU, CellType, TorchLayout, gpu_kernels, run_step, times_wt


def lstm_gate_kernels(xp, a) -> tuple:
    """The gate arithmetic for this step: a fused kernel (an override of the generic one, tested
    equal to it) when there is one for these arrays, else the generic. Fused: Numba for
    contiguous float32 host arrays, a CuPy ElementwiseKernel for contiguous CuPy arrays."""
    if xp is Bk.host:
        if a.dtype == Bk.host.float32 and a.flags.c_contiguous:
            fused = Bk.fused_module(FUSED_CPU)
            if fused is not None:
                return fused.lstm_gates_forward, fused.lstm_gates_backward
    else:
        fused = gpu_kernels(xp, a)
        if fused is not None:
            return fused.lstm_gates_forward, fused.lstm_gates_backward
    return _lstm_gates_forward, _lstm_gates_backward


def lstm_small_step_kernel(xp, W, rows: int):
    """kernels.cells_cpu.lstm_small_step for a tape-free step of at most SMALL_ROWS rows
    (directions x sequences) of float32 host arrays when Numba is there, else None."""
    if xp is Bk.host and W.dtype == Bk.host.float32:
        fused = Bk.fused_module(FUSED_CPU)
        if fused is not None and rows <= fused.SMALL_ROWS:
            return fused.lstm_small_step
    return None


def _lstm_core(xp, xg, carry, params):
    h, c = carry
    (W,) = params
    a = xp.matmul(h, W)
    a += xg
    gates_forward, gates_backward = lstm_gate_kernels(xp, a)
    c_new, tc, h_new = gates_forward(xp, a, c)

    def vjp(gs):
        gh, gc = gs
        da, gc_prev = gates_backward(xp, a, c, tc, gh, gc)
        g_h = times_wt(xp, da, W)
        # dW = h^T da, summed with the other steps' in one product when it is read
        return da, (g_h, gc_prev), (OuterGrad([(h, da)]),)

    return (h_new, c_new), vjp


def _lstm_gates_forward(xp, a, c):
    """The gate arithmetic of one step: activates a in place, returns (c_new, tanh(c_new), h_new).
    """
    H = c.shape[-1]
    s3 = a[..., : 3 * H]
    s3 *= 0.5  # sigma(x) = (tanh(x / 2) + 1) / 2: one tanh call for all four gates
    xp.tanh(a, out=a)
    s3 *= 0.5
    s3 += 0.5
    i, f, o, z = a[..., :H], a[..., H : 2 * H], a[..., 2 * H : 3 * H], a[..., 3 * H :]
    c_new = f * c
    tc = i * z
    c_new += tc
    xp.tanh(c_new, out=tc)
    return c_new, tc, o * tc


def _lstm_gates_backward(xp, a, c, tc, gh, gc):
    """(da, dL/dc_prev) from the activated gates a and the cotangents of h_new and c_new.

    Written as few whole-array ufunc calls into preallocated buffers (at a step's sizes each
    NumPy call costs more than its arithmetic): the activation derivatives of all four gates
    in one array, the four upstream factors into da, one product.
    """
    H = c.shape[-1]
    i, f, o, z = a[..., :H], a[..., H : 2 * H], a[..., 2 * H : 3 * H], a[..., 3 * H :]
    deriv = xp.empty_like(a)
    s3, dz = deriv[..., : 3 * H], deriv[..., 3 * H :]
    xp.subtract(1, a[..., : 3 * H], out=s3)
    s3 *= a[..., : 3 * H]  # sigma' = s (1 - s) for i, f, o
    xp.multiply(z, z, out=dz)
    xp.subtract(1, dz, out=dz)  # tanh' = 1 - z^2
    da = xp.empty_like(a)
    if gh is None:
        gct = xp.zeros_like(c) if gc is None else gc.copy()
        da[..., 2 * H : 3 * H] = 0
    else:
        g_o = da[..., 2 * H : 3 * H]
        xp.multiply(gh, tc, out=g_o)  # dL/do, before sigma'
        gct = xp.multiply(tc, tc)
        xp.subtract(1, gct, out=gct)
        gct *= o
        gct *= gh
        if gc is not None:
            gct += gc
    xp.multiply(gct, z, out=da[..., :H])
    xp.multiply(gct, c, out=da[..., H : 2 * H])
    xp.multiply(gct, i, out=da[..., 3 * H :])
    da *= deriv
    gct *= f
    return da, gct


@op("lstm_step", multi=True)
def lstm_step(xp, xg, h, c, W, mask=None, n=None):
    """s_j = R_LSTM(s_{j-1}, x_j) = [c_j; h_j] with the lecture's gates plus biases.

    i = sigma(.), f = sigma(.), o = sigma(.), z = tanh(x_j W^x + h_{j-1} W^h + b)
    c_j = f * c_{j-1} + i * z,   h_j = o * tanh(c_j)
    """
    return run_step(xp, _lstm_core, xg, (h, c), (W,), mask, n)


class LSTMCell(CellType):
    name = "lstm"
    torch = TorchLayout("LSTM", (0, 1, 3, 2))  # torch (i, f, g, o) -> ours (i, f, o, z=g)

    def layer_kernel(self, cell):
        return 2

    def step_call(self, cell, params, carry, xg, mask, n):
        return "lstm_step", (xg, carry[0], carry[1], params["W_hh"], mask), {"n": n}

    def reference(self, cell, params, carry, xg):
        W, h, c = params["W_hh"], carry[0], carry[1]
        H = h.shape[-1]
        a = xg + F.matmul(h, W)
        i = F.sigmoid(a[..., :H])
        f = F.sigmoid(a[..., H : 2 * H])
        o = F.sigmoid(a[..., 2 * H : 3 * H])
        z = F.tanh(a[..., 3 * H :])
        c_new = f * c + i * z
        return (o * F.tanh(c_new), c_new)

    def small_step(self, xp: Any, params: dict[str, Any], rows: int) -> Any:
        return lstm_small_step_kernel(xp, params["W_hh"], rows)

    def forget_gate(self, cell):
        return 1, 1.0  # internal gate order (i, f, o, z): the forget block is the second
