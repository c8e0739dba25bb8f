"""Fused recurrent step ops: one tape node per time step, with an analytic backward.

Every step op works on a leading direction axis D (1 for a uni layer, 2 for a bi layer whose
backward direction reads each sequence reversed), so one call and one matrix product per step
serve both directions. Shapes: xg (D, B, G) is the precomputed input projection x_t W^x + b
(G = gates * H), h and c are (D, B, H), W is (D, H, G). ``mask`` is None when every sequence is
still running at this step, else a (B, 1) bool array: where it is False the state is carried
through unchanged, so a sequence's final state is the state at its own last token.

Internal gate orders: LSTM (i, f, o, z) so the three sigmoids are one contiguous block; GRU
(r, z, n). ``cells.py`` converts to and from PyTorch's orders.
"""

from __future__ import annotations

from ..autodiff.ops import op


def _sigmoid_(xp, a):
    """In-place logistic through tanh: no overflow for large |a|."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def _carry(xp, mask, new, old):
    return new if mask is None else xp.where(mask, new, old)


def _split_carry(xp, mask, g):
    """Cotangent of a carried output: the part for the new state and the part passed through."""
    if g is None:
        return None, None
    if mask is None:
        return g, None
    return xp.where(mask, g, 0), xp.where(mask, 0, g)


def _plus(a, b):
    if b is None:
        return a
    a += b
    return a


@op("lstm_step", multi=True)
def lstm_step(xp, xg, h, c, W, mask=None):
    """s_j = R_LSTM(s_{j-1}, x_j) = [c_j; h_j] with the lecture's gates plus biases.

    i = sigma(.), f = sigma(.), o = sigma(.), z = tanh(x_j W^x + h_{j-1} W^h + b)
    c_j = f * c_{j-1} + i * z,   h_j = o * tanh(c_j)
    """
    H = h.shape[-1]
    a = xp.matmul(h, W)
    a += xg
    _sigmoid_(xp, a[..., : 3 * H])
    xp.tanh(a[..., 3 * H :], out=a[..., 3 * H :])
    i, f, o, z = a[..., :H], a[..., H : 2 * H], a[..., 2 * H : 3 * H], a[..., 3 * H :]
    c_new = f * c
    c_new += i * z
    tc = xp.tanh(c_new)
    h_new = o * tc

    def vjp(gs):
        gh, gc = _split_carry(xp, mask, gs[0]), _split_carry(xp, mask, gs[1])
        gh_new, gh_pass = gh
        gc_new, gc_pass = gc
        gct = xp.zeros_like(c) if gc_new is None else gc_new.copy()
        if gh_new is not None:
            gct += gh_new * o * (1 - tc * tc)
        da = xp.empty_like(a)
        da[..., :H] = gct * z * i * (1 - i)
        da[..., H : 2 * H] = gct * c * f * (1 - f)
        if gh_new is None:
            da[..., 2 * H : 3 * H] = 0
        else:
            da[..., 2 * H : 3 * H] = gh_new * tc * o * (1 - o)
        da[..., 3 * H :] = gct * i * (1 - z * z)
        g_h = _plus(xp.matmul(da, xp.swapaxes(W, -1, -2)), gh_pass)
        g_c = _plus(gct * f, gc_pass)
        g_W = xp.matmul(xp.swapaxes(h, -1, -2), da)
        return da, g_h, g_c, g_W, None

    return (_carry(xp, mask, h_new, h), _carry(xp, mask, c_new, c)), vjp


@op("srnn_step", multi=True)
def srnn_step(xp, xg, h, W, mask=None, act: str = "tanh"):
    """s_i = R_SRNN(s_{i-1}, x_i) = g(s_{i-1} W^s + x_i W^x + b), g = tanh or ReLU; y_i = s_i."""
    a = xp.matmul(h, W)
    a += xg
    if act == "tanh":
        xp.tanh(a, out=a)
    else:
        xp.maximum(a, 0, out=a)

    def vjp(gs):
        gh_new, gh_pass = _split_carry(xp, mask, gs[0])
        da = gh_new * (1 - a * a) if act == "tanh" else gh_new * (a > 0)
        g_h = _plus(xp.matmul(da, xp.swapaxes(W, -1, -2)), gh_pass)
        return da, g_h, xp.matmul(xp.swapaxes(h, -1, -2), da), None

    return (_carry(xp, mask, a, h),), vjp


@op("gru_step", multi=True)
def gru_step(xp, xg, h, W, bh, mask=None):
    """GRU in the "reset after" form of cuDNN and PyTorch (b_h is (D, 1, 3H)).

    r = sigma(x W^xr + h W^hr + b_r),  z = sigma(x W^xz + h W^hz + b_z)
    n = tanh(x W^xn + b_xn + r * (h W^hn + b_hn)),  h' = (1 - z) * n + z * h
    """
    H = h.shape[-1]
    hh = xp.matmul(h, W)
    hh += bh
    rz = xg[..., : 2 * H] + hh[..., : 2 * H]
    _sigmoid_(xp, rz)
    r, z = rz[..., :H], rz[..., H:]
    hn = hh[..., 2 * H :]
    n = r * hn
    n += xg[..., 2 * H :]
    xp.tanh(n, out=n)
    h_new = h - n
    h_new *= z
    h_new += n

    def vjp(gs):
        gh_new, gh_pass = _split_carry(xp, mask, gs[0])
        gz = gh_new * (h - n)
        dan = gh_new * (1 - z) * (1 - n * n)
        dxg = xp.empty(xg.shape, dtype=xg.dtype)
        dxg[..., :H] = dan * hn * r * (1 - r)
        dxg[..., H : 2 * H] = gz * z * (1 - z)
        dxg[..., 2 * H :] = dan
        dhh = dxg.copy()
        dhh[..., 2 * H :] *= r
        g_h = xp.matmul(dhh, xp.swapaxes(W, -1, -2))
        g_h += gh_new * z
        g_h = _plus(g_h, gh_pass)
        g_W = xp.matmul(xp.swapaxes(h, -1, -2), dhh)
        return dxg, g_h, g_W, dhh.sum(axis=-2, keepdims=True), None

    return (_carry(xp, mask, h_new, h),), vjp


@op("gru_lecture_step", multi=True)
def gru_lecture_step(xp, xg, h, W, mask=None):
    """GRU as in the lecture (Cho et al. 2014): the reset gate acts before the matrix.

    z = sigma(x W^xz + s W^sz),  r = sigma(x W^xr + s W^sr)
    s~ = tanh(x W^xs + (r * s) W^sg),  s' = (1 - z) * s + z * s~
    """
    H = h.shape[-1]
    W_rz, W_n = W[..., : 2 * H], W[..., 2 * H :]
    rz = xp.matmul(h, W_rz)
    rz += xg[..., : 2 * H]
    _sigmoid_(xp, rz)
    r, z = rz[..., :H], rz[..., H:]
    rh = r * h
    n = xp.matmul(rh, W_n)
    n += xg[..., 2 * H :]
    xp.tanh(n, out=n)
    h_new = n - h
    h_new *= z
    h_new += h

    def vjp(gs):
        gh_new, gh_pass = _split_carry(xp, mask, gs[0])
        dxg = xp.empty(xg.shape, dtype=xg.dtype)
        dan = gh_new * z * (1 - n * n)
        dxg[..., 2 * H :] = dan
        g_rh = xp.matmul(dan, xp.swapaxes(W_n, -1, -2))
        dxg[..., :H] = g_rh * h * r * (1 - r)
        dxg[..., H : 2 * H] = gh_new * (n - h) * z * (1 - z)
        g_h = xp.matmul(dxg[..., : 2 * H], xp.swapaxes(W_rz, -1, -2))
        g_h += gh_new * (1 - z)
        g_h += g_rh * r
        g_h = _plus(g_h, gh_pass)
        g_W = xp.concatenate(
            [xp.matmul(xp.swapaxes(h, -1, -2), dxg[..., : 2 * H]),
             xp.matmul(xp.swapaxes(rh, -1, -2), dan)],
            axis=-1,
        )
        return dxg, g_h, g_W, None

    return (_carry(xp, mask, h_new, h),), vjp


def _reverse_rows(xp, a, rev_flat):
    """a (T, B, F) with each sequence reversed within its length: one row gather of (T*B, F)."""
    T, Bn, Fd = a.shape
    return xp.take(a.reshape(T * Bn, Fd), rev_flat, axis=0).reshape(T, Bn, Fd)


@op("bi_arrange")
def bi_arrange(xp, xp_all, rev_flat, D: int = 2):
    """(T, B, D*G) input projections -> (T, D, B, G), the backward half reversed per sequence.

    ``rev_flat`` (T*B,) int: the row t*B+b of the backward half comes from row rev[t, b]*B+b,
    where rev[t, b] = len_b - 1 - t for t < len_b, else t (a reversal that is its own inverse).
    """
    T, Bn, DG = xp_all.shape
    G = DG // D
    out = xp.empty((T, D, Bn, G), dtype=xp_all.dtype)
    out[:, 0] = xp_all[..., :G]
    if D == 2:
        out[:, 1] = _reverse_rows(xp, xp_all[..., G:], rev_flat)

    def vjp(g):
        gx = xp.empty(xp_all.shape, dtype=g.dtype)
        gx[..., :G] = g[:, 0]
        if D == 2:
            gx[..., G:] = _reverse_rows(xp, g[:, 1], rev_flat)
        return gx, None

    return out, vjp


@op("bi_merge")
def bi_merge(xp, hs, rev_flat, mask):
    """(T, D, B, H) step states -> (T, B, D*H) outputs y_i = [y_i^f; y_i^b], zero past each end."""
    T, D, Bn, H = hs.shape
    out = xp.empty((T, Bn, D * H), dtype=hs.dtype)
    out[..., :H] = hs[:, 0]
    if D == 2:
        out[..., H:] = _reverse_rows(xp, hs[:, 1], rev_flat)
    out *= mask

    def vjp(g):
        g = g * mask
        gh = xp.empty(hs.shape, dtype=g.dtype)
        gh[:, 0] = g[..., :H]
        if D == 2:
            gh[:, 1] = _reverse_rows(xp, g[..., H:], rev_flat)
        return gh, None, None

    return out, vjp


@op("scatter_rows")
def scatter_rows(xp, rows, index, n_rows: int):
    """out (n_rows, d) with out[index[i]] = rows[i] (indices unique), zeros elsewhere."""
    out = xp.zeros((n_rows,) + rows.shape[1:], dtype=rows.dtype)
    out[index] = rows
    return out, lambda g: (g[index], None)
