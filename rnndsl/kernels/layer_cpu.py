"""Compiled kernels for a whole recurrent layer pass on the host (Numba, nogil, OpenBLAS inside).

One call runs one direction of a layer over every time step: the input projection (one GEMM),
the time loop (one recurrent GEMM per step plus the gate arithmetic of every running row), and
in the backward call the time loop in reverse, the weight gradients (one GEMM each over all
steps) and the input gradient. The GEMMs are OpenBLAS's, the one NumPy ships
(numpy.libs/libscipy_openblas64_*.so, symbols prefixed ``scipy_`` with 64-bit integers), called
from nopython code by name (``types.ExternalFunction``, so the compiled code is cacheable):
no Python, no tape node and no allocation per step. ``nogil``: the two directions of a bi
layer run at the same time on two Python threads (layer_op.py).

Rows are kept step-major in a packed layout per direction: step t owns rows offs[t] ..
offs[t] + counts[t] of every (P, .) buffer, one per running sequence (b = 0 .. counts[t] - 1).
``pos[r]`` is the position p * B + b in the padded (T, B) grid that row r reads (the input) and
writes (the output): p = t for the forward direction, p = len_b - 1 - t for the backward one.
``act[r]`` is 0 for a row that is not running (a masked batch computes every row and keeps the
state of the ended ones; a sorted batch packs the running rows first and computes only those).

Gates as in kernels.py: LSTM (i, f, o, z), GRU (r, z, n); sigma(x) = (tanh(x / 2) + 1) / 2.
float32 uses the Eigen tanh of cells_cpu.py, float64 NumPy's. Importing this module raises
ImportError when the library or a symbol is missing; the layer then runs the per-step path.
"""

from __future__ import annotations

import ctypes
import glob
import os

import llvmlite.binding as llvm
from numba import njit, types
from numba.extending import overload

from ..autodiff.backend import host as np
from .cells_cpu import _tanh as _tanh_fast
from .ops_cpu import JIT_OPTIONS as _JIT

SGEMM, DGEMM = "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"
SET_THREADS, GET_THREADS = "scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"


def _find_openblas() -> str:
    """The OpenBLAS that NumPy's wheel ships, with every symbol used here; else ImportError."""
    libs = sorted(glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                                         "libscipy_openblas64_*.so")))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if all(hasattr(lib, s) for s in (SGEMM, DGEMM, SET_THREADS, GET_THREADS)):
            return path
    raise ImportError("no scipy-openblas64 library with cblas_sgemm/dgemm next to NumPy")


LIBRARY = _find_openblas()
llvm.load_library_permanently(LIBRARY)
_lib = ctypes.CDLL(LIBRARY)
_set_threads = _lib[SET_THREADS]
_set_threads.argtypes, _set_threads.restype = [ctypes.c_int], None
_get_threads = _lib[GET_THREADS]
_get_threads.argtypes, _get_threads.restype = [], ctypes.c_int


def blas_threads(n: int | None = None) -> int:
    """OpenBLAS's thread count; with ``n``, set it first (returns the count before)."""
    before = int(_get_threads())
    if n is not None:
        _set_threads(int(n))
    return before


_i32, _i64, _ptr = types.int32, types.int64, types.intp  # pointers travel as addresses


def _gemm_type(real):
    return types.void(_i32, _i32, _i32, _i64, _i64, _i64, real, _ptr, _i64, _ptr, _i64, real,
                      _ptr, _i64)


_sgemm = types.ExternalFunction(SGEMM, _gemm_type(types.float32))
_dgemm = types.ExternalFunction(DGEMM, _gemm_type(types.float64))
N_, T_ = 111, 112  # CblasNoTrans, CblasTrans (row-major: 101)

SRNN_TANH, SRNN_RELU, LSTM, GRU_AFTER, GRU_BEFORE = 0, 1, 2, 3, 4


def th(x):
    """tanh for the kernels: cells_cpu's Eigen approximation in float32, libm's in float64
    (picked at compile time by the argument's type)."""
    return np.tanh(x)


@overload(th, inline="always")
def _th_typed(x):
    if x == types.float32:
        return lambda x: _tanh_fast(x)
    return lambda x: np.tanh(x)


@njit(inline="always", **_JIT)
def _gemm(f32, ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc):
    """C (M, N) = op(A) op(B) + beta C, row-major, addresses a, b, c."""
    if M == 0 or N == 0:
        return
    if f32:
        _sgemm(101, ta, tb, M, N, K, np.float32(1), a, lda, b, ldb, np.float32(beta), c, ldc)
    else:
        _dgemm(101, ta, tb, M, N, K, 1.0, a, lda, b, ldb, beta, c, ldc)


@njit(inline="always", **_JIT)
def _at(a, row, col):
    """The address of a[row, col] of a C-contiguous 2-D array."""
    return a.ctypes.data + (row * a.shape[1] + col) * a.itemsize


# --- the gate arithmetic of one row (vectorised loops over j) ------------------------------------
@njit(inline="always", **_JIT)
def _lstm_row(a, c, cp, tc, h, H):
    half = a.dtype.type(0.5)
    for j in range(H):
        i = half * th(half * a[j]) + half
        f = half * th(half * a[H + j]) + half
        o = half * th(half * a[2 * H + j]) + half
        z = th(a[3 * H + j])
        a[j] = i
        a[H + j] = f
        a[2 * H + j] = o
        a[3 * H + j] = z
        v = f * cp[j] + i * z
        t = th(v)
        c[j] = v
        tc[j] = t
        h[j] = o * t


@njit(inline="always", **_JIT)
def _gru_after_row(a, hh, bh, hp, h, H):
    half = a.dtype.type(0.5)
    one = a.dtype.type(1)
    for k in range(3 * H):
        hh[k] += bh[k]
    for j in range(H):
        r = half * th(half * (a[j] + hh[j])) + half
        z = half * th(half * (a[H + j] + hh[H + j])) + half
        n = th(a[2 * H + j] + r * hh[2 * H + j])
        a[j] = r
        a[H + j] = z
        a[2 * H + j] = n
        h[j] = (one - z) * n + z * hp[j]


@njit(**_JIT)
def _steps_forward(cell, f32, src, pre, hh, hprev, cprev, aux, W, bh, h, c, counts, offs,
                   pos, act, out, ocol):
    H = h.shape[1]
    G = pre.shape[1]
    half = pre.dtype.type(0.5)
    for t in range(counts.shape[0]):
        o, n = offs[t], counts[t]
        for b in range(n):
            hprev[o + b] = h[b]
            if cell == LSTM:
                cprev[o + b] = c[b]
        if cell == GRU_AFTER:
            _gemm(f32, N_, N_, n, G, H, _at(hprev, o, 0), H, W.ctypes.data, G, 0.0,
                  _at(hh, o, 0), G)
        elif cell == GRU_BEFORE:
            _gemm(f32, N_, N_, n, 2 * H, H, _at(hprev, o, 0), H, W.ctypes.data, G, 1.0,
                  _at(pre, o, 0), G)
        else:
            _gemm(f32, N_, N_, n, G, H, _at(hprev, o, 0), H, W.ctypes.data, G, 1.0,
                  _at(pre, o, 0), G)
        for b in range(n):
            r = o + b
            if act[r] == 0:
                if cell == GRU_BEFORE:
                    aux[r] = 0  # read by the backward's weight GEMM (times a zero cotangent)
                continue
            a = pre[r]
            if cell == SRNN_TANH:
                for j in range(H):
                    v = th(a[j])
                    a[j] = v
                    h[b, j] = v
            elif cell == SRNN_RELU:
                for j in range(H):
                    v = max(a[j], a.dtype.type(0))
                    a[j] = v
                    h[b, j] = v
            elif cell == LSTM:
                _lstm_row(a, c[b], cprev[r], aux[r], h[b], H)
            elif cell == GRU_AFTER:
                _gru_after_row(a, hh[r], bh, hprev[r], h[b], H)
            else:
                for j in range(2 * H):
                    a[j] = half * th(half * a[j]) + half
                for j in range(H):
                    aux[r, j] = a[j] * hprev[r, j]  # r * h, the reset state
        if cell == GRU_BEFORE:
            _gemm(f32, N_, N_, n, H, H, _at(aux, o, 0), H, _at(W, 0, 2 * H), G, 1.0,
                  _at(pre, o, 2 * H), G)
            for b in range(n):
                r = o + b
                if act[r] == 0:
                    continue
                a = pre[r]
                for j in range(H):
                    nv = th(a[2 * H + j])
                    a[2 * H + j] = nv
                    h[b, j] = hprev[r, j] + a[H + j] * (nv - hprev[r, j])
        for b in range(n):
            r = o + b
            if act[r] != 0:
                out[pos[r], ocol:ocol + H] = h[b]


@njit(nogil=True, **_JIT)
def _direction_forward(cell, X, gathered, Xd, Wih, col0, bias, W, bh, h, c, counts, offs,
                       pos, act, pre, hh, hprev, cprev, aux, out, ocol):
    f32 = X.itemsize == 4
    P, G = pre.shape
    din = X.shape[1]
    if gathered:
        for r in range(P):
            Xd[r] = X[pos[r]]
        src = Xd
    else:
        src = X
    _gemm(f32, N_, N_, P, G, din, src.ctypes.data, din, _at(Wih, 0, col0), Wih.shape[1], 0.0,
          pre.ctypes.data, G)
    for r in range(P):
        for k in range(G):
            pre[r, k] += bias[col0 + k]
    _steps_forward(cell, f32, src, pre, hh, hprev, cprev, aux, W, bh, h, c, counts, offs,
                   pos, act, out, ocol)


def direction_forward(cell, X, gathered, Xd, Wih, col0, bias, W, bh, h, c, counts, offs, pos,
                      act, pre, hh, hprev, cprev, aux, out, ocol):
    """One direction's forward pass (see the module docstring for the layout); h and c hold
    the initial state on entry and the final state on return; ``out`` (T*B, D*H) gets this
    direction's columns ocol .. ocol + H at the running rows' positions."""
    _direction_forward(cell, X, gathered, Xd, Wih, col0, bias, W, bh, h, c, counts, offs,
                       pos, act, pre, hh, hprev, cprev, aux, out, ocol)


@njit(**_JIT)
def _steps_backward(cell, f32, pre, hh, hprev, cprev, aux, W, counts, offs, pos, act, gout,
                    ocol, dh, dc, dxg, dhh, tmp, extra, grh):
    H = dh.shape[1]
    G = pre.shape[1]
    one = pre.dtype.type(1)
    for t in range(counts.shape[0] - 1, -1, -1):
        o, n = offs[t], counts[t]
        if gout.shape[0]:
            for b in range(n):
                r = o + b
                if act[r] != 0:
                    g = gout[pos[r]]
                    for j in range(H):
                        dh[b, j] += g[ocol + j]
        for b in range(n):
            r = o + b
            d = dxg[r]
            if act[r] == 0:
                d[:] = 0
                if cell == GRU_AFTER:
                    dhh[r] = 0
                continue
            a = pre[r]
            gh = dh[b]
            if cell == SRNN_TANH:
                for j in range(G):
                    d[j] = gh[j] * (one - a[j] * a[j])
            elif cell == SRNN_RELU:
                for j in range(G):
                    d[j] = gh[j] if a[j] > 0 else a.dtype.type(0)
            elif cell == LSTM:
                cp, tc, gc = cprev[r], aux[r], dc[b]
                for j in range(H):
                    i, f, og, z, tv = a[j], a[H + j], a[2 * H + j], a[3 * H + j], tc[j]
                    g = gc[j] + gh[j] * og * (one - tv * tv)
                    d[j] = g * z * i * (one - i)
                    d[H + j] = g * cp[j] * f * (one - f)
                    d[2 * H + j] = gh[j] * tv * og * (one - og)
                    d[3 * H + j] = g * i * (one - z * z)
                    gc[j] = g * f
            elif cell == GRU_AFTER:
                hp, q, e = hprev[r], hh[r], dhh[r]
                for j in range(H):
                    rg, z, nv = a[j], a[H + j], a[2 * H + j]
                    dan = gh[j] * (one - z) * (one - nv * nv)
                    d[j] = dan * q[2 * H + j] * rg * (one - rg)
                    d[H + j] = gh[j] * (hp[j] - nv) * z * (one - z)
                    d[2 * H + j] = dan
                    e[j] = d[j]
                    e[H + j] = d[H + j]
                    e[2 * H + j] = dan * rg
                    extra[b, j] = gh[j] * z
            else:
                hp = hprev[r]
                for j in range(H):
                    z, nv = a[H + j], a[2 * H + j]
                    d[2 * H + j] = gh[j] * z * (one - nv * nv)
                    d[H + j] = gh[j] * (nv - hp[j]) * z * (one - z)
                    extra[b, j] = gh[j] * (one - z)
        if cell == GRU_BEFORE:
            _gemm(f32, N_, T_, n, H, H, _at(dxg, o, 2 * H), G, _at(W, 0, 2 * H), G, 0.0,
                  grh.ctypes.data, H)
            for b in range(n):
                r = o + b
                if act[r] == 0:
                    continue
                a, hp, d = pre[r], hprev[r], dxg[r]
                for j in range(H):
                    rg = a[j]
                    d[j] = grh[b, j] * hp[j] * rg * (one - rg)
                    extra[b, j] += grh[b, j] * rg
            _gemm(f32, N_, T_, n, H, 2 * H, _at(dxg, o, 0), G, W.ctypes.data, G, 0.0,
                  tmp.ctypes.data, H)
        elif cell == GRU_AFTER:
            _gemm(f32, N_, T_, n, H, G, _at(dhh, o, 0), G, W.ctypes.data, G, 0.0,
                  tmp.ctypes.data, H)
        else:
            _gemm(f32, N_, T_, n, H, G, _at(dxg, o, 0), G, W.ctypes.data, G, 0.0,
                  tmp.ctypes.data, H)
        gru = cell == GRU_AFTER or cell == GRU_BEFORE
        for b in range(n):
            if act[o + b] == 0:
                continue
            if gru:
                for j in range(H):
                    dh[b, j] = tmp[b, j] + extra[b, j]
            else:
                dh[b] = tmp[b]


@njit(nogil=True, **_JIT)
def _direction_backward(cell, X, gathered, Xd, Wih, col0, W, counts, offs, pos, act, pre, hh,
                        hprev, cprev, aux, gout, ocol, dh, dc, dxg, dhh, tmp, extra, grh, dWih,
                        dbias, dW, dbh, dXd, dX, need_dx):
    f32 = X.itemsize == 4
    P, G = pre.shape
    H = dh.shape[1]
    din = X.shape[1]
    DG = Wih.shape[1]
    src = Xd if gathered else X
    _steps_backward(cell, f32, pre, hh, hprev, cprev, aux, W, counts, offs, pos, act, gout,
                    ocol, dh, dc, dxg, dhh, tmp, extra, grh)
    if cell == GRU_AFTER:
        _gemm(f32, T_, N_, H, G, P, hprev.ctypes.data, H, dhh.ctypes.data, G, 0.0,
              dW.ctypes.data, G)
        for k in range(G):
            dbh[k] = 0
        for r in range(P):
            for k in range(G):
                dbh[k] += dhh[r, k]
    elif cell == GRU_BEFORE:
        _gemm(f32, T_, N_, H, 2 * H, P, hprev.ctypes.data, H, dxg.ctypes.data, G, 0.0,
              dW.ctypes.data, G)
        _gemm(f32, T_, N_, H, H, P, aux.ctypes.data, H, _at(dxg, 0, 2 * H), G, 0.0,
              _at(dW, 0, 2 * H), G)
    else:
        _gemm(f32, T_, N_, H, G, P, hprev.ctypes.data, H, dxg.ctypes.data, G, 0.0,
              dW.ctypes.data, G)
    _gemm(f32, T_, N_, din, G, P, src.ctypes.data, din, dxg.ctypes.data, G, 0.0,
          _at(dWih, 0, col0), DG)
    for k in range(G):
        dbias[col0 + k] = 0
    for r in range(P):
        for k in range(G):
            dbias[col0 + k] += dxg[r, k]
    if not need_dx:
        return
    _gemm(f32, N_, T_, P, din, G, dxg.ctypes.data, G, _at(Wih, 0, col0), DG, 0.0,
          dXd.ctypes.data, din)
    if gathered:
        for r in range(P):
            dX[pos[r]] = dXd[r]


def direction_backward(cell, X, gathered, Xd, Wih, col0, W, counts, offs, pos, act, pre, hh,
                       hprev, cprev, aux, gout, ocol, dh, dc, dxg, dhh, tmp, extra, grh, dWih,
                       dbias, dW, dbh, dXd, dX, need_dx=True):
    """One direction's backward pass: dh, dc hold the cotangents of the final state on entry
    and those of the initial state on return; writes this direction's blocks of dWih and dbias,
    its dW (H, G) and dbh, and its input gradient into dX (rows ``pos``; dXd is dX itself when
    the rows are not gathered; skipped unless ``need_dx``)."""
    _direction_backward(cell, X, gathered, Xd, Wih, col0, W, counts, offs, pos, act, pre, hh,
                        hprev, cprev, aux, gout, ocol, dh, dc, dxg, dhh, tmp, extra, grh, dWih,
                        dbias, dW, dbh, dXd, dX, need_dx)
