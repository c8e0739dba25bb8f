"""A fused host kernel for the softmax of a large output layer (optional: Numba, float32).

NumPy's float32 exp is a slow loop on AVX2 CPUs (13 ms for 4M elements, 3x torch.exp, measured),
and a (400, 10000) softmax (the PTB language model) is 4M of them per step. Here each row is two
vectorised passes: the maximum, then exp(x - max) (Cephes' expf polynomial with 2^k put into the
exponent bits; relative error 1e-6 against float64, measured) and the row sum. `nogil`: the row
blocks of backend.row_blocks run on several threads. Used by ops.softmax_cross_entropy and (with
the output layer's bias added in the same sweep, the probabilities written in place) by
ops.linear_softmax_xent for float32 host arrays when Numba imports; RNNDSL_FUSED=0 turns it
off; tests/test_fused.py checks it against the NumPy path.
"""

from __future__ import annotations

from numba import njit

from ..autodiff.backend import host as np

F = np.float32
JIT_OPTIONS = dict(fastmath={"contract", "arcp", "afn", "reassoc"},  # all of kernels/
                   boundscheck=False, error_model="numpy", cache=True)


@njit(inline="always", **JIT_OPTIONS)
def _exp_parts(v, bits, j):
    """exp(v) for v <= 0 as p * 2^k: returns p and puts the float 2^k's bits into bits[j]."""
    v = max(v, F(-87.0))  # exp(-87) is near the smallest normal float32
    k = np.floor(v * F(1.44269504088896341) + F(0.5))
    r = v - k * F(0.693359375) - k * F(-2.12194440e-4)
    p = F(1.9875691500e-4)
    p = p * r + F(1.3981999507e-3)
    p = p * r + F(8.3334519073e-3)
    p = p * r + F(4.1665795894e-2)
    p = p * r + F(1.6666665459e-1)
    p = p * r + F(5.0000001201e-1)
    bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
    return p * r * r + r + F(1)


@njit(**JIT_OPTIONS)
def _row(x, e, bits):
    m = x[0]
    for j in range(x.shape[0]):
        m = max(m, x[j])
    for j in range(x.shape[0]):
        e[j] = _exp_parts(x[j] - m, bits, j)
    scale = bits.view(np.float32)
    s = F(0)
    for j in range(x.shape[0]):
        v = e[j] * scale[j]
        e[j] = v
        s += v
    return m, s


@njit(**JIT_OPTIONS)
def _bias_softmax_row(x, b, bits):
    """x <- softmax(x + b) in place (each pass reads and writes the same element, so LLVM
    vectorizes it; e and x as two names of one row did not: 2x slower, measured)."""
    m = x[0] + b[0]
    for j in range(x.shape[0]):
        v = x[j] + b[j]
        x[j] = v
        m = max(m, v)
    for j in range(x.shape[0]):
        x[j] = _exp_parts(x[j] - m, bits, j)
    scale = bits.view(np.float32)
    s = F(0)
    for j in range(x.shape[0]):
        s += x[j] * scale[j]
    inv = F(1) / s
    for j in range(x.shape[0]):
        x[j] = x[j] * scale[j] * inv
    return m, s


@njit(nogil=True, **JIT_OPTIONS)
def bias_softmax_rows(z, b, t, m, s, picked):
    """For each row r of z (R, C): picked = (z + b)[t[r]], then z <- softmax(z + b) in place,
    with m = max(z + b) and s = sum(exp(z + b - m)) (all (R,)): a linear layer's logits to
    probabilities in one vectorised sweep per row (ops.linear_softmax_xent)."""
    bits = np.empty(z.shape[1], dtype=np.int32)
    for r in range(z.shape[0]):
        picked[r] = z[r, t[r]] + b[t[r]]
        mr, sr = _bias_softmax_row(z[r], b, bits)
        m[r] = mr
        s[r] = sr


@njit(nogil=True, **JIT_OPTIONS)
def softmax_rows(x, e, m, s):
    """For each row of x (R, C): m = max, e = exp(x - m), s = sum(e); m and s are (R, 1)."""
    bits = np.empty(x.shape[1], dtype=np.int32)
    for r in range(x.shape[0]):
        mr, sr = _row(x[r], e[r], bits)
        m[r, 0] = mr
        s[r, 0] = sr


@njit(nogil=True, **JIT_OPTIONS)
def sum_runs(values, order, run, out):
    """out[run[k]] += values[order[k]] for each k: the rows of a row-sparse gradient summed
    per distinct index (NumPy's add.reduceat down axis 0 takes 0.85 ms for 800 x 100)."""
    for k in range(order.shape[0]):
        src = values[order[k]]
        dst = out[run[k]]
        for j in range(src.shape[0]):
            dst[j] += src[j]
