"""Fused CPU kernels for a step's gate arithmetic (optional: needs Numba, float32 only).

The generic step op in nn/cells/lstm.py does the LSTM gate arithmetic as about ten NumPy calls
forward and twenty backward, each a pass over a small (D, B, 4H) array; NumPy's float32 tanh is
also a slow loop on this kind of CPU (about 3 ns per element on an AVX2 EPYC, measured). Here each
direction of a step is one pass that reads the pre-activations once and writes the activated
gates, c, tanh(c) and h; the backward pass is one more. tanh is Eigen's rational approximation
(`generic_fast_tanh_float`, max error 3.3e-7 against float64 tanh on [-10, 10], measured), which
LLVM vectorizes with AVX2; sigma(x) = (tanh(x / 2) + 1) / 2.

No threads: Numba's thread pool and OpenBLAS's fight over 2 cores (measured: 16x slower).
``error_model='numpy'`` drops Python's zero-division check, without which the loops do not
vectorize; the fast-math flags leave out "no NaNs", so a NaN still reaches the loss check.
The kernels override the generic ones (`nn.cells.lstm.lstm_gate_kernels`) for float32 host arrays
when Numba imports; ``RNNDSL_FUSED=0`` turns them off, and tests/test_fused.py checks them
equal to the generic path.
"""

from __future__ import annotations

from numba import njit

from ..autodiff.backend import host as np
from .ops_cpu import JIT_OPTIONS as _JIT

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
    """Same contract as nn.cells.lstm._lstm_gates_forward: activates a in place, returns
    (c_new, tanh(c_new), h_new)."""
    H = c.shape[-1]
    out = np.empty((3,) + c.shape, dtype=a.dtype)  # one allocation for the three results
    rows = out.reshape(3, -1, H)
    # a comes from a matmul: contiguous, so its reshape is a view
    _lstm_forward(a.reshape(-1, 4 * H), _rows(c, H), rows[0], rows[1], rows[2])
    return out[0], out[1], out[2]


def lstm_gates_backward(xp, a, c, tc, gh, gc):
    """Same contract as nn.cells.lstm._lstm_gates_backward: (da, dL/dc_prev)."""
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


@njit(**_JIT)
def _lstm_small_step(xg, h, W, c, a, c_new, tc, h_new):
    D, B, G = xg.shape
    for d in range(D):
        for b in range(B):
            row = a[d, b]
            row[:] = xg[d, b]
            hb = h[d, b]
            K = hb.shape[0]
            k = 0
            while k + 4 <= K:  # four rows of W per pass: one load and store of `row` per 4 FMAs
                h0, h1, h2, h3 = hb[k], hb[k + 1], hb[k + 2], hb[k + 3]
                W0, W1, W2, W3 = W[d, k], W[d, k + 1], W[d, k + 2], W[d, k + 3]
                for g in range(G):
                    row[g] += h0 * W0[g] + h1 * W1[g] + h2 * W2[g] + h3 * W3[g]
                k += 4
            while k < K:
                hk = hb[k]
                Wk = W[d, k]
                for g in range(G):
                    row[g] += hk * Wk[g]
                k += 1
    H = G // 4
    _lstm_forward(a.reshape(-1, G), c.reshape(-1, H), c_new.reshape(-1, H), tc.reshape(-1, H),
                  h_new.reshape(-1, H))


SMALL_ROWS = 8  # directions x sequences up to which this beats NumPy's matmul + the gate kernel


def lstm_small_step(xg, h, c, W):
    """One LSTM step with no tape for a few sequences: h W + xg and the gates in one compiled
    call. For one sentence through a BiLSTM 128 (D = 2, B = 1) 13 us per step against 24 us for
    NumPy's matmul and the gate kernel (measured; equal at D x B = 16). float32 host arrays;
    returns (h_new, c_new)."""
    a = np.empty(xg.shape, dtype=xg.dtype)
    out = np.empty((3,) + c.shape, dtype=c.dtype)
    _lstm_small_step(xg, h, W, c, a, out[0], out[1], out[2])
    return out[2], out[0]
