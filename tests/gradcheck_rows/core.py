"""Gradient-check rows for the primitive ops and the fused recurrent step ops.

Each row maps an op name to a function returning (f, args): ``check_grads(f, *args)`` must pass
in float64. Inputs keep away from kinks (relu at 0, ties in max, |x| at 0).
"""

from __future__ import annotations

import numpy as np

from rnndsl.autodiff import functional as F
from rnndsl.autodiff.ops import apply

R = np.random.default_rng(1234)


def reseed(name: str) -> None:
    """Each row draws the same inputs whatever ran before it in this process (test order and
    pytest-xdist's distribution used to change them)."""
    global R
    R = np.random.default_rng([1234, *name.encode()])


def rn(*shape):
    return R.standard_normal(shape)


def away(*shape, lo=0.2):
    """Random values with |x| >= lo (for kinks at 0)."""
    x = rn(*shape)
    return np.sign(x) * (np.abs(x) + lo)


def pos(*shape):
    return np.abs(rn(*shape)) + 0.5


def _mask(B):
    m = np.ones((B, 1), bool)
    m[-1] = False
    return m


ROWS = {
    "add": lambda: (lambda a, b: a + b, (rn(3, 4), rn(4))),
    "sub": lambda: (lambda a, b: a - b, (rn(3, 1), rn(3, 4))),
    "mul": lambda: (lambda a, b: a * b, (rn(2, 3, 4), rn(3, 1))),
    "div": lambda: (lambda a, b: a / b, (rn(3, 4), pos(4))),
    "neg": lambda: (lambda a: -a, (rn(3, 4),)),
    "pow": lambda: (lambda a: a**3, (rn(3, 4),)),
    "maximum": lambda: (lambda a, b: F.maximum(a, b),
                        (rn(3, 4), rn(3, 4) + 3.0 * (R.random((3, 4)) > 0.5))),
    "astype": lambda: (lambda a: a.astype("float64") * 2.0, (rn(3, 4),)),
    "exp": lambda: (F.exp, (rn(3, 4),)),
    "log": lambda: (F.log, (pos(3, 4),)),
    "sqrt": lambda: (lambda a: apply("sqrt", a), (pos(3, 4),)),
    "abs": lambda: (lambda a: apply("abs", a), (away(3, 4),)),
    "tanh": lambda: (F.tanh, (rn(3, 4),)),
    "sigmoid": lambda: (F.sigmoid, (rn(3, 4) * 3,)),
    "relu": lambda: (F.relu, (away(3, 4),)),
    "softmax": lambda: (lambda a: F.softmax(a, axis=0), (rn(3, 4),)),
    "log_softmax": lambda: (F.log_softmax, (rn(3, 5),)),
    "logsumexp": lambda: (lambda a: F.logsumexp(a, axis=(0, 2)), (rn(3, 2, 4),)),
    "sum": lambda: (lambda a: a.sum(axis=1, keepdims=True), (rn(3, 4, 2),)),
    "mean": lambda: (lambda a: a.mean(axis=(0, 2)), (rn(3, 4, 2),)),
    "max": lambda: (lambda a: a.max(axis=1), (rn(3, 5),)),
    "matmul": lambda: (lambda a, b: a @ b, (rn(2, 3, 4), rn(4, 5))),
    "affine": lambda: (lambda x, w, b: apply("affine", x, w, b), (rn(5, 3), rn(3, 4), rn(4))),
    "reshape": lambda: (lambda a: a.reshape(6, 2) * 1.0, (rn(3, 4),)),
    "transpose": lambda: (lambda a: a.transpose(2, 0, 1), (rn(2, 3, 4),)),
    "concat": lambda: (lambda a, b: F.concat([a, b], axis=1), (rn(2, 3), rn(2, 4))),
    "stack": lambda: (lambda a, b: F.stack([a, b], axis=1), (rn(2, 3), rn(2, 3))),
    "unbind": lambda: (lambda a: F.unbind(a, axis=1)[0] * F.unbind(a, axis=1)[2], (rn(2, 3, 2),)),
    "getitem": lambda: (lambda a: a[np.array([0, 2, 0]), 1:3], (rn(3, 4),)),
    "gather_rows": lambda: (lambda t: F.gather_rows(t, np.array([[0, 2], [2, 1]])), (rn(4, 3),)),
    "take_along": lambda: (
        lambda a: F.take_along(a, np.array([[1, 0], [0, 0], [2, 1]]), axis=0), (rn(3, 2),)),
    "where": lambda: (lambda a, b: F.where(np.array([[True, False, True]]), a, b),
                      (rn(2, 3), rn(2, 3))),
    "dropout": lambda: (
        lambda a: F.dropout(a, 0.3, np.random.default_rng(7)), (rn(4, 5),)),
    "softmax_cross_entropy": lambda: (
        lambda a: F.softmax_cross_entropy(a, np.array([[0, 2], [1, 1]]),
                                          np.array([[True, True], [True, False]])),
        (rn(2, 2, 3),)),
    "linear_softmax_xent": lambda: (
        lambda x, W, b: F.linear_softmax_xent(x, W, b, np.array([0, 2, 1, 4]),
                                              np.array([True, True, False, True])),
        (rn(4, 3), rn(3, 5), rn(5))),
    "multiclass_hinge": lambda: (
        lambda a: F.multiclass_hinge(a, np.array([0, 2, 1, 1]), 1.0),
        (np.array([[2.0, 0.3, -1.0], [0.1, 0.5, 0.9], [0.0, 0.1, 3.0], [1.0, 1.6, -0.2]]),)),
    # fused recurrent steps: (xg, h, [c], W, [b], mask) with a direction axis D = 2
    "lstm_step": lambda: (
        lambda xg, h, c, W: F.concat(list(apply("lstm_step", xg, h, c, W, _mask(3))), axis=-1),
        (rn(2, 3, 8), rn(2, 3, 2), rn(2, 3, 2), rn(2, 2, 8))),
    "srnn_step": lambda: (  # the shrinking-prefix form: 2 of 3 sequences still run
        lambda xg, h, W: apply("srnn_step", xg, h, W, None, n=2, act="tanh")[0],
        (rn(2, 3, 2), rn(2, 3, 2), rn(2, 2, 2))),
    "indrnn_step": lambda: (  # u (D, 1, H): one recurrent weight per unit
        lambda xg, h, u: apply("indrnn_step", xg, h, u, _mask(3), act="relu")[0],
        (away(2, 3, 2), rn(2, 3, 2), rn(2, 1, 2) * 0.3)),
    "gru_step": lambda: (
        lambda xg, h, W, b: apply("gru_step", xg, h, W, b, _mask(3))[0],
        (rn(2, 3, 6), rn(2, 3, 2), rn(2, 2, 6), rn(2, 1, 6))),
    "gru_lecture_step": lambda: (
        lambda xg, h, W: apply("gru_lecture_step", xg, h, W, None, n=1)[0],
        (rn(2, 3, 6), rn(2, 3, 2), rn(2, 2, 6))),
    "bi_arrange": lambda: (
        lambda a: apply("bi_arrange", a, np.array([2, 1, 0, 3, 4, 5]), D=2),
        (rn(3, 2, 4),)),
    "bi_merge": lambda: (  # three steps of (D, B, H) states
        lambda a, b, c: apply("bi_merge", a, b, c, rev_flat=np.array([2, 1, 0, 3, 4, 5]),
                              mask=np.array([[[1.0], [1.0]], [[1.0], [1.0]], [[1.0], [0.0]]])),
        (rn(2, 2, 2), rn(2, 2, 2), rn(2, 2, 2))),
    # lengths [3, 2, 1] packed (see module.Packing): counts (3, 2, 1), flat, rev
    "pack_rows": lambda: (
        lambda a: apply("pack_rows", a, np.array([0, 1, 2, 3, 4, 6])), (rn(9, 2),)),
    "packed_arrange": lambda: (
        lambda a: F.concat([x.reshape(-1) for x in apply(
            "packed_arrange", a, np.array([5, 4, 2, 3, 1, 0]), counts=(3, 2, 1), D=2)], axis=0),
        (rn(6, 4),)),
    "packed_merge": lambda: (  # three steps of (D, n_t, H) states
        lambda a, b, c: apply("packed_merge", a, b, c, rev=np.array([5, 4, 2, 3, 1, 0]),
                              flat=np.array([0, 1, 2, 3, 4, 6]), T=3),
        (rn(2, 3, 2), rn(2, 2, 2), rn(2, 1, 2))),
    "scatter_rows": lambda: (
        lambda a: apply("scatter_rows", a, np.array([3, 0]), n_rows=5), (rn(2, 3),)),
}
