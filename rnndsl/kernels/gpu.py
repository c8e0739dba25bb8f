"""Fused GPU kernels for a recurrent step and the optimizer (CuPy; float32 and float64).

The generic step ops in nn/cells/ spell the LSTM gates as about ten array calls forward and
twenty backward, and on a GPU each call is a kernel launch (plus CuPy's Python dispatch) over a
tiny (D, B, 4H) array: at a tagger's sizes the host's launching, not the arithmetic, is the
step. Here a step's gates are one ElementwiseKernel forward and one backward, each thread
handling one (row, unit) element and its gates, and the gradient product d W^T goes to cuBLAS's
strided-batched GEMM directly (CuPy's matmul copies the transposed W first). Same contracts and
arithmetic as the generic functions (sigma(x) = (tanh(x / 2) + 1) / 2), tested equal to them on
CuPy in tests/test_fused_gpu.py; they override the generic ones for contiguous CuPy arrays
(`nn.cells.lstm.lstm_gate_kernels`, `nn.cells.gru.gru_gate_kernels`,
`nn.cells.step.times_wt`) unless
``RNNDSL_FUSED=0``. Adam and lazy Adam are the GPU twins of kernels/optim_cpu.py. CuPy itself is
reached through the arrays' namespace ``xp`` and autodiff/backend.py, never imported here.

Host time per call, measured on an H100 machine in one process (median of 5 x 1000 calls):
gate kernel 21.0 us as an ElementwiseKernel, 24.8 us as a RawKernel with its Python argument
handling (so not kept); h W 21.2 us through cupy.matmul, 20.6 us through cuBLAS directly (so
left to cupy.matmul); d W^T 36.3 us through cupy.matmul of the swapped W, 23.7 us through cuBLAS
with W transposed in place (kept).

The kernel bodies are plain C++ (T is the element type, ``i`` the element's index, raw arrays
are indexed, the others are this element's value); tests/test_fused_gpu.py also compiles them
with the host's C++ compiler and checks them against NumPy, so a machine without a GPU still
tests their arithmetic.
"""

from __future__ import annotations

from ..autodiff import backend as Bk

# a (R, 4H) raw, row r = i / H, unit j = i % H; gates (i, f, o, z) at offsets 0, H, 2H, 3H
LSTM_FORWARD = """
const long long k = (i / H) * 4 * H + i % H;
const T gi = T(0.5) * tanh(T(0.5) * a[k]) + T(0.5);
const T gf = T(0.5) * tanh(T(0.5) * a[k + H]) + T(0.5);
const T go = T(0.5) * tanh(T(0.5) * a[k + 2 * H]) + T(0.5);
const T gz = tanh(a[k + 3 * H]);
a[k] = gi;
a[k + H] = gf;
a[k + 2 * H] = go;
a[k + 3 * H] = gz;
const T v = gf * c + gi * gz;
const T t = tanh(v);
c_new = v;
tc = t;
h = go * t;
"""

LSTM_BACKWARD = """
const long long k = (i / H) * 4 * H + i % H;
const T gi = a[k], gf = a[k + H], go = a[k + 2 * H], gz = a[k + 3 * H];
const T t = tc;
const T g = gc + gh * go * (T(1) - t * t);
da[k] = g * gz * gi * (T(1) - gi);
da[k + H] = g * c * gf * (T(1) - gf);
da[k + 2 * H] = gh * t * go * (T(1) - go);
da[k + 3 * H] = g * gi * (T(1) - gz * gz);
gc_prev = g * gf;
"""

# xg, hh (R, 3H) raw (hh = h W + b_h), gates (r, z, n) (n is u here: CuPy reserves the name n);
# s (R, 3H) keeps r, z, u for the backward
GRU_FORWARD = """
const long long k = (i / H) * 3 * H + i % H;
const T r = T(0.5) * tanh(T(0.5) * (xg[k] + hh[k])) + T(0.5);
const T z = T(0.5) * tanh(T(0.5) * (xg[k + H] + hh[k + H])) + T(0.5);
const T u = tanh(xg[k + 2 * H] + r * hh[k + 2 * H]);
s[k] = r;
s[k + H] = z;
s[k + 2 * H] = u;
h_new = (h - u) * z + u;
"""

GRU_BACKWARD = """
const long long k = (i / H) * 3 * H + i % H;
const T r = s[k], z = s[k + H], u = s[k + 2 * H];
const T dan = gh * (T(1) - z) * (T(1) - u * u);
const T dr = dan * hh[k + 2 * H] * r * (T(1) - r);
const T dz = gh * (h - u) * z * (T(1) - z);
dxg[k] = dr;
dxg[k + H] = dz;
dxg[k + 2 * H] = dan;
dhh[k] = dr;
dhh[k + H] = dz;
dhh[k + 2 * H] = dan * r;
gh_z = gh * z;
"""

# one element of Adam: the moments, then p -= step * m / (sqrt(v) * inv_bc2 + eps)
ADAM = """
const T m_new = m * b1 + (T(1) - b1) * g;
const T v_new = v * b2 + (T(1) - b2) * (g * g);
p = p - (step * m_new) / (sqrt(v_new) * inv_bc2 + eps);
m = m_new;
v = v_new;
"""

# lazy Adam on the rows of a (R, d) parameter: element i is column i % d of the (i / d)-th
# touched row; the rows are unique (the gradient was coalesced), so no two threads share one
ADAM_ROWS = """
const long long k = i / d;
const long long e = (long long)rows[k] * d + i % d;
const T g = values[i];
const T m_new = m[e] * b1 + (T(1) - b1) * g;
const T v_new = v[e] * b2 + (T(1) - b2) * (g * g);
p[e] = p[e] - (step * m_new) / (sqrt(v_new) * inv_bc2 + eps);
m[e] = m_new;
v[e] = v_new;
"""

# name: (in_params, out_params, body), in CuPy's ElementwiseKernel notation
KERNELS = {
    "lstm_forward": ("T c, int32 H", "raw T a, T c_new, T tc, T h", LSTM_FORWARD),
    "lstm_backward": ("raw T a, T c, T tc, T gh, T gc, int32 H", "raw T da, T gc_prev",
                      LSTM_BACKWARD),
    "gru_forward": ("raw T xg, raw T hh, T h, int32 H", "raw T s, T h_new", GRU_FORWARD),
    "gru_backward": ("raw T s, raw T hh, T h, T gh, int32 H", "raw T dxg, raw T dhh, T gh_z",
                     GRU_BACKWARD),
    "adam": ("T g, T b1, T b2, T step, T inv_bc2, T eps", "T p, T m, T v", ADAM),
    "adam_rows": ("raw I rows, raw T values, int64 d, T b1, T b2, T step, T inv_bc2, T eps",
                  "raw T p, raw T m, raw T v", ADAM_ROWS),
}
_compiled: dict = {}


def kernel(xp, name: str):
    """The ElementwiseKernel of KERNELS[name] in the CuPy namespace ``xp``, built on first use
    (CuPy compiles it for each element type it meets and caches the binary on disk)."""
    k = _compiled.get(name)
    if k is None:
        in_params, out_params, body = KERNELS[name]
        k = _compiled[name] = xp.ElementwiseKernel(in_params, out_params, body, f"rnndsl_{name}")
    return k


def _zero_or(xp, g, like):
    """The cotangent, or a 0-d zero that the kernel broadcasts (no array of zeros written)."""
    return xp.zeros((), dtype=like.dtype) if g is None else g


def _flat(xp, a):
    """A 1-d view for a raw argument (a raw array's index is a flat C-order position; on a 1-d
    array it costs no divisions). Copies only an array that is not contiguous."""
    return xp.ascontiguousarray(a).reshape(-1)


def lstm_gates_forward(xp, a, c):
    """Same contract as nn.cells.lstm._lstm_gates_forward: activates a (contiguous) in place,
    returns (c_new, tanh(c_new), h_new)."""
    out = xp.empty((3,) + c.shape, dtype=a.dtype)  # one allocation for the three results
    kernel(xp, "lstm_forward")(c, c.shape[-1], a.reshape(-1), out[0], out[1], out[2])
    return out[0], out[1], out[2]


def lstm_gates_backward(xp, a, c, tc, gh, gc):
    """Same contract as nn.cells.lstm._lstm_gates_backward: (da, dL/dc_prev)."""
    da = xp.empty(a.shape, dtype=a.dtype)
    gc_prev = xp.empty(c.shape, dtype=a.dtype)
    kernel(xp, "lstm_backward")(_flat(xp, a), c, tc, _zero_or(xp, gh, a), _zero_or(xp, gc, a),
                                c.shape[-1], da.reshape(-1), gc_prev)
    return da, gc_prev


def gru_gates_forward(xp, xg, hh, h):
    """Same contract as nn.cells.gru._gru_gates_forward: (saved for the backward, h_new)."""
    s = xp.empty(hh.shape, dtype=hh.dtype)
    h_new = xp.empty(h.shape, dtype=h.dtype)
    kernel(xp, "gru_forward")(_flat(xp, xg), _flat(xp, hh), h, h.shape[-1], s.reshape(-1), h_new)
    return s, h_new


def gru_gates_backward(xp, saved, hh, h, gh):
    """Same contract as nn.cells.gru._gru_gates_backward: (dL/dxg, dL/dhh, gh * z)."""
    dxg = xp.empty(saved.shape, dtype=saved.dtype)
    dhh = xp.empty(saved.shape, dtype=saved.dtype)
    gh_z = xp.empty(h.shape, dtype=h.dtype)
    kernel(xp, "gru_backward")(saved.reshape(-1), _flat(xp, hh), h, _zero_or(xp, gh, h),
                               h.shape[-1], dxg.reshape(-1), dhh.reshape(-1), gh_z)
    return dxg, dhh, gh_z


# --- the step products through cuBLAS directly --------------------------------------------------
_ONE: dict = {}


def _ld(a, rows: int, cols: int):
    """(leading dimension, batch stride) in elements of a (D, rows, cols) array whose rows are
    contiguous, or None when its layout does not fit a strided-batched GEMM."""
    item = a.itemsize
    s0, s1, s2 = a.strides
    if s2 != item and cols > 1:
        return None
    ld = s1 // item if rows > 1 else cols
    if ld < cols or s1 % item or s0 % item:
        return None
    return ld, (s0 // item if a.shape[0] > 1 else rows * ld)


def _gemm(xp, dtype, transa: int, transb: int, m: int, n: int, k: int, A, lda: int, sA: int,
          B, ldb: int, sB: int, C, ldc: int, sC: int, batch: int) -> None:
    """One strided-batched GEMM, column-major, through CuPy's cuBLAS handle (host scalars)."""
    cublas = Bk.cuda_blas()
    one = _ONE.get(dtype.char)
    if one is None:  # alpha = 1, beta = 0 as host arrays of the element type
        one = _ONE[dtype.char] = (Bk.host.ones(1, dtype), Bk.host.zeros(1, dtype))
    f = cublas.sgemmStridedBatched if dtype == Bk.host.float32 else cublas.dgemmStridedBatched
    handle = xp.cuda.device.get_cublas_handle()
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    f(handle, transa, transb, m, n, k, one[0].ctypes.data, A, lda, sA, B, ldb, sB,
      one[1].ctypes.data, C, ldc, sC, batch)


def _product_ok(xp, a, W) -> bool:
    return (a.ndim == 3 and W.ndim == 3 and a.shape[0] == W.shape[0] and a.dtype == W.dtype
            and a.dtype.char in "fd" and W.flags.c_contiguous and a.size and W.size)


def step_product_t(xp, d, W):
    """d W^T per direction, d (D, B, G) (rows contiguous; a batch-prefix slice will do), W
    (D, H, G) contiguous: the gradient reaching h_{t-1}, one strided-batched cuBLAS GEMM called
    directly, W transposed by cuBLAS (cupy.matmul copies the swapped W first). Falls back to
    xp.matmul for other layouts."""
    ld = _ld(d, d.shape[1], d.shape[2]) if _product_ok(xp, d, W) else None
    if ld is None or d.shape[2] != W.shape[2]:
        return xp.matmul(d, xp.swapaxes(W, -1, -2))
    D, M, G = d.shape
    H = W.shape[1]
    out = xp.empty((D, M, H), dtype=d.dtype)
    # column-major C^T (H x M) = W (H x G, stored as its transpose) d^T
    _gemm(xp, d.dtype, 1, 0, H, M, G, W.data.ptr, G, H * G, d.data.ptr, ld[0], ld[1],
          out.data.ptr, H, M * H, D)
    return out


def adam_flat(p, g, m, v, b1, b2, step, inv_bc2, eps):
    """Adam in place on same-shaped contiguous arrays (the optim_cpu.adam_flat contract, with
    the scalars as Python floats: CuPy casts them to the arrays' type, where a NumPy float32
    scalar would take part in deciding it)."""
    kernel(Bk.namespace_of(p), "adam")(g, b1, b2, step, inv_bc2, eps, p, m, v)


def adam_rows(p, rows, values, m, v, b1, b2, step, inv_bc2, eps):
    """Lazy Adam in place: p, m, v (R, d) contiguous; row rows[k] (unique) gets values[k]
    (scalars as Python floats, as for adam_flat)."""
    n, d = values.shape
    if n:
        kernel(Bk.namespace_of(p), "adam_rows")(
            rows.reshape(-1), values.reshape(-1), d, b1, b2, step, inv_bc2, eps,
            p.reshape(-1), m.reshape(-1), v.reshape(-1), size=n * d)
