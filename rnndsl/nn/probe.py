"""The vanishing-gradient probe: ||dL/ds_t|| for every time step, layer and direction."""

from __future__ import annotations

from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.tensor import Tensor
from .module import RunContext, SeqInfo, SeqValue


def state_gradient_norms(net: Any, x: Any, lengths: Any = None, seed: Any = None) -> dict:
    """Norms of dL/ds_t (s_t = [c_t; h_t] for an LSTM) per recurrent layer.

    x (B, T, D) batch-first. The loss is ``sum(seed * y)`` for the network's output y, by default
    the sum of the output at each sequence's end (the acceptor's loss on y_n), so the numbers
    show how much of the final loss reaches each earlier state. Returns
    {layer: array (D, T)} (summed over the batch in squares; positions in input order, so for
    the backward direction position t is the state after reading x_t ... x_n).
    """
    xp = net.backend.xp
    xt = x if isinstance(x, Tensor) else Tensor(net.backend.asarray(x, dtype=net.dtype))
    Bn, T, _ = xt.shape
    lengths = Bk.host.full(Bn, T) if lengths is None else Bk.host.asarray(lengths)
    info = SeqInfo(lengths, T, xp)
    ctx = RunContext(train=False, record_states=True)
    # the probe needs a tape even when nothing requires a gradient: make the input a leaf
    xt = Tensor(xt.data, requires_grad=True)
    out = net.forward_value(SeqValue(xt.transpose(1, 0, 2), info), ctx)
    if seed is None:
        if out.ndim == 2:
            seed = xp.ones(out.shape, dtype=out.dtype)
        else:
            seed = xp.zeros(out.shape, dtype=out.dtype)
            seed[xp.arange(Bn), xp.asarray(lengths - 1)] = 1
    out.backward(seed)
    norms = {}
    for layer, steps in ctx.states.items():
        D = steps[0][0].shape[0]
        arr = Bk.host.zeros((D, T))
        for t, carry in enumerate(steps):
            sq = 0
            for s in carry:
                g = s.grad
                if g is not None:
                    sq = sq + Bk.to_host((g * g).sum(axis=(1, 2)))
            arr[:, t] = Bk.host.sqrt(sq)
        if D == 2 and Bn == 1:  # step t of the backward direction read position n-1-t
            n = int(lengths[0])
            arr[1, :n] = arr[1, :n][::-1].copy()
        norms[layer] = arr
    return norms
