"""A fused host kernel for the softmax of a large output layer (optional: Numba, float32).

NumPy's float32 exp is a slow loop on AVX2 CPUs (13 ms for 4M elements, 3x torch.exp, measured),
and a (400, 10000) softmax (the PTB language model) is 4M of them per step. Here each row is two
vectorised passes: the maximum, then exp(x - max) (Cephes' expf polynomial with 2^k put into the
exponent bits; relative error 1e-6 against float64, measured) and the row sum. `nogil`: the row
blocks of backend.row_blocks run on several threads. Used by ops.softmax_cross_entropy for
float32 host arrays when Numba imports; RNNDSL_FUSED=0 turns it off; tests/test_fused.py checks
it against the NumPy path.
"""

from __future__ import annotations

from numba import njit

from .backend import host as np

F = np.float32
JIT_OPTIONS = dict(fastmath={"contract", "arcp", "afn", "reassoc"},  # also nn/fused_cpu.py
                   boundscheck=False, error_model="numpy", cache=True)


@njit(**JIT_OPTIONS)
def _row(x, e, bits):
    m = x[0]
    for j in range(x.shape[0]):
        m = max(m, x[j])
    for j in range(x.shape[0]):
        v = max(x[j] - m, F(-87.0))  # exp(-87) is near the smallest normal float32
        k = np.floor(v * F(1.44269504088896341) + F(0.5))
        r = v - k * F(0.693359375) - k * F(-2.12194440e-4)
        p = F(1.9875691500e-4)
        p = p * r + F(1.3981999507e-3)
        p = p * r + F(8.3334519073e-3)
        p = p * r + F(4.1665795894e-2)
        p = p * r + F(1.6666665459e-1)
        p = p * r + F(5.0000001201e-1)
        e[j] = p * r * r + r + F(1)
        bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)  # the float 2^k
    scale = bits.view(np.float32)
    s = F(0)
    for j in range(x.shape[0]):
        v = e[j] * scale[j]
        e[j] = v
        s += v
    return m, s


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
