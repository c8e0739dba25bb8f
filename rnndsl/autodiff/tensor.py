"""Tensor: a backend array plus its place on the tape.

Calling an op on tensors records a ``Node`` that holds the op's name, its ordered parents and
its vjp closure. ``Tensor.backward`` walks the nodes in reverse topological order (see grad.py).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from . import backend as Bk

_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("rnndsl_grad", default=True)
_scope: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("rnndsl_scope", default=())


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run ops without recording a tape (inference)."""
    token = _grad_enabled.set(False)
    try:
        yield
    finally:
        _grad_enabled.reset(token)


def grad_enabled() -> bool:
    return _grad_enabled.get()


class scope:  # noqa: N801 - used as a function: `with scope("t3"):`
    """Name the nodes recorded inside, e.g. ``layer0.fwd.t3`` (stable names for pictures).

    A plain class rather than a generator context manager: entered once per time step.
    """

    __slots__ = ("name", "token")

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        self.token = _scope.set(_scope.get() + (self.name,))

    def __exit__(self, *exc: Any) -> None:
        _scope.reset(self.token)


def current_scope() -> str:
    return ".".join(_scope.get())


class RowSparse:
    """A gradient that is non-zero only in some rows: dense[indices[i]] += values[i]."""

    __slots__ = ("indices", "values", "shape", "unique")

    def __init__(self, indices: Any, values: Any, shape: tuple[int, ...], unique: bool = False):
        self.indices = indices
        self.values = values
        self.shape = tuple(shape)
        self.unique = unique  # the indices are distinct (coalesced): coalesce() is itself

    def to_dense(self) -> Any:
        xp = Bk.namespace_of(self.values)
        out = xp.zeros(self.shape, dtype=self.values.dtype)
        Bk.scatter_add_rows(xp, out, self.indices, self.values)
        return out

    def coalesce(self) -> RowSparse:
        """Unique rows with their summed values."""
        if self.unique:
            return self
        xp = Bk.namespace_of(self.values)
        if xp is Bk.host:
            uniq, vals = Bk.sum_rows(self.indices.reshape(-1), self.values)
            return RowSparse(uniq, vals, self.shape, unique=True)
        uniq, inv = xp.unique(self.indices, return_inverse=True)
        vals = xp.zeros((uniq.shape[0],) + self.shape[1:], dtype=self.values.dtype)
        Bk.scatter_add_rows(xp, vals, inv.reshape(-1), self.values)
        return RowSparse(uniq, vals, self.shape, unique=True)

    def __add__(self, other: Any) -> Any:
        xp = Bk.namespace_of(self.values)
        if isinstance(other, RowSparse):
            return RowSparse(
                xp.concatenate([self.indices, other.indices]),
                xp.concatenate([self.values, other.values]),
                self.shape,
            )
        out = other.copy()
        Bk.scatter_add_rows(xp, out, self.indices, self.values)
        return out

    __radd__ = __add__


class OuterGrad:
    """A deferred weight gradient sum_i a_i^T b_i (batched over leading axes).

    Each step of an unrolled layer adds one outer product h_{t-1}^T da_t to the same weight;
    kept as pairs, they become one large matrix product when the gradient is read, instead of
    one small product per step.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: list):
        self.pairs = pairs

    @property
    def shape(self) -> tuple[int, ...]:
        a, b = self.pairs[0]
        return a.shape[:-2] + (a.shape[-1], b.shape[-1])

    def materialize(self) -> Any:
        xp = Bk.namespace_of(self.pairs[0][0])
        if len(self.pairs) == 1:
            a, b = self.pairs[0]
        else:
            a = xp.concatenate([p[0] for p in self.pairs], axis=-2)
            b = xp.concatenate([p[1] for p in self.pairs], axis=-2)
        return xp.matmul(xp.swapaxes(a, -1, -2), b)


def dense(g: Any) -> Any:
    """A cotangent as a plain array (deferred outer products are multiplied out)."""
    return g.materialize() if isinstance(g, OuterGrad) else g


def add_grads(a: Any, b: Any, a_owned: bool) -> tuple[Any, bool]:
    """a + b for gradients that may be dense arrays or RowSparse; returns (sum, owned).

    ``owned`` means the result is a buffer of our own that may be updated in place; a cotangent
    handed out by a vjp may be shared (add's vjp returns the same array twice), so it is never
    changed in place until it has been copied once.
    """
    if a is None:
        return b, False
    if isinstance(a, OuterGrad) or isinstance(b, OuterGrad):
        if isinstance(a, OuterGrad) and isinstance(b, OuterGrad):
            return OuterGrad(a.pairs + b.pairs), False
        if isinstance(a, OuterGrad):
            a, a_owned = a.materialize(), True
        b = dense(b)
    if isinstance(a, RowSparse) or isinstance(b, RowSparse):
        if isinstance(a, RowSparse) and not isinstance(b, RowSparse):
            a, b, a_owned = b, a, False
        if isinstance(a, RowSparse):
            return a + b, False
        if not a_owned:
            a = a.copy()
        Bk.scatter_add_rows(Bk.namespace_of(a), a, b.indices, b.values)
        return a, True
    if a_owned and a.shape == b.shape:
        a += b
        return a, True
    return a + b, True


class Node:
    """One op application on the tape."""

    __slots__ = ("op", "parents", "vjp", "n_out", "multi", "_scope", "retained", "out_shapes")

    def __init__(self, op: str, parents: tuple, vjp: Any, n_out: int, multi: bool, out_shapes):
        self.op = op
        self.parents = parents
        self.vjp = vjp
        self.n_out = n_out
        self.multi = multi
        self._scope = _scope.get()  # joined only when a picture asks for it
        self.retained: dict[int, Tensor] | None = None
        self.out_shapes = out_shapes

    @property
    def scope(self) -> str:
        return ".".join(self._scope)


class Tensor:
    """A backend array that can take part in reverse-mode differentiation.

    ``Tensor(array, requires_grad=True)`` makes a leaf; ops on tensors make interior tensors.
    ``.grad`` of a leaf is a backend array after ``backward()``.
    """

    __slots__ = ("data", "requires_grad", "_grad", "_grad_owned", "node", "index", "name",
                 "__weakref__")
    __array_priority__ = 1000  # so ndarray * Tensor calls Tensor.__rmul__

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        if not Bk.is_array(data):
            data = Bk.host.asarray(data)
        self.data = data
        self.requires_grad = bool(requires_grad)
        self._grad = None
        self._grad_owned = False
        self.node: Node | None = None
        self.index = 0
        self.name = name

    @classmethod
    def wrap(cls, data: Any) -> Tensor:
        """A tensor around an op's output array (no checks: ops return backend arrays)."""
        if not Bk.is_array(data):
            return cls(data)
        t = object.__new__(cls)
        t.data, t.requires_grad, t._grad, t._grad_owned = data, False, None, False
        t.node, t.index, t.name = None, 0, None
        return t

    # --- basic properties -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def xp(self) -> Any:
        return Bk.namespace_of(self.data)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        rg = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self.node.op}" if self.node else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{rg}{op})"

    def numpy(self) -> Any:
        return Bk.to_host(self.data)

    def item(self) -> float:
        return float(Bk.to_host(self.data).reshape(-1)[0]) if self.data.size == 1 else float("nan")

    # --- gradients ----------------------------------------------------------------------------
    @property
    def grad(self) -> Any:
        g = self._grad
        if isinstance(g, RowSparse):
            g = self._grad = g.to_dense()
            self._grad_owned = True
        elif isinstance(g, OuterGrad):
            g = self._grad = g.materialize()
            self._grad_owned = True
        return g

    @grad.setter
    def grad(self, value: Any) -> None:
        self._grad = value
        self._grad_owned = False

    @property
    def raw_grad(self) -> Any:
        """The gradient as accumulated: a dense array or a RowSparse (for embeddings)."""
        if isinstance(self._grad, OuterGrad):
            return self.grad
        return self._grad

    def zero_grad(self) -> None:
        self._grad = None
        self._grad_owned = False

    def accumulate_grad(self, g: Any) -> None:
        self._grad, self._grad_owned = add_grads(self._grad, g, self._grad_owned)

    def retain_grad(self) -> Tensor:
        """Keep dL/d(this tensor) in ``.grad`` after backward, also for an interior tensor."""
        if self.node is not None:
            if self.node.retained is None:
                self.node.retained = {}
            self.node.retained[self.index] = self
        return self

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        from .grad import backward  # grad imports tensor

        backward(self, grad, retain_graph=retain_graph)

    def detach(self) -> Tensor:
        return Tensor(self.data)

    # --- operators (defined in ops.py, attached there) -----------------------------------------


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """Wrap an array or a number; a number takes ``like``'s dtype (never float64 by accident)."""
    if isinstance(x, Tensor):
        return x
    if like is not None and not Bk.is_array(x):
        return Tensor(like.xp.asarray(x, dtype=like.dtype))
    if like is not None and Bk.namespace_of(x) is not like.xp:
        return Tensor(like.xp.asarray(x))
    return Tensor(x)
