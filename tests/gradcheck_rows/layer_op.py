"""The gradient row of the layer op (nn/layer_op.py), float64: one call per cell form, a bi
LSTM and a bi GRU (reset after) over a packed batch, the lecture's bi GRU and a uni tanh SRNN
over a masked one, checked together (every weight, bias, initial state and the input)."""

from __future__ import annotations

import numpy as np

from rnndsl.autodiff import functional as F
from rnndsl.autodiff.ops import apply
from rnndsl.nn import layer_op
from rnndsl.nn.module import SeqInfo

from .core import rn

H, DIN = 2, 3
# (kernel cell code, gates, lengths, directions): packed batches are sorted, masked ones not
CASES = [(2, 4, [3, 2, 1], 2), (3, 3, [3, 3, 1], 2), (4, 3, [1, 3, 2], 2), (0, 1, [2, 3], 1)]


def _case_args(gates, lengths, D, cell):
    T, B, G = max(lengths), len(lengths), gates * H
    args = [rn(T, B, DIN), rn(DIN, D * G), rn(D * G), rn(D, H, G), rn(D, B, H)]
    if cell == 3:
        args.append(rn(D, 1, G))  # b_hh, inside the step
    if cell == 2:
        args.append(rn(D, B, H))  # c0
    return args


def _row():
    layouts = [layer_op.layout_of(SeqInfo(lengths, max(lengths), np))
               for _, _, lengths, _ in CASES]
    parts = [_case_args(g, lengths, D, cell) for cell, g, lengths, D in CASES]
    sizes = [len(p) for p in parts]

    def f(*arrays):
        outs, k = [], 0
        for (cell, _, _, _), layout, n in zip(CASES, layouts, sizes):
            x, W_ih, b, W_hh, h0, *rest = arrays[k:k + n]
            k += n
            b_hh = rest[0] if cell == 3 else None
            c0 = rest[0] if cell == 2 else None
            res = apply("rnn_layer", x, W_ih, b, W_hh, b_hh, h0, c0, layout=layout, cell=cell)
            outs.extend(o.reshape(-1) for o in res)
        return F.concat(outs, axis=0)

    return f, tuple(a for p in parts for a in p)


ROWS = {"rnn_layer": _row}
