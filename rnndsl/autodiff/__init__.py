"""Reverse-mode autodiff on NumPy or CuPy: Tensor, the op registry, backward, gradcheck."""

from . import functional
from .backend import Backend, get_backend, to_host
from .gradcheck import check_grads
from .ops import OPS, apply, op
from .tensor import Node, RowSparse, Tensor, no_grad, scope

__all__ = [
    "OPS", "Backend", "Node", "RowSparse", "Tensor", "apply", "check_grads", "functional",
    "get_backend", "no_grad", "op", "scope", "to_host",
]
