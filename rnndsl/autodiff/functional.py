"""Function-style spellings of the ops, for code that reads better as f(x) than x.f()."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .ops import apply
from .tensor import Tensor, as_tensor


def exp(x: Tensor) -> Tensor:
    return apply("exp", x)


def log(x: Tensor) -> Tensor:
    return apply("log", x)


def tanh(x: Tensor) -> Tensor:
    return apply("tanh", x)


def sigmoid(x: Tensor) -> Tensor:
    return apply("sigmoid", x)


def relu(x: Tensor) -> Tensor:
    return apply("relu", x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return apply("softmax", x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return apply("log_softmax", x, axis=axis)


def logsumexp(x: Tensor, axis: Any = -1, keepdims: bool = False) -> Tensor:
    return apply("logsumexp", x, axis=axis, keepdims=keepdims)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    return apply("matmul", a, b)


def concat(xs: Sequence[Tensor], axis: int = -1) -> Tensor:
    if len(xs) == 1:
        return xs[0]
    return apply("concat", *xs, axis=axis)


def stack(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    return apply("stack", *xs, axis=axis)


def unbind(x: Tensor, axis: int = 0) -> tuple[Tensor, ...]:
    return apply("unbind", x, axis=axis)


def where(cond: Any, a: Tensor, b: Any) -> Tensor:
    a = as_tensor(a)
    return apply("where", cond, a, as_tensor(b, a))


def gather_rows(table: Tensor, indices: Any) -> Tensor:
    return apply("gather_rows", table, indices)


def take_along(x: Tensor, index: Any, axis: int = 0) -> Tensor:
    return apply("take_along", x, index, axis=axis)


def dropout(x: Tensor, p: float, rng: Any, noise_shape: tuple[int, ...] | None = None) -> Tensor:
    if p <= 0:
        return x
    return apply("dropout", x, p=p, rng=rng, noise_shape=noise_shape)


def softmax_cross_entropy(logits: Tensor, targets: Any, valid: Any = None) -> Tensor:
    return apply("softmax_cross_entropy", logits, targets, valid)


def linear_softmax_xent(x: Tensor, W: Tensor, b: Tensor, targets: Any,
                        valid: Any = None) -> Tensor:
    """softmax_cross_entropy(x W + b, targets, valid) for 2-D x, as one op (see ops.py)."""
    return apply("linear_softmax_xent", x, W, b, targets, valid)


def multiclass_hinge(scores: Tensor, targets: Any, margin: float = 1.0) -> Tensor:
    return apply("multiclass_hinge", scores, targets, margin=margin)


def maximum(a: Tensor, b: Any) -> Tensor:
    return apply("maximum", a, as_tensor(b, a))
