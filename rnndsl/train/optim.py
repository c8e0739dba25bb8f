"""Optimizers (SGD with momentum, Adam, AdaGrad), weight decay and global-norm clipping.

Row-sparse gradients (embeddings) update only the rows that occur in the batch: for SGD without
momentum this is exact; for Adam and AdaGrad it is the "lazy" rule of PyTorch's SparseAdam /
TensorFlow's LazyAdam (a row's moments change only when the row is used). ``lazy=False`` turns
such gradients dense first, for exactly PyTorch's dense Adam.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.tensor import RowSparse
from ..errors import RnnError


class Optimizer:
    """Base: holds parameters by name, per-parameter state arrays, and the step count."""

    name = "optimizer"

    def __init__(self, params: Mapping[str, Any], lr: float, weight_decay: float = 0.0,
                 lazy: bool = True):
        self.params = dict(params)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.lazy = lazy
        self.t = 0
        self.state: dict[str, dict[str, Any]] = {}

    def step(self) -> None:
        self.t += 1
        for name, p in self.params.items():
            g = p.raw_grad
            if g is None or getattr(p, "frozen", False):
                continue
            if isinstance(g, RowSparse):
                if self.lazy:
                    g = g.coalesce()
                    if self.weight_decay:
                        g = RowSparse(g.indices, g.values + self.weight_decay * p.data[g.indices],
                                      g.shape, unique=True)
                    self.update_rows(name, p, g)
                    continue
                g = g.to_dense()
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            self.update(name, p, g)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.zero_grad()

    def slot(self, name: str, key: str, like: Any) -> Any:
        st = self.state.setdefault(name, {})
        if key not in st:
            st[key] = Bk.namespace_of(like).zeros_like(like)
        return st[key]

    def update(self, name: str, p: Any, g: Any) -> None:  # dense rule
        raise NotImplementedError

    def update_rows(self, name: str, p: Any, g: RowSparse) -> None:
        """Default sparse rule: apply the dense rule to the touched rows only."""
        rows = g.indices
        sub = _RowView(p, rows)
        st = self.state.setdefault(name, {})
        saved = {k: v for k, v in st.items()}
        for k, v in saved.items():
            st[k] = v[rows]
        self.update(name, sub, g.values)
        for k, v in st.items():
            full = saved.get(k)
            if full is None:
                full = Bk.namespace_of(v).zeros(p.data.shape, dtype=p.data.dtype)
            full[rows] = v
            st[k] = full
        p.data[rows] = sub.data

    # --- checkpoints --------------------------------------------------------------------------
    def state_arrays(self) -> dict[str, Any]:
        return {f"{name}::{k}": v for name, st in self.state.items() for k, v in st.items()}

    def load_state_arrays(self, arrays: Mapping[str, Any], t: int, xp: Any) -> None:
        self.t = int(t)
        self.state = {}
        for key, v in arrays.items():
            name, k = key.split("::", 1)
            self.state.setdefault(name, {})[k] = xp.asarray(v)


_FUSED = "rnndsl.kernels.optim_cpu"  # optional Numba updates, one pass per parameter
_FUSED_GPU = "rnndsl.kernels.gpu"  # CuPy kernels (Adam's too)
_CHUNK = 1 << 16  # elements per block when a large update is shared among threads


def _fused(*arrays: Any) -> Any:
    """kernels.optim_cpu when every array is a C-contiguous float32 host array and Numba is
    there."""
    if all(Bk.namespace_of(a) is Bk.host and a.dtype == Bk.host.float32
           and a.flags.c_contiguous for a in arrays):
        return Bk.fused_module(_FUSED)
    return None


def _fused_gpu(*arrays: Any) -> Any:
    """kernels.gpu when every array is a C-contiguous CuPy array of one dtype (kernels on)."""
    first = arrays[0]
    if Bk.namespace_of(first) is not Bk.host and all(
            a.dtype == first.dtype and a.flags.c_contiguous for a in arrays):
        return Bk.fused_module(_FUSED_GPU)
    return None


def _flat_blocks(kernel: Any, arrays: tuple, *scalars: Any) -> None:
    """kernel(*flat slices, *scalars) over blocks of the flattened arrays, on all host threads
    for large ones (the kernels release the GIL)."""
    flat = [a.reshape(-1) for a in arrays]
    n = flat[0].shape[0]
    Bk.row_blocks(-(-n // _CHUNK), _CHUNK, lambda lo, hi: kernel(
        *(f[lo * _CHUNK: hi * _CHUNK] for f in flat), *scalars), block=1)


class _RowView:
    """The rows of a parameter, updated by the dense rule and written back."""

    def __init__(self, p: Any, rows: Any):
        self.data = p.data[rows]


class SGD(Optimizer):
    """theta <- theta - lr * (g + momentum buffer)."""

    name = "sgd"

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.0, weight_decay: float = 0.0,
                 lazy: bool = True):
        super().__init__(params, lr, weight_decay, lazy)
        self.momentum = float(momentum)

    def update(self, name, p, g):
        fused = None if self.momentum else _fused(p.data, g)
        if fused is not None:
            _flat_blocks(fused.sgd_flat, (p.data, g), Bk.host.float32(self.lr))
            return
        if self.momentum:
            buf = self.slot(name, "momentum", p.data)
            buf *= self.momentum
            buf += g
            g = buf
        p.data -= self.lr * g

    def update_rows(self, name, p, g):
        if self.momentum:
            return super().update_rows(name, p, g)
        p.data[g.indices] -= self.lr * g.values  # rows are unique after coalesce


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction."""

    name = "adam"

    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, lazy: bool = True):
        super().__init__(params, lr, weight_decay, lazy)
        self.b1, self.b2, self.eps = float(beta1), float(beta2), float(eps)

    def _scalars(self, kind: Any = Bk.host.float32) -> tuple:
        """(beta1, beta2, lr / bc1, 1 / sqrt(bc2), eps) for the fused kernels: float32 for the
        Numba ones, Python floats (``kind=float``) for the CuPy ones, which cast them."""
        bc1, bc2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        return (kind(self.b1), kind(self.b2), kind(self.lr / bc1), kind(1 / math.sqrt(bc2)),
                kind(self.eps))

    def update(self, name, p, g):
        m = self.slot(name, "m", p.data)
        v = self.slot(name, "v", p.data)
        fused = _fused(p.data, g, m, v)
        if fused is not None:
            _flat_blocks(fused.adam_flat, (p.data, g, m, v), *self._scalars())
            return
        fused = _fused_gpu(p.data, g, m, v)
        if fused is not None:
            fused.adam_flat(p.data, g, m, v, *self._scalars(float))
            return
        m *= self.b1
        m += (1 - self.b1) * g
        v *= self.b2
        v += (1 - self.b2) * (g * g)
        bc1 = 1 - self.b1**self.t
        bc2 = 1 - self.b2**self.t
        step = self.lr / bc1
        denom = Bk.namespace_of(v).sqrt(v)
        denom /= math.sqrt(bc2)
        denom += self.eps
        p.data -= (step * m) / denom

    def update_rows(self, name, p, g):
        m = self.slot(name, "m", p.data)
        v = self.slot(name, "v", p.data)
        values = g.values.reshape(g.values.shape[0], -1)
        if p.data.ndim == 2:
            fused = _fused(p.data, values, m, v)
            if fused is not None:
                return fused.adam_rows(p.data, g.indices, values, m, v, *self._scalars())
            fused = _fused_gpu(p.data, values, m, v)
            if fused is not None:
                return fused.adam_rows(p.data, g.indices, values, m, v, *self._scalars(float))
        return super().update_rows(name, p, g)


class AdaGrad(Optimizer):
    """AdaGrad: theta <- theta - lr * g / (sqrt(sum g^2) + eps)."""

    name = "adagrad"

    def __init__(self, params, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0,
                 lazy: bool = True, initial_accumulator: float = 0.0):
        super().__init__(params, lr, weight_decay, lazy)
        self.eps = float(eps)
        self.initial = float(initial_accumulator)

    def update(self, name, p, g):
        st = self.state.setdefault(name, {})
        if "sum" not in st:
            st["sum"] = Bk.namespace_of(p.data).full_like(p.data, self.initial)
        s = st["sum"]
        s += g * g
        p.data -= self.lr * g / (Bk.namespace_of(s).sqrt(s) + self.eps)


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adagrad": AdaGrad}


def make_optimizer(name: str, params: Mapping[str, Any], **kwargs: Any) -> Optimizer:
    if name not in OPTIMIZERS:
        raise RnnError(f"unknown optimizer {name!r}", hint="choose sgd, adam or adagrad")
    return OPTIMIZERS[name](params, **kwargs)


def global_grad_norm(params: Mapping[str, Any]) -> float:
    """sqrt(sum of squared gradient entries) over all parameters (duplicate rows summed)."""
    total = 0.0
    for p in params.values():
        g = p.raw_grad
        if g is None:
            continue
        if isinstance(g, RowSparse):
            g = p._grad = g.coalesce()  # kept: the optimizer's step needs it coalesced too
            p._grad_owned = True
            g = g.values
        with Bk.host.errstate(over="ignore", invalid="ignore"):  # inf/NaN: the caller says so
            # one pass, no (g * g) temporary (a dot product of the flat gradient with itself)
            flat = g.reshape(-1)
            total += float(Bk.namespace_of(flat).dot(flat, flat))
    return math.sqrt(total)


def clip_grad_norm(params: Mapping[str, Any], max_norm: float) -> float:
    """Scale all gradients so their global norm is at most ``max_norm``; returns the norm."""
    norm = global_grad_norm(params)
    if max_norm and norm > max_norm and math.isfinite(norm):
        scale = max_norm / (norm + 1e-6)
        for p in params.values():
            g = p.raw_grad
            if g is None:
                continue
            if isinstance(g, RowSparse):
                p._grad = RowSparse(g.indices, g.values * scale, g.shape, g.unique)
            elif p._grad_owned:  # our own buffer: scaled in place, no copy
                g *= scale
            else:  # a cotangent a vjp may share with another parameter (add's): a new array
                p._grad = g * scale
            p._grad_owned = True
    return norm
