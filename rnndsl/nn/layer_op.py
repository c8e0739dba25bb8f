"""The layer op: one tape node for a whole recurrent layer (all directions, all time steps).

    out, h_n[, c_n] = rnn_layer(x, W_ih, b, W_hh, b_hh, h_0[, c_0])

y_{1:n} = RNN*(x_{1:n}; s_0) computed by the compiled kernels of kernels/layer_cpu.py.py: each
direction is one call (input projection, the time loop, and in the backward the reversed loop,
the weight gradients and the input gradient), so a bi layer costs one hand-off forward and one
backward instead of a tape node, a Python step and a NumPy call per time step; the two
directions run at once on two threads (the kernels release the GIL; OpenBLAS is held at one
thread meanwhile, so the two do not fight over the cores).

The per-step tape (layers.Recurrent) stays the reference: the layer op returns the same outputs
and final states and accumulates the same gradients (tests/test_layer_op.py), and the network
takes the per-step path whenever something needs a node per step (``ctx.reference``, the
recorded states of the gradient probe and the unrolled pictures), on CuPy, without Numba or
NumPy's OpenBLAS, with ``RNNDSL_FUSED=0``, or when ``RNNDSL_LAYER_OP=0``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.ops import apply, op
from ..autodiff.tensor import Tensor, grad_enabled
from .module import RunContext, SeqInfo, SeqValue

LAYER_OP_ENV = "RNNDSL_LAYER_OP"  # "0": every recurrent layer runs the per-step tape
_KERNELS = "rnndsl.kernels.layer_cpu"
PARALLEL_MIN_ROWS = 64  # fewer packed rows per direction: both directions on the calling thread
# tape-free inference of at most this many rows (directions x sequences) keeps the per-step
# path, whose small-step kernel does the recurrent product inline: one 20-token sentence through
# a BiLSTM 128 (W4) took 1.2 ms there, 2.4 ms as a layer op (OpenBLAS calls with one row)
SMALL_INFERENCE_ROWS = 8

np = Bk.host


def kernels() -> Any:
    """kernels/layer_cpu.py when the layer op is on and its kernels import, else None."""
    if os.environ.get(LAYER_OP_ENV, "1") == "0":
        return None
    return Bk.fused_module(_KERNELS)


def cell_code(cell: Any) -> int | None:
    """The kernels' number for a cell form (the cell table's ``layer_kernel``), or None when
    the layer op has no kernel for it: the layer then runs the per-step tape."""
    return cell.type.layer_kernel(cell)


class Layout:
    """Where each direction's packed rows sit in the padded (T, B) grid (see kernels/layer_cpu.py).

    A sorted batch with padding is packed: step t computes its counts[t] running rows only.
    Any other batch computes all B rows at every step, ``act`` marking the running ones.
    """

    def __init__(self, info: SeqInfo, packed: bool):
        T, B = info.T, info.B
        if packed:
            pk = info.packing
            self.counts = np.asarray(pk.counts, dtype=np.int64)
            flat = np.asarray(Bk.to_host(pk.flat), dtype=np.int64)
            self.pos = (flat, flat[Bk.to_host(pk.rev)])
            P = flat.shape[0]
            self.act = (np.ones(P, dtype=np.uint8),) * 2
            self.gathered = (True, True)
        else:
            self.counts = np.full(T, B, dtype=np.int64)
            rev = np.asarray(Bk.to_host(info.rev_flat), dtype=np.int64)
            self.pos = (np.arange(T * B, dtype=np.int64), rev)
            act = info.mask_host.reshape(-1).astype(np.uint8)
            self.act = (act, act)
            self.gathered = (False, True)
        self.offs = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.P = int(self.offs[-1])


def layout_of(info: SeqInfo) -> Layout:
    """The batch's layout, computed once per batch (every layer of a batch shares it)."""
    cache = info.__dict__.setdefault("_layer_op_layout", {})
    packed = info.packing is not None
    if packed not in cache:
        cache[packed] = Layout(info, packed)
    return cache[packed]


_POOL: list = []  # one worker thread, made on first use


def _run_jobs(K: Any, jobs: list, parallel: bool) -> None:
    """Run the directions' jobs: on two threads (OpenBLAS at one thread meanwhile) or in turn."""
    if not parallel or len(jobs) < 2:
        for job in jobs:
            job()
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="rnndsl-layer"))
    before = K.blas_threads(1)
    try:
        fut = _POOL[0].submit(jobs[1])
        try:
            jobs[0]()
        finally:
            fut.result()
    finally:
        K.blas_threads(before)


@op("rnn_layer", multi=True)
def rnn_layer(xp, x, W_ih, bias, W_hh, b_hh, h0, c0, layout: Layout | None = None,
              cell: int = 0, need_dx: bool = True):
    """A recurrent layer over a batch: x (T, B, d_in) -> (out (T, B, D*H), h_n (D, B, H)[, c_n]).

    ``bias`` (D*G,) is the input projection's bias (b_ih + b_hh unless the cell keeps b_hh in
    the step, the GRU reset-after form, which takes b_hh (D, 1, G)); h0, c0 (D, B, H) the
    initial state (c0 for the LSTM only). Outputs are zero past each sequence's end; the final
    state of each sequence is the state at its own last token. ``need_dx=False`` (the input
    needs no gradient) leaves the input gradient out of the backward.
    """
    K = Bk.fused_module(_KERNELS)
    T, B, din = x.shape
    D, H, G = W_hh.shape
    dt = x.dtype
    lstm, gru_after = cell == K.LSTM, cell == K.GRU_AFTER
    X = np.ascontiguousarray(x.reshape(T * B, din))
    Wih, Whh, bias = (np.ascontiguousarray(a) for a in (W_ih, W_hh, bias))
    bh = np.ascontiguousarray(b_hh.reshape(D, G)) if gru_after else np.zeros((D, 1), dt)
    P = layout.P
    out = np.zeros((T * B, D * H), dtype=dt)
    h = np.array(h0, dtype=dt, order="C")
    c = np.array(c0, dtype=dt, order="C") if lstm else np.zeros((D, 1, 1), dt)
    dummy = np.zeros((1, 1), dt)

    def buf(use: bool, width: int) -> Any:
        return np.empty((P, width), dt) if use else dummy

    saved = []
    for d in range(D):
        gathered = layout.gathered[d]
        saved.append(dict(
            Xd=buf(gathered, din), pre=np.empty((P, G), dt), hh=buf(gru_after, G),
            hprev=np.empty((P, H), dt), cprev=buf(lstm, H),
            aux=buf(lstm or cell == K.GRU_BEFORE, H)))

    def forward_job(d: int):
        s = saved[d]
        return lambda: K.direction_forward(
            cell, X, layout.gathered[d], s["Xd"], Wih, d * G, bias, Whh[d], bh[d], h[d], c[d],
            layout.counts, layout.offs, layout.pos[d], layout.act[d], s["pre"], s["hh"],
            s["hprev"], s["cprev"], s["aux"], out, d * H)

    parallel = P >= PARALLEL_MIN_ROWS and Bk.host_threads() >= 2
    _run_jobs(K, [forward_job(d) for d in range(D)], parallel)

    def vjp(gs):
        g_out, g_h = gs[0], gs[1]
        g_c = gs[2] if lstm else None
        gout = np.ascontiguousarray(g_out.reshape(T * B, D * H)) if g_out is not None \
            else np.zeros((0, D * H), dt)
        dh = np.zeros((D, B, H), dt) if g_h is None else np.array(g_h, dtype=dt, order="C")
        if lstm:
            dc = np.zeros((D, B, H), dt) if g_c is None else np.array(g_c, dtype=dt, order="C")
        else:
            dc = np.zeros((D, 1, 1), dt)
        dWih = np.empty((din, D * G), dt)
        dbias = np.empty(D * G, dt)
        dW = np.empty((D, H, G), dt)
        dbh = np.empty((D, G), dt) if gru_after else np.zeros((D, 1), dt)
        dXs = []
        for d in range(D):
            if not need_dx:
                dXs.append((dummy, dummy))
            elif layout.gathered[d]:
                dXs.append((np.empty((P, din), dt), np.zeros((T * B, din), dt)))
            else:
                full = np.empty((T * B, din), dt)
                dXs.append((full, full))

        def backward_job(d: int):
            s = saved[d]
            return lambda: K.direction_backward(
                cell, X, layout.gathered[d], s["Xd"], Wih, d * G, Whh[d], layout.counts,
                layout.offs, layout.pos[d], layout.act[d], s["pre"], s["hh"], s["hprev"],
                s["cprev"], s["aux"], gout, d * H, dh[d], dc[d], np.empty((P, G), dt),
                buf(gru_after, G), np.empty((B, H), dt), np.empty((B, H), dt),
                np.empty((B, H), dt), dWih, dbias, dW[d], dbh[d], dXs[d][0], dXs[d][1],
                need_dx)

        _run_jobs(K, [backward_job(d) for d in range(D)], parallel)
        dX = dXs[0][1] if need_dx else None
        for d in range(1, D if need_dx else 0):
            dX += dXs[d][1]
        grads = [None if dX is None else dX.reshape(T, B, din), dWih, dbias, dW,
                 dbh.reshape(D, 1, G) if gru_after else None, dh, dc if lstm else None]
        return tuple(grads)

    outs = (out.reshape(T, B, D * H), h) + ((c,) if lstm else ())
    return outs, vjp


def usable(layer: Any, inp: Tensor, ctx: RunContext) -> bool:
    """Whether this call of ``layer`` runs as one layer op (else the per-step tape)."""
    if ctx.reference or ctx.record_states or inp.xp is not Bk.host:
        return False
    if inp.dtype not in (np.float32, np.float64):
        return False
    if not grad_enabled() and inp.shape[1] * layer.D <= SMALL_INFERENCE_ROWS:
        return False
    if cell_code(layer.cell) is None:
        return False
    return kernels() is not None


def forward(layer: Any, inp: Tensor, bias: Tensor, info: SeqInfo, ctx: RunContext) -> SeqValue:
    """Recurrent.forward as one layer op: the same outputs and final states as the per-step
    path (packed for a sorted batch with padding, masked otherwise)."""
    T, Bn, _ = inp.shape
    carry = layer.initial_carry(Bn, ctx, inp.dtype, inp.xp)
    lstm = layer.cell.kind == "lstm"
    b_hh = layer.b_hh if layer.cell.has_hidden_bias else None
    outs = apply("rnn_layer", inp, layer.W_ih, bias, layer.W_hh, b_hh, carry[0],
                 carry[1] if lstm else None, layout=layout_of(info), cell=cell_code(layer.cell),
                 need_dx=inp.requires_grad)
    ctx.final_states[layer.name] = tuple(outs[1:])
    return SeqValue(outs[0], info, bidirectional=layer.D == 2)
