"""Fused CPU kernels for a step's gate arithmetic (optional: needs Numba, float32 only).

The generic step ops in kernels.py do the LSTM gate arithmetic as about ten NumPy calls forward
and twenty backward, each a pass over a small (D, B, 4H) array; NumPy's float32 tanh is also a
slow loop on this kind of CPU (about 3 ns per element on an AVX2 EPYC, measured). Here each
direction of a step is one pass that reads the pre-activations once and writes the activated
gates, c, tanh(c) and h; the backward pass is one more. tanh is Eigen's rational approximation
(`generic_fast_tanh_float`, max error 3.3e-7 against float64 tanh on [-10, 10], measured), which
LLVM vectorizes with AVX2; sigma(x) = (tanh(x / 2) + 1) / 2.

No threads: Numba's thread pool and OpenBLAS's fight over 2 cores (measured: 16x slower).
``error_model='numpy'`` drops Python's zero-division check, without which the loops do not
vectorize; the fast-math flags leave out "no NaNs", so a NaN still reaches the loss check.
The kernels override the generic ones (`kernels.lstm_gate_kernels`) for float32 host arrays
when Numba imports; ``RNNDSL_FUSED=0`` turns them off, and tests/test_fused.py checks them
equal to the generic path.
"""

from __future__ import annotations

from numba import njit

from ..autodiff.backend import host as np
from ..autodiff.fused_host import JIT_OPTIONS as _JIT

F = np.float32


@njit(inline="always", **_JIT)
def _tanh(x):
    x = min(max(x, F(-7.90531110763549805)), F(7.90531110763549805))
    x2 = x * x
    p = x2 * F(-2.76076847742355e-16) + F(2.00018790482477e-13)
    p = x2 * p + F(-8.60467152213735e-11)
    p = x2 * p + F(5.12229709037114e-08)
    p = x2 * p + F(1.48572235717979e-05)
    p = x2 * p + F(6.37261928875436e-04)
    p = x2 * p + F(4.89352455891786e-03)
    p = x * p
    q = x2 * F(1.19825839466702e-06) + F(1.18534705686654e-04)
    q = x2 * q + F(2.26843463243900e-03)
    q = x2 * q + F(4.89352518554385e-03)
    return p / q


@njit(inline="always", **_JIT)
def _sigmoid(x):
    return F(0.5) * _tanh(F(0.5) * x) + F(0.5)


@njit(**_JIT)
def _lstm_row_forward(ai, af, ao, az, c, c_new, tc, h):
    for j in range(c.shape[0]):
        i = _sigmoid(ai[j])
        f = _sigmoid(af[j])
        o = _sigmoid(ao[j])
        z = _tanh(az[j])
        ai[j] = i
        af[j] = f
        ao[j] = o
        az[j] = z
        v = f * c[j] + i * z
        t = _tanh(v)
        c_new[j] = v
        tc[j] = t
        h[j] = o * t


@njit(**_JIT)
def _lstm_forward(a, c, c_new, tc, h):
    R, H = c.shape
    for r in range(R):
        _lstm_row_forward(a[r, :H], a[r, H:2 * H], a[r, 2 * H:3 * H], a[r, 3 * H:], c[r],
                          c_new[r], tc[r], h[r])


@njit(**_JIT)
def _lstm_row_backward(ai, af, ao, az, c, tc, gh, gc, di, df, do, dz, gc_prev):
    one = F(1)
    for j in range(c.shape[0]):
        i = ai[j]
        f = af[j]
        o = ao[j]
        z = az[j]
        t = tc[j]
        g_h = gh[j]
        g = gc[j] + g_h * o * (one - t * t)
        di[j] = g * z * i * (one - i)
        df[j] = g * c[j] * f * (one - f)
        do[j] = g_h * t * o * (one - o)
        dz[j] = g * i * (one - z * z)
        gc_prev[j] = g * f


@njit(**_JIT)
def _lstm_backward(a, c, tc, gh, gc, da, gc_prev):
    R, H = c.shape
    for r in range(R):
        _lstm_row_backward(a[r, :H], a[r, H:2 * H], a[r, 2 * H:3 * H], a[r, 3 * H:], c[r], tc[r],
                           gh[r], gc[r], da[r, :H], da[r, H:2 * H], da[r, 2 * H:3 * H],
                           da[r, 3 * H:], gc_prev[r])


def _rows(x, H):
    """A C-contiguous (R, H) view (a copy only when x is a strided slice)."""
    return np.ascontiguousarray(x).reshape(-1, H)


def lstm_gates_forward(xp, a, c):
    """Same contract as kernels._lstm_gates_forward: activates a in place, returns
    (c_new, tanh(c_new), h_new)."""
    H = c.shape[-1]
    out = np.empty((3,) + c.shape, dtype=a.dtype)  # one allocation for the three results
    rows = out.reshape(3, -1, H)
    # a comes from a matmul: contiguous, so its reshape is a view
    _lstm_forward(a.reshape(-1, 4 * H), _rows(c, H), rows[0], rows[1], rows[2])
    return out[0], out[1], out[2]


def lstm_gates_backward(xp, a, c, tc, gh, gc):
    """Same contract as kernels._lstm_gates_backward: (da, dL/dc_prev)."""
    H = c.shape[-1]
    zeros = None
    if gh is None or gc is None:
        zeros = np.zeros(c.shape, dtype=a.dtype)
    gh = zeros if gh is None else gh
    gc = zeros if gc is None else gc
    da = np.empty(a.shape, dtype=a.dtype)
    gc_prev = np.empty(c.shape, dtype=a.dtype)
    _lstm_backward(_rows(a, 4 * H), _rows(c, H), _rows(tc, H), _rows(gh, H), _rows(gc, H),
                   da.reshape(-1, 4 * H), gc_prev.reshape(-1, H))
    return da, gc_prev
