"""Fused CPU kernels for the GRU step's gate arithmetic (optional: Numba, float32 host arrays).

The twin of cells_cpu.py's LSTM gates for both GRU forms, overriding the generic NumPy gate
arithmetic of kernels.py (a dozen whole-array calls forward and twice that backward, each a
pass over a small (D, B, 3H) array) with one pass per row forward and one backward:

- reset after (cuDNN / PyTorch): ``gru_gates_forward`` / ``gru_gates_backward``, the same
  contract as kernels._gru_gates_forward / _gru_gates_backward (kernels.gru_gate_kernels);
- reset before (the lecture's form, two products per step with the gates between them):
  ``gru_lecture_core``, the same contract as kernels._gru_lecture_core, its four gate stages
  compiled and the products left to NumPy's matmul.

tanh is cells_cpu's Eigen approximation, sigma(x) = (tanh(x / 2) + 1) / 2. ``RNNDSL_FUSED=0``
turns them off; tests/test_fused_gru.py checks them equal to the generic path.
"""

from __future__ import annotations

from numba import njit

from ..autodiff.backend import host as np
from .cells_cpu import _rows, _sigmoid, _tanh
from .ops_cpu import JIT_OPTIONS as _JIT

F = np.float32


@njit(**_JIT)
def _after_forward(xg, hh, h, s, h_new):
    R, H = h.shape
    for q in range(R):
        x, e, hp, sv, hn = xg[q], hh[q], h[q], s[q], h_new[q]
        for j in range(H):
            r = _sigmoid(x[j] + e[j])
            z = _sigmoid(x[H + j] + e[H + j])
            n = _tanh(x[2 * H + j] + r * e[2 * H + j])
            sv[j] = r
            sv[H + j] = z
            sv[2 * H + j] = n
            hn[j] = (hp[j] - n) * z + n


@njit(**_JIT)
def _after_backward(s, hh, h, gh, dxg, dhh, ghz):
    R, H = h.shape
    one = F(1)
    for q in range(R):
        sv, e, hp, g, dx, dq, gz_out = s[q], hh[q], h[q], gh[q], dxg[q], dhh[q], ghz[q]
        for j in range(H):
            r, z, n = sv[j], sv[H + j], sv[2 * H + j]
            gz = g[j] * (hp[j] - n)
            dan = g[j] * (one - z) * (one - n * n)
            dr = dan * e[2 * H + j] * r * (one - r)
            dz = gz * z * (one - z)
            dx[j] = dr
            dx[H + j] = dz
            dx[2 * H + j] = dan
            dq[j] = dr
            dq[H + j] = dz
            dq[2 * H + j] = dan * r
            gz_out[j] = g[j] * z


def gru_gates_forward(xp, xg, hh, h):
    """kernels._gru_gates_forward's contract: (saved, h_new); saved is [r; z; n] (D, B, 3H)."""
    H = h.shape[-1]
    s = np.empty(hh.shape, dtype=hh.dtype)
    h_new = np.empty(h.shape, dtype=hh.dtype)
    _after_forward(_rows(xg, 3 * H), _rows(hh, 3 * H), _rows(h, H), s.reshape(-1, 3 * H),
                   h_new.reshape(-1, H))
    return s, h_new


def gru_gates_backward(xp, saved, hh, h, gh):
    """kernels._gru_gates_backward's contract: (dL/dxg, dL/dhh, gh * z)."""
    H = h.shape[-1]
    if gh is None:
        gh = np.zeros(h.shape, dtype=hh.dtype)
    dxg = np.empty(hh.shape, dtype=hh.dtype)
    dhh = np.empty(hh.shape, dtype=hh.dtype)
    ghz = np.empty(h.shape, dtype=hh.dtype)
    _after_backward(_rows(saved, 3 * H), _rows(hh, 3 * H), _rows(h, H), _rows(gh, H),
                    dxg.reshape(-1, 3 * H), dhh.reshape(-1, 3 * H), ghz.reshape(-1, H))
    return dxg, dhh, ghz


@njit(**_JIT)
def _lecture_gates_a(a, h, rh):
    """a (R, 3H): a[:, :2H] = sigma(a[:, :2H]) in place (r, z); rh = r * h."""
    R, H = h.shape
    for q in range(R):
        av, hp, o = a[q], h[q], rh[q]
        for j in range(2 * H):
            av[j] = _sigmoid(av[j])
        for j in range(H):
            o[j] = av[j] * hp[j]


@njit(**_JIT)
def _lecture_gates_b(a, h, h_new):
    """a[:, 2H:] = tanh in place (the candidate n); h_new = h + z * (n - h)."""
    R, H = h.shape
    for q in range(R):
        av, hp, hn = a[q], h[q], h_new[q]
        for j in range(H):
            n = _tanh(av[2 * H + j])
            av[2 * H + j] = n
            hn[j] = (n - hp[j]) * av[H + j] + hp[j]


@njit(**_JIT)
def _lecture_back_a(a, h, gh, dxg, base):
    """dxg[:, 2H:] = dL/d(n's pre-activation), dxg[:, H:2H] = dL/d(z's); base = gh * (1 - z)."""
    R, H = h.shape
    one = F(1)
    for q in range(R):
        av, hp, g, d, b = a[q], h[q], gh[q], dxg[q], base[q]
        for j in range(H):
            z, n = av[H + j], av[2 * H + j]
            d[2 * H + j] = g[j] * z * (one - n * n)
            d[H + j] = g[j] * (n - hp[j]) * z * (one - z)
            b[j] = g[j] * (one - z)


@njit(**_JIT)
def _lecture_back_b(a, h, g_rh, dxg, base):
    """dxg[:, :H] = dL/d(r's pre-activation); base += g_rh * r."""
    R, H = h.shape
    one = F(1)
    for q in range(R):
        av, hp, g, d, b = a[q], h[q], g_rh[q], dxg[q], base[q]
        for j in range(H):
            r = av[j]
            d[j] = g[j] * hp[j] * r * (one - r)
            b[j] += g[j] * r


def gru_lecture_core(xp, xg, carry, params):
    """kernels._gru_lecture_core with the gate stages compiled: ((h_new,), vjp)."""
    (h,), (W,) = carry, params
    H = h.shape[-1]
    W_rz, W_n = W[..., : 2 * H], W[..., 2 * H:]
    a = np.empty(xg.shape, dtype=xg.dtype)
    np.matmul(h, W_rz, out=a[..., : 2 * H])
    a[..., : 2 * H] += xg[..., : 2 * H]
    rh = np.empty(h.shape, dtype=xg.dtype)
    a2 = a.reshape(-1, 3 * H)
    _lecture_gates_a(a2, _rows(h, H), rh.reshape(-1, H))
    np.matmul(rh, W_n, out=a[..., 2 * H:])
    a[..., 2 * H:] += xg[..., 2 * H:]
    h_new = np.empty(h.shape, dtype=xg.dtype)
    _lecture_gates_b(a2, _rows(h, H), h_new.reshape(-1, H))

    def vjp(gs):
        (gh,) = gs
        if gh is None:
            gh = np.zeros(h.shape, dtype=xg.dtype)
        dxg = np.empty(xg.shape, dtype=xg.dtype)
        base = np.empty(h.shape, dtype=xg.dtype)
        hr = _rows(h, H)
        d2 = dxg.reshape(-1, 3 * H)
        _lecture_back_a(a2, hr, _rows(gh, H), d2, base.reshape(-1, H))
        g_rh = np.matmul(dxg[..., 2 * H:], np.swapaxes(W_n, -1, -2))
        _lecture_back_b(a2, hr, _rows(g_rh, H), d2, base.reshape(-1, H))
        g_h = np.matmul(dxg[..., : 2 * H], np.swapaxes(W_rz, -1, -2))
        g_h += base
        g_W = np.concatenate(
            [np.matmul(np.swapaxes(h, -1, -2), dxg[..., : 2 * H]),
             np.matmul(np.swapaxes(rh, -1, -2), dxg[..., 2 * H:])], axis=-1)
        return dxg, (g_h,), (g_W,)

    return (h_new,), vjp
