"""Fused recurrent step ops: one tape node per time step, with an analytic backward.

Every step op works on a leading direction axis D (1 for a uni layer, 2 for a bi layer whose
backward direction reads each sequence reversed), so one call and one matrix product per step
serve both directions. Shapes: xg (D, B, G) is the precomputed input projection x_t W^x + b
(G = gates * H), h and c are (D, B, H), W is (D, H, G). ``mask`` is None when every sequence is
still running at this step, else a (B, 1) bool array: where it is False the state is carried
through unchanged, so a sequence's final state is the state at its own last token. When the
batch is sorted longest first, ``n`` (the number of sequences still running) replaces the mask
and the step computes on those rows only, as PyTorch's packed sequences do.

Internal gate orders: LSTM (i, f, o, z) so the three sigmoids are one contiguous block; GRU
(r, z, n). ``cells.py`` converts to and from PyTorch's orders.
"""

from __future__ import annotations

from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.ops import op
from ..autodiff.tensor import OuterGrad

FUSED_ENV = Bk.FUSED_ENV  # "0": always the generic gate arithmetic
_FUSED_CPU = f"{__package__}.fused_cpu"  # the optional Numba override of the gate arithmetic
_FUSED_GPU = f"{__package__}.fused_gpu"  # the CuPy ElementwiseKernel override
_FUSED_GRU_CPU = f"{__package__}.fused_gru_cpu"  # the Numba override of the GRU gates


def _gpu_kernels(xp, a):
    """fused_gpu for a contiguous CuPy array when the fused kernels are on, else None."""
    if xp is Bk.host or not a.flags.c_contiguous:
        return None
    return Bk.fused_module(_FUSED_GPU)


def lstm_gate_kernels(xp, a) -> tuple:
    """The gate arithmetic for this step: a fused kernel (an override of the generic one, tested
    equal to it) when there is one for these arrays, else the generic. Fused: Numba for
    contiguous float32 host arrays, a CuPy ElementwiseKernel for contiguous CuPy arrays."""
    if xp is Bk.host:
        if a.dtype == Bk.host.float32 and a.flags.c_contiguous:
            fused = Bk.fused_module(_FUSED_CPU)
            if fused is not None:
                return fused.lstm_gates_forward, fused.lstm_gates_backward
    else:
        fused = _gpu_kernels(xp, a)
        if fused is not None:
            return fused.lstm_gates_forward, fused.lstm_gates_backward
    return _lstm_gates_forward, _lstm_gates_backward


def gru_gate_kernels(xp, hh) -> tuple:
    """The GRU gate arithmetic: Numba for float32 host arrays (fused_gru_cpu.py), the CuPy
    kernel for contiguous CuPy arrays, else the generic."""
    fused = _gru_cpu_kernels(xp, hh) if xp is Bk.host else _gpu_kernels(xp, hh)
    if fused is not None:
        return fused.gru_gates_forward, fused.gru_gates_backward
    return _gru_gates_forward, _gru_gates_backward


def _gru_cpu_kernels(xp, a):
    """fused_gru_cpu for float32 host arrays when the fused kernels are on, else None."""
    if a.dtype != Bk.host.float32:
        return None
    return Bk.fused_module(_FUSED_GRU_CPU)


def _times_wt(xp, d, W):
    """d W^T per direction, d (D, B, G), W (D, H, G): the gradient reaching h_{t-1}.

    On the host it is computed as (W d^T)^T: with the small batch as the short side OpenBLAS
    spreads the product over the cores, 1.4x faster at B = 20-32 (measured; it does not for
    d W^T). The transpose back to (D, B, H) is a small copy.
    """
    if xp is Bk.host:
        return xp.ascontiguousarray(xp.swapaxes(xp.matmul(W, xp.swapaxes(d, -1, -2)), -1, -2))
    fused = Bk.fused_module(_FUSED_GPU)
    if fused is not None:
        return fused.step_product_t(xp, d, W)
    return xp.matmul(d, xp.swapaxes(W, -1, -2))


def lstm_small_step_kernel(xp, W, rows: int):
    """fused_cpu.lstm_small_step for a tape-free step of at most SMALL_ROWS rows (directions x
    sequences) of float32 host arrays when Numba is there, else None."""
    if xp is Bk.host and W.dtype == Bk.host.float32:
        fused = Bk.fused_module(_FUSED_CPU)
        if fused is not None and rows <= fused.SMALL_ROWS:
            return fused.lstm_small_step
    return None


def _sigmoid_(xp, a):
    """In-place logistic through tanh: no overflow for large |a|."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def run_step(xp, core, xg, carry, params, mask, n, **static):
    """Run a cell's core step with the batch's bookkeeping; returns (new carry, vjp).

    ``mask`` (B, 1) bool: rows where it is False keep their state. ``n``: only the first n rows
    are still running (the batch is sorted by length, longest first), so the step computes on
    that prefix alone and the other rows keep their state, the way packed sequences do.
    The vjp returns cotangents for (xg, *carry, *params, mask).
    """
    B = xg.shape[1]
    if n is not None and n < B:
        new_a, vjp_a = core(xp, xg[:, :n], tuple(s[:, :n] for s in carry), params, **static)
        outs = []
        for s, s_a in zip(carry, new_a):
            o = s.copy()
            o[:, :n] = s_a
            outs.append(o)

        def vjp(gs):
            gx_a, gc_a, gp = vjp_a(tuple(None if g is None else g[:, :n] for g in gs))
            g_xg = xp.zeros(xg.shape, dtype=gx_a.dtype)
            g_xg[:, :n] = gx_a
            g_carry = []
            for g, g_a, s in zip(gs, gc_a, carry):
                full = xp.zeros(s.shape, dtype=s.dtype) if g is None else g.copy()
                full[:, :n] = g_a
                g_carry.append(full)
            return (g_xg, *g_carry, *gp, None)

        return tuple(outs), vjp
    new, vjp_c = core(xp, xg, carry, params, **static)
    if mask is None:
        return new, lambda gs: (*_flat(vjp_c(gs)), None)
    outs = tuple(xp.where(mask, a, s) for a, s in zip(new, carry))

    def vjp_masked(gs):
        gx, gc, gp = vjp_c(tuple(None if g is None else xp.where(mask, g, 0) for g in gs))
        g_carry = tuple(gci if g is None else gci + xp.where(mask, 0, g)
                        for g, gci in zip(gs, gc))
        return (gx, *g_carry, *gp, None)

    return outs, vjp_masked


def _flat(res):
    gx, gc, gp = res
    return (gx, *gc, *gp)


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
        g_h = _times_wt(xp, da, W)
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


def _srnn_core(xp, xg, carry, params, act="tanh"):
    (h,), (W,) = carry, params
    a = xp.matmul(h, W)
    a += xg
    if act == "tanh":
        xp.tanh(a, out=a)
    else:
        xp.maximum(a, 0, out=a)

    def vjp(gs):
        (gh,) = gs
        if gh is None:
            gh = xp.zeros_like(a)
        da = gh * (1 - a * a) if act == "tanh" else gh * (a > 0)
        return da, (_times_wt(xp, da, W),), (OuterGrad([(h, da)]),)

    return (a,), vjp


@op("srnn_step", multi=True)
def srnn_step(xp, xg, h, W, mask=None, n=None, act: str = "tanh"):
    """s_i = R_SRNN(s_{i-1}, x_i) = g(s_{i-1} W^s + x_i W^x + b), g = tanh or ReLU; y_i = s_i."""
    return run_step(xp, _srnn_core, xg, (h,), (W,), mask, n, act=act)


def _gru_core(xp, xg, carry, params):
    (h,), (W, bh) = carry, params
    hh = xp.matmul(h, W)
    hh += bh
    gates_forward, gates_backward = gru_gate_kernels(xp, hh)
    saved, h_new = gates_forward(xp, xg, hh, h)

    def vjp(gs):
        (gh,) = gs
        dxg, dhh, gh_z = gates_backward(xp, saved, hh, h, gh)
        g_h = _times_wt(xp, dhh, W)
        g_h += gh_z
        return dxg, (g_h,), (OuterGrad([(h, dhh)]), dhh.sum(axis=-2, keepdims=True))

    return (h_new,), vjp


def _gru_gates_forward(xp, xg, hh, h):
    """The GRU gates of one step from xg and hh = h W + b_h: (saved for the backward, h_new)."""
    H = h.shape[-1]
    rz = xg[..., : 2 * H] + hh[..., : 2 * H]
    _sigmoid_(xp, rz)
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
    fused = _gru_cpu_kernels(xp, xg) if xp is Bk.host else None
    if fused is not None:
        return fused.gru_lecture_core(xp, xg, carry, params)
    (h,), (W,) = carry, params
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
        (gh,) = gs
        if gh is None:
            gh = xp.zeros_like(h)
        dxg = xp.empty(xg.shape, dtype=xg.dtype)
        dan = gh * z * (1 - n * n)
        dxg[..., 2 * H :] = dan
        g_rh = _times_wt(xp, dan, W_n)
        dxg[..., :H] = g_rh * h * r * (1 - r)
        dxg[..., H : 2 * H] = gh * (n - h) * z * (1 - z)
        g_h = _times_wt(xp, dxg[..., : 2 * H], W_rz)
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


def _reversed_half(xp, a, rev_flat, lo: int):
    """a[..., lo:] of a contiguous (T, B, F) with each sequence reversed within its length.

    ``rev_flat`` (T*B,) int: row t*B+b comes from row rev[t, b]*B+b, where rev[t, b] =
    len_b - 1 - t for t < len_b, else t (a reversal that is its own inverse); None when every
    sequence fills all T steps, and the reversal is a view a[::-1]. Otherwise one gather of the
    half rows by advanced indexing: no strided copy of the half first, and half the bytes of a
    whole-row ``take`` (which for the char encoder of a tagger, 11,200 rows of 800, wrote a fresh
    36 MB array: 13 ms against 4.6 ms, measured).
    """
    if rev_flat is None:
        return a[::-1, :, lo:]
    T, Bn, Fd = a.shape
    return a.reshape(T * Bn, Fd)[rev_flat, lo:].reshape(T, Bn, Fd - lo)


@op("bi_arrange")
def bi_arrange(xp, xp_all, rev_flat, D: int = 2):
    """(T, B, D*G) input projections -> (T, D, B, G), the backward half reversed per sequence
    (see _reversed_half for ``rev_flat``)."""
    T, Bn, DG = xp_all.shape
    G = DG // D
    out = xp.empty((T, D, Bn, G), dtype=xp_all.dtype)
    out[:, 0] = xp_all[..., :G]
    if D == 2:
        out[:, 1] = _reversed_half(xp, xp_all, rev_flat, G)

    def vjp(g):
        gx = xp.empty(xp_all.shape, dtype=g.dtype)
        gx[..., :G] = g[:, 0]
        if D == 2 and rev_flat is None:
            gx[..., G:] = g[::-1, 1]
        elif D == 2:
            # row (t, b) of the backward half of g (T, D, B, G) is row (rev*D + 1)*B + b
            rows = (rev_flat // Bn) * (D * Bn) + Bn + rev_flat % Bn
            gx[..., G:] = g.reshape(T * D * Bn, G)[rows].reshape(T, Bn, G)
        return gx, None

    return out, vjp


@op("bi_merge")
def bi_merge(xp, *hs, rev_flat=None, mask=None):
    """T step states (D, B, H) -> (T, B, D*H) outputs y_i = [y_i^f; y_i^b], zero past each end.

    The states are written straight into the output (no stacked copy first); the gradient
    comes back as views of one (T, D, B, H) array. ``mask`` (T, B, 1) is None when every
    sequence fills all T steps (see _reversed_half for ``rev_flat``).
    """
    T = len(hs)
    D, Bn, H = hs[0].shape
    out = xp.empty((T, Bn, D * H), dtype=hs[0].dtype)
    for t in range(T):
        out[t, :, :H] = hs[t][0]
    if D == 2:
        bwd = xp.stack([h[1] for h in hs])
        out[..., H:] = _reversed_half(xp, bwd, rev_flat, 0)
    if mask is not None:
        out *= mask

    def vjp(g):
        if mask is not None:
            g = g * mask
        gh = xp.empty((T, D, Bn, H), dtype=g.dtype)
        gh[:, 0] = g[..., :H]
        if D == 2:
            gh[:, 1] = _reversed_half(xp, g, rev_flat, H)
        return tuple(gh[t] for t in range(T))

    return out, vjp


@op("pack_rows")
def pack_rows(xp, a, index):
    """a[index] for a 2-D a and unique row indices (a batch's real positions, in step order);
    the gradient puts the rows back, zeros elsewhere."""
    shape = a.shape  # the vjp keeps the shape, not the array

    def vjp(g):
        gx = xp.zeros(shape, dtype=g.dtype)
        gx[index] = g
        return gx, None

    return a[index], vjp


def _packed_to_steps(xp, packed, rev, counts: tuple, D: int) -> tuple:
    """Packed rows (P, D*F) -> one (D, n_t, F) block per step (views of one buffer, each block
    contiguous), the backward half read through ``rev`` (each sequence reversed; see
    module.Packing)."""
    P, DF = packed.shape
    F = DF // D
    buf = xp.empty((D * P, F), dtype=packed.dtype)
    bwd = packed[rev, F:] if D == 2 else None
    blocks, off = [], 0
    for n in counts:
        blk = buf[D * off: D * (off + n)].reshape(D, n, F)
        blk[0] = packed[off: off + n, :F]
        if D == 2:
            blk[1] = bwd[off: off + n]
        blocks.append(blk)
        off += n
    return tuple(blocks)


def _steps_to_packed(xp, blocks, rev, counts: tuple, D: int, F: int, dtype) -> Any:
    """The inverse of _packed_to_steps: per-step blocks (D, n_t, F), None for zeros, -> packed
    rows (P, D*F) (``rev`` is its own inverse)."""
    P = sum(counts)
    alloc = xp.zeros if any(blk is None for blk in blocks) else xp.empty
    packed = alloc((P, D * F), dtype=dtype)
    bwd = alloc((P, F), dtype=dtype) if D == 2 else None
    off = 0
    for n, blk in zip(counts, blocks):
        if blk is not None:
            packed[off: off + n, :F] = blk[0]
            if D == 2:
                bwd[off: off + n] = blk[1]
        off += n
    if D == 2:
        packed[:, F:] = bwd[rev]
    return packed


@op("packed_arrange", multi=True)
def packed_arrange(xp, proj, rev, counts: tuple = (), D: int = 2):
    """Packed input projections (P, D*G) -> one (D, n_t, G) input per step, the backward half
    read in each sequence's reverse order (see _packed_to_steps)."""
    G, dtype = proj.shape[1] // D, proj.dtype  # the vjp keeps no reference to the projection

    def vjp(gs):
        return _steps_to_packed(xp, gs, rev, counts, D, G, dtype), None

    return _packed_to_steps(xp, proj, rev, counts, D), vjp


@op("packed_merge")
def packed_merge(xp, *hs, rev=None, flat=None, T: int = 0):
    """Step states (D, n_t, H) of a packed batch -> (T, B, D*H) padded outputs [y^f; y^b], zero
    past each end (B = n_0); the packed twin of bi_merge (see module.Packing)."""
    D, Bn, H = hs[0].shape
    counts = tuple(h.shape[1] for h in hs)  # the vjp keeps the counts, not the states
    packed = _steps_to_packed(xp, hs, rev, counts, D, H, hs[0].dtype)
    out = xp.zeros((T * Bn, D * H), dtype=packed.dtype)
    out[flat] = packed

    def vjp(g):
        return _packed_to_steps(xp, g.reshape(T * Bn, D * H)[flat], rev, counts, D)

    return out.reshape(T, Bn, D * H), vjp


@op("scatter_rows")
def scatter_rows(xp, rows, index, n_rows: int):
    """out (n_rows, d) with out[index[i]] = rows[i] (indices unique), zeros elsewhere."""
    out = xp.zeros((n_rows,) + rows.shape[1:], dtype=rows.dtype)
    out[index] = rows
    return out, lambda g: (g[index], None)
