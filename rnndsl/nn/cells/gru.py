"""The GRU in two forms: the lecture's (Cho et al. 2014, the reset gate before the matrix) and
the "reset after" form of cuDNN and PyTorch. Gate order (r, z, n), PyTorch's too."""

from __future__ import annotations

from ...autodiff import backend as Bk
from ...autodiff import functional as F
from ...autodiff.ops import op
from ...autodiff.tensor import OuterGrad
from ...errors import TorchStateError
from .step import CellType, TorchLayout, gpu_kernels, run_step, sigmoid_, times_wt

FUSED_GRU_CPU = "rnndsl.kernels.gru_cpu"  # the Numba override of the GRU gates


def gru_gate_kernels(xp, hh) -> tuple:
    """The GRU gate arithmetic: Numba for float32 host arrays (kernels/gru_cpu.py), the CuPy
    kernel for contiguous CuPy arrays, else the generic."""
    fused = _cpu_kernels(xp, hh) if xp is Bk.host else gpu_kernels(xp, hh)
    if fused is not None:
        return fused.gru_gates_forward, fused.gru_gates_backward
    return _gru_gates_forward, _gru_gates_backward


def _cpu_kernels(xp, a):
    """kernels.gru_cpu for float32 host arrays when the fused kernels are on, else None."""
    if a.dtype != Bk.host.float32:
        return None
    return Bk.fused_module(FUSED_GRU_CPU)


def _gru_core(xp, xg, carry, params):
    (h,), (W, bh) = carry, params
    hh = xp.matmul(h, W)
    hh += bh
    gates_forward, gates_backward = gru_gate_kernels(xp, hh)
    saved, h_new = gates_forward(xp, xg, hh, h)

    def vjp(gs):
        (gh,) = gs
        dxg, dhh, gh_z = gates_backward(xp, saved, hh, h, gh)
        g_h = times_wt(xp, dhh, W)
        g_h += gh_z
        return dxg, (g_h,), (OuterGrad([(h, dhh)]), dhh.sum(axis=-2, keepdims=True))

    return (h_new,), vjp


def _gru_gates_forward(xp, xg, hh, h):
    """The GRU gates of one step from xg and hh = h W + b_h: (saved for the backward, h_new)."""
    H = h.shape[-1]
    rz = xg[..., : 2 * H] + hh[..., : 2 * H]
    sigmoid_(xp, rz)
    r, z = rz[..., :H], rz[..., H:]
    n = r * hh[..., 2 * H :]
    n += xg[..., 2 * H :]
    xp.tanh(n, out=n)
    h_new = h - n
    h_new *= z
    h_new += n
    return (rz, n), h_new


def _gru_gates_backward(xp, saved, hh, h, gh):
    """(dL/dxg, dL/dhh, gh * z): the cotangents of the step's two projections, and the part of
    dL/dh that passes through the update gate."""
    rz, n = saved
    H = h.shape[-1]
    r, z = rz[..., :H], rz[..., H:]
    if gh is None:
        gh = xp.zeros_like(h)
    gz = gh * (h - n)
    dan = gh * (1 - z) * (1 - n * n)
    dxg = xp.empty(hh.shape, dtype=hh.dtype)
    dxg[..., :H] = dan * hh[..., 2 * H :] * r * (1 - r)
    dxg[..., H : 2 * H] = gz * z * (1 - z)
    dxg[..., 2 * H :] = dan
    dhh = dxg.copy()
    dhh[..., 2 * H :] *= r
    return dxg, dhh, gh * z


@op("gru_step", multi=True)
def gru_step(xp, xg, h, W, bh, mask=None, n=None):
    """GRU in the "reset after" form of cuDNN and PyTorch (b_h is (D, 1, 3H)).

    r = sigma(x W^xr + h W^hr + b_r),  z = sigma(x W^xz + h W^hz + b_z)
    n = tanh(x W^xn + b_xn + r * (h W^hn + b_hn)),  h' = (1 - z) * n + z * h
    """
    return run_step(xp, _gru_core, xg, (h,), (W, bh), mask, n)


def _gru_lecture_core(xp, xg, carry, params):
    fused = _cpu_kernels(xp, xg) if xp is Bk.host else None
    if fused is not None:
        return fused.gru_lecture_core(xp, xg, carry, params)
    (h,), (W,) = carry, params
    H = h.shape[-1]
    W_rz, W_n = W[..., : 2 * H], W[..., 2 * H :]
    rz = xp.matmul(h, W_rz)
    rz += xg[..., : 2 * H]
    sigmoid_(xp, rz)
    r, z = rz[..., :H], rz[..., H:]
    rh = r * h
    n = xp.matmul(rh, W_n)
    n += xg[..., 2 * H :]
    xp.tanh(n, out=n)
    h_new = n - h
    h_new *= z
    h_new += h

    def vjp(gs):
        (gh,) = gs
        if gh is None:
            gh = xp.zeros_like(h)
        dxg = xp.empty(xg.shape, dtype=xg.dtype)
        dan = gh * z * (1 - n * n)
        dxg[..., 2 * H :] = dan
        g_rh = times_wt(xp, dan, W_n)
        dxg[..., :H] = g_rh * h * r * (1 - r)
        dxg[..., H : 2 * H] = gh * (n - h) * z * (1 - z)
        g_h = times_wt(xp, dxg[..., : 2 * H], W_rz)
        g_h += gh * (1 - z)
        g_h += g_rh * r
        g_W = xp.concatenate(
            [xp.matmul(xp.swapaxes(h, -1, -2), dxg[..., : 2 * H]),
             xp.matmul(xp.swapaxes(rh, -1, -2), dan)],
            axis=-1,
        )
        return dxg, (g_h,), (g_W,)

    return (h_new,), vjp


@op("gru_lecture_step", multi=True)
def gru_lecture_step(xp, xg, h, W, mask=None, n=None):
    """GRU as in the lecture (Cho et al. 2014): the reset gate acts before the matrix.

    z = sigma(x W^xz + s W^sz),  r = sigma(x W^xr + s W^sr)
    s~ = tanh(x W^xs + (r * s) W^sg),  s' = (1 - z) * s + z * s~
    """
    return run_step(xp, _gru_lecture_core, xg, (h,), (W,), mask, n)


class GRUCell(CellType):
    name = "gru"
    torch = TorchLayout("GRU")

    def layer_kernel(self, cell):
        return 3 if cell.reset == "after" else 4

    def step_call(self, cell, params, carry, xg, mask, n):
        W = params["W_hh"]
        if cell.reset == "after":
            return "gru_step", (xg, carry[0], W, params["b_hh"], mask), {"n": n}
        return "gru_lecture_step", (xg, carry[0], W, mask), {"n": n}

    def reference(self, cell, params, carry, xg):
        W, h = params["W_hh"], carry[0]
        H = h.shape[-1]
        if cell.reset == "after":
            hh = F.matmul(h, W) + params["b_hh"]
            r = F.sigmoid(xg[..., :H] + hh[..., :H])
            z = F.sigmoid(xg[..., H : 2 * H] + hh[..., H : 2 * H])
            n = F.tanh(xg[..., 2 * H :] + r * hh[..., 2 * H :])
            return ((1.0 - z) * n + z * h,)
        rz = F.sigmoid(xg[..., : 2 * H] + F.matmul(h, W[..., : 2 * H]))
        r, z = rz[..., :H], rz[..., H:]
        n = F.tanh(xg[..., 2 * H :] + F.matmul(r * h, W[..., 2 * H :]))
        return ((1.0 - z) * h + z * n,)

    def hidden_bias(self, cell):
        return cell.reset == "after"  # b_hn sits inside r * (h W + b_hn)

    def forget_gate(self, cell):
        # gate order (r, z, n); the lecture's GRU keeps s_{j-1} with weight 1 - z, the
        # reset-after (PyTorch) form with weight z: the bias leans z towards keeping
        return 1, 1.0 if cell.reset == "after" else -1.0

    def check_torch(self, cell):
        if cell.reset == "before":
            raise TorchStateError(
                "this GRU is the lecture's form (reset gate before the matrix), "
                "which PyTorch's nn.GRU does not compute",
                hint='use gru(d=..., reset="after") for PyTorch/cuDNN-compatible weights',
            )
