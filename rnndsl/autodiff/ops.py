"""The op registry and the primitive ops, each with its forward and vjp side by side.

An op is a function ``f(xp, *arrays, **static) -> (out, vjp)`` where ``vjp(g)`` returns one
cotangent per positional input (None where there is none). A multi-output op returns a tuple of
arrays and its vjp takes a tuple of cotangents (None for outputs that got no gradient).
Positional arguments that are not Tensors are constants (masks, indices).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ShapeError
from . import backend as Bk
from .tensor import Node, RowSparse, Tensor, as_tensor, grad_enabled


@dataclass(frozen=True)
class OpDef:
    name: str
    fn: Callable[..., Any]
    multi: bool


OPS: dict[str, OpDef] = {}


def op(name: str, multi: bool = False) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the op ``name``; registering a name twice is an error."""

    def register(fn: Callable) -> Callable:
        if name in OPS:
            raise ValueError(f"op {name!r} is already registered")
        OPS[name] = OpDef(name, fn, multi)
        return fn

    return register


def apply(name: str, *args: Any, **static: Any) -> Any:
    """Run op ``name`` on tensors/arrays and record it on the tape when a gradient is needed."""
    opdef = OPS[name]
    arrays, parents, first, needs = [], [], None, False
    for a in args:  # one pass (this runs for every op of every time step)
        if isinstance(a, Tensor):
            d = a.data
            arrays.append(d)
            if a.requires_grad:
                parents.append(a)
                needs = True
            else:
                parents.append(None)
        else:
            d = a
            arrays.append(a)
            parents.append(None)
        if first is None and Bk.is_array(d):
            first = d
    xp = Bk.namespace_of(first) if first is not None else Bk.host
    out, vjp = opdef.fn(xp, *arrays, **static)
    outs = out if opdef.multi else (out,)
    tensors = [Tensor.wrap(o) for o in outs]
    if needs and grad_enabled():
        node = Node(name, tuple(parents), vjp, len(outs), opdef.multi, [o.shape for o in outs])
        for i, t in enumerate(tensors):
            t.node, t.index, t.requires_grad = node, i, True
    return tuple(tensors) if opdef.multi else tensors[0]


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` down to ``shape`` (undo NumPy broadcasting)."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim for a in axis)


def _expand(g: Any, shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reshape a reduced cotangent so it broadcasts against the input of the reduction."""
    if keepdims:
        return g
    axes = _axes(axis, len(shape))
    return g.reshape([1 if i in axes else n for i, n in enumerate(shape)])


# --- elementwise arithmetic -----------------------------------------------------------------------
@op("add")
def add(xp, a, b):
    return a + b, lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape))


@op("sub")
def sub(xp, a, b):
    return a - b, lambda g: (unbroadcast(g, a.shape), unbroadcast(-g, b.shape))


@op("mul")
def mul(xp, a, b):
    return a * b, lambda g: (unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape))


@op("div")
def div(xp, a, b):
    y = a / b
    return y, lambda g: (unbroadcast(g / b, a.shape), unbroadcast(-g * y / b, b.shape))


@op("neg")
def neg(xp, a):
    return -a, lambda g: (-g,)


@op("pow")
def power(xp, a, exponent: float):
    y = a**exponent
    return y, lambda g: (g * exponent * a ** (exponent - 1),)


@op("maximum")
def maximum(xp, a, b):
    take_a = a >= b
    y = xp.where(take_a, a, b)
    return y, lambda g: (
        unbroadcast(xp.where(take_a, g, 0), a.shape),
        unbroadcast(xp.where(take_a, 0, g), b.shape),
    )


@op("astype")
def astype(xp, a, dtype: str):
    src = a.dtype
    return a.astype(dtype), lambda g: (g.astype(src),)


# --- unary ----------------------------------------------------------------------------------------
@op("exp")
def exp(xp, a):
    y = xp.exp(a)
    return y, lambda g: (g * y,)


@op("log")
def log(xp, a):
    return xp.log(a), lambda g: (g / a,)


@op("sqrt")
def sqrt(xp, a):
    y = xp.sqrt(a)
    return y, lambda g: (g / (2 * y),)


@op("abs")
def absolute(xp, a):
    return xp.abs(a), lambda g: (g * xp.sign(a),)


@op("tanh")
def tanh(xp, a):
    y = xp.tanh(a)
    return y, lambda g: (g * (1 - y * y),)


def _sigmoid(xp, a):
    # tanh form: one transcendental, no overflow warnings for large |a|
    return 0.5 * (xp.tanh(0.5 * a) + 1)


@op("sigmoid")
def sigmoid(xp, a):
    y = _sigmoid(xp, a)
    return y, lambda g: (g * y * (1 - y),)


@op("relu")
def relu(xp, a):
    pos = a > 0
    return a * pos, lambda g: (g * pos,)


# --- softmax family -------------------------------------------------------------------------------
@op("softmax")
def softmax(xp, a, axis: int = -1):
    e = xp.exp(a - a.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, lambda g: (y * (g - (g * y).sum(axis=axis, keepdims=True)),)


@op("log_softmax")
def log_softmax(xp, a, axis: int = -1):
    shifted = a - a.max(axis=axis, keepdims=True)
    lse = xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    y = shifted - lse
    return y, lambda g: (g - xp.exp(y) * g.sum(axis=axis, keepdims=True),)


@op("logsumexp")
def logsumexp(xp, a, axis: Any = -1, keepdims: bool = False):
    m = a.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = xp.exp(a - m).sum(axis=axis, keepdims=True)
    y = xp.log(s) + m
    w = xp.exp(a - y)  # softmax along axis

    def vjp(g):
        return (_expand(g, a.shape, axis, keepdims) * w,)

    return (y if keepdims else y.squeeze(axis=_axes(axis, a.ndim))), vjp


# --- reductions -----------------------------------------------------------------------------------
@op("sum")
def sum_(xp, a, axis: Any = None, keepdims: bool = False):
    y = a.sum(axis=axis, keepdims=keepdims)
    return y, lambda g: (xp.broadcast_to(_expand(g, a.shape, axis, keepdims), a.shape),)


@op("mean")
def mean(xp, a, axis: Any = None, keepdims: bool = False):
    n = 1
    for ax in _axes(axis, a.ndim):
        n *= a.shape[ax]
    y = a.mean(axis=axis, keepdims=keepdims)
    return y, lambda g: (xp.broadcast_to(_expand(g, a.shape, axis, keepdims) / n, a.shape),)


@op("max")
def max_(xp, a, axis: Any = None, keepdims: bool = False):
    y = a.max(axis=axis, keepdims=True)
    hit = a == y
    share = hit / hit.sum(axis=axis, keepdims=True)  # ties split the gradient

    def vjp(g):
        return (_expand(g, a.shape, axis, keepdims) * share,)

    return (y if keepdims else y.squeeze(axis=_axes(axis, a.ndim))), vjp


# --- linear algebra -------------------------------------------------------------------------------
@op("matmul")
def matmul(xp, a, b):
    y = a @ b

    def vjp(g):
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        ga = g2 @ xp.swapaxes(b2, -1, -2)
        gb = xp.swapaxes(a2, -1, -2) @ g2
        if a.ndim == 1:
            ga = ga.reshape(ga.shape[:-2] + (ga.shape[-1],))
        if b.ndim == 1:
            gb = gb.reshape(gb.shape[:-2] + (gb.shape[-2],))
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)

    return y, vjp


@op("affine")
def affine(xp, x, W, b):
    """y = x W + b for x (N, d_in): one GEMM, the bias added in place (no second array; on the
    host in row blocks shared among the cores when y is large, as for a 10,000-way output)."""
    y = x @ W
    if xp is Bk.host and y.ndim == 2 and b.ndim == 1:
        Bk.row_blocks(y.shape[0], y.shape[1],
                     lambda lo, hi: xp.add(y[lo:hi], b, out=y[lo:hi]), block=32)
    else:
        y += b

    def vjp(g):
        # the bias gradient as a GEMV with ones: one BLAS pass, 5x faster than g.sum(axis=0)
        # down the rows of a wide g (NumPy reduces axis 0 row by row)
        return g @ W.T, x.T @ g, xp.ones(g.shape[0], dtype=g.dtype) @ g

    return y, vjp


# --- shape ----------------------------------------------------------------------------------------
@op("reshape")
def reshape(xp, a, shape: tuple[int, ...]):
    return a.reshape(shape), lambda g: (g.reshape(a.shape),)


@op("transpose")
def transpose(xp, a, axes: tuple[int, ...] | None = None):
    axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)
    inv = tuple(int(i) for i in Bk.host.argsort(axes))
    return xp.transpose(a, axes), lambda g: (xp.transpose(g, inv),)


@op("concat")
def concat(xp, *arrays, axis: int = -1):
    y = xp.concatenate(arrays, axis=axis)
    bounds = Bk.host.cumsum([a.shape[axis] for a in arrays])[:-1]

    def vjp(g):
        return tuple(xp.split(g, [int(b) for b in bounds], axis=axis))

    return y, vjp


def _slices(xp, a, n: int, axis: int) -> tuple:
    """The n slices of ``a`` along ``axis``: views (no copy) along the leading axis, where each
    slice is contiguous; ops never write into their inputs, so sharing the memory is safe."""
    if axis % a.ndim == 0:
        return tuple(a[i] for i in range(n))
    return tuple(xp.take(a, i, axis=axis) for i in range(n))


@op("stack")
def stack(xp, *arrays, axis: int = 0):
    y = xp.stack(arrays, axis=axis)

    def vjp(g):
        return tuple(_slices(xp, g, len(arrays), axis))

    return y, vjp


@op("unbind", multi=True)
def unbind(xp, a, axis: int = 0):
    """Split along ``axis`` into a tuple of slices; one node, so BPTT does not copy per step."""
    outs = _slices(xp, a, a.shape[axis], axis)

    def vjp(gs):
        zero = None
        parts = []
        for g in gs:
            if g is None:
                if zero is None:
                    zero = xp.zeros(outs[0].shape, dtype=a.dtype)
                g = zero
            parts.append(g)
        return (xp.stack(parts, axis=axis),)

    return outs, vjp


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


@op("getitem")
def getitem(xp, a, index: Any):
    y = a[index]
    basic = _is_basic_index(index)

    def vjp(g):
        z = xp.zeros(a.shape, dtype=g.dtype)
        if basic:
            z[index] = g
        else:
            Bk.scatter_add(xp, z, index, g)
        return (z,)

    return y, vjp


@op("gather_rows")
def gather_rows(xp, table, indices):
    """table[indices] for a 2-D table (embedding lookup); the gradient is row-sparse."""
    y = table[indices]

    def vjp(g):
        return RowSparse(indices.reshape(-1), g.reshape(-1, table.shape[1]), table.shape), None

    return y, vjp


@op("take_along")
def take_along(xp, a, index, axis: int = 0):
    """xp.take_along_axis(a, index, axis); ``index`` has a's number of axes."""
    y = xp.take_along_axis(a, index, axis=axis)

    def vjp(g):
        z = xp.zeros(a.shape, dtype=g.dtype)
        idx = [xp.arange(n).reshape([-1 if i == k else 1 for i in range(index.ndim)])
               for k, n in enumerate(index.shape)]
        idx[axis] = index
        Bk.scatter_add(xp, z, tuple(idx), g)
        return z, None

    return y, vjp


@op("where")
def where(xp, cond, a, b):
    y = xp.where(cond, a, b)
    return y, lambda g: (
        None,
        unbroadcast(xp.where(cond, g, 0), a.shape),
        unbroadcast(xp.where(cond, 0, g), b.shape),
    )


# --- stochastic -----------------------------------------------------------------------------------
@op("dropout")
def dropout(xp, a, p: float, rng: Any, noise_shape: tuple[int, ...] | None = None):
    """Inverted dropout: keep with probability 1-p and scale by 1/(1-p).

    ``noise_shape`` (broadcastable to a.shape) shares one mask along axes of size 1, e.g.
    (1, B, D) for variational dropout with one mask per sequence across time.
    """
    shape = noise_shape or a.shape
    keep = (rng.random(shape) >= p).astype(a.dtype) / a.dtype.type(1 - p)
    return a * keep, lambda g: (g * keep,)


# --- losses ---------------------------------------------------------------------------------------
def _add_at_targets(xp, a, targets, value):
    """a[..., targets] += value, one entry per row of the last axis (rows are distinct)."""
    C = a.shape[-1]
    flat = a.reshape(-1, C)
    rows = xp.arange(flat.shape[0])
    flat[rows, targets.reshape(-1)] += value if not hasattr(value, "reshape") \
        else value.reshape(-1)


def fused_softmax_kernel():
    """kernels.ops_cpu.softmax_rows, or None when Numba is missing or RNNDSL_FUSED=0."""
    fused = Bk.fused_module("rnndsl.kernels.ops_cpu")
    return None if fused is None else fused.softmax_rows


def _softmax_parts(xp, logits):
    """(m, e, s): row maxima, exp(logits - m) and its row sums (keepdims), over the last axis.

    On the host the rows go through in blocks shared among threads (see backend.row_blocks).
    """
    if xp is not Bk.host:
        m = logits.max(axis=-1, keepdims=True)
        e = xp.subtract(logits, m)
        xp.exp(e, out=e)
        return m, e, e.sum(axis=-1, keepdims=True)
    C = logits.shape[-1]
    lead = logits.shape[:-1] + (1,)
    l2 = xp.ascontiguousarray(logits.reshape(-1, C))
    e = xp.empty_like(l2)
    m = xp.empty((l2.shape[0], 1), dtype=logits.dtype)
    s = xp.empty((l2.shape[0], 1), dtype=logits.dtype)
    kernel = fused_softmax_kernel() if logits.dtype == xp.float32 and C > 0 else None

    def block(lo, hi):
        if kernel is not None:
            kernel(l2[lo:hi], e[lo:hi], m[lo:hi], s[lo:hi])
            return
        li, ei = l2[lo:hi], e[lo:hi]
        li.max(axis=-1, keepdims=True, out=m[lo:hi])
        xp.subtract(li, m[lo:hi], out=ei)
        xp.exp(ei, out=ei)
        ei.sum(axis=-1, keepdims=True, out=s[lo:hi])

    Bk.row_blocks(l2.shape[0], C, block)
    return m.reshape(lead), e.reshape(logits.shape), s.reshape(lead)


@op("softmax_cross_entropy")
def softmax_cross_entropy(xp, logits, targets, valid=None):
    """Per-example -log softmax(logits)[target] over the last axis; 0 where ``valid`` is False.

    logits (..., C) float, targets (...) int, valid (...) bool or None. Returns (...).
    """
    m, e, s = _softmax_parts(xp, logits)
    safe_t = targets if valid is None else xp.where(valid, targets, 0)
    picked = xp.take_along_axis(logits, safe_t[..., None], axis=-1) - m - xp.log(s)
    loss = -picked[..., 0]
    if valid is not None:
        loss = loss * valid
    spare = [e]  # the first vjp call turns e into the gradient in place (one pass, no new array)

    def vjp(g):
        scale = g if valid is None else g * valid
        grad = spare.pop() if spare else xp.exp(logits - m)
        factor = (scale[..., None] / s).astype(grad.dtype, copy=False)  # softmax * g
        if xp is Bk.host:
            g2, f2 = grad.reshape(-1, grad.shape[-1]), factor.reshape(-1, 1)
            Bk.row_blocks(g2.shape[0], g2.shape[1],
                         lambda lo, hi: xp.multiply(g2[lo:hi], f2[lo:hi], out=g2[lo:hi]))
        else:
            grad *= factor
        _add_at_targets(xp, grad, safe_t, -scale.astype(grad.dtype, copy=False))
        return grad, None, None

    return loss, vjp


def fused_bias_softmax_kernel():
    """kernels.ops_cpu.bias_softmax_rows, or None when Numba is missing or RNNDSL_FUSED=0."""
    fused = Bk.fused_module("rnndsl.kernels.ops_cpu")
    return None if fused is None else fused.bias_softmax_rows


@op("linear_softmax_xent")
def linear_softmax_xent(xp, x, W, b, targets, valid=None):
    """Per-example -log softmax(x W + b)[target] for x (N, d), targets (N,) int, valid (N,)
    bool or None (0 where False): an output layer and its cross entropy as one op.

    The (N, C) logits become the probabilities in place in one sweep per row (bias, max, exp,
    sum, normalise) and are the only large array kept; the vjp subtracts the one-hot targets
    from them in place and puts each example's cotangent on the small side of the products:
    dx = diag(g) (P - Y) W^T, dW = (diag(g) x)^T (P - Y). Against affine + softmax_cross_entropy
    that drops two passes over the logits (the bias add, the cotangent scaling) and one of the
    two (N, C) arrays kept for backward: a 10,000-way output over 400 tokens, 16 MB each pass.
    """
    N, C = x.shape[0], W.shape[1]
    safe_t = targets if valid is None else xp.where(valid, targets, 0)
    if N and not (0 <= int(safe_t.min()) and int(safe_t.max()) < C):  # the kernel indexes by them
        raise ShapeError(f"targets must be class indices in [0, {C}), got "
                         f"{int(safe_t.min())}..{int(safe_t.max())}",
                         hint="the output layer has one score per class of the vocabulary")
    z = x @ W
    kernel = fused_bias_softmax_kernel() \
        if xp is Bk.host and z.dtype == xp.float32 and z.flags.c_contiguous else None
    if kernel is not None:
        m, s, picked = (xp.empty(N, dtype=z.dtype) for _ in range(3))
        bias = xp.ascontiguousarray(b, dtype=z.dtype)
        Bk.row_blocks(N, z.shape[1], lambda lo, hi: kernel(
            z[lo:hi], bias, safe_t[lo:hi], m[lo:hi], s[lo:hi], picked[lo:hi]))
    else:
        z += b
        m = z.max(axis=-1)
        picked = xp.take_along_axis(z, safe_t[:, None], axis=-1)[:, 0]
        z -= m[:, None]
        xp.exp(z, out=z)
        s = z.sum(axis=-1)
        z /= s[:, None]
    loss = -(picked - m - xp.log(s))
    if valid is not None:
        loss = loss * valid
    state = {"onehot_out": False}  # P becomes P - Y in place at the first vjp call

    def vjp(g):
        scale = (g if valid is None else g * valid).astype(z.dtype, copy=False)
        if not state["onehot_out"]:
            _add_at_targets(xp, z, safe_t, -1.0)
            state["onehot_out"] = True
        gx = z @ W.T
        gx *= scale[:, None]
        gW = (x * scale[:, None]).T @ z
        return gx, gW, scale @ z, None, None

    return loss, vjp


@op("multiclass_hinge")
def multiclass_hinge(xp, scores, targets, margin: float = 1.0):
    """Per-example max(0, margin + max_{j != t} s_j - s_t) (Crammer-Singer), scores (..., C)."""
    t = targets[..., None]
    s_t = xp.take_along_axis(scores, t, axis=-1)
    others = scores.copy()
    _add_at_targets(xp, others, targets, -xp.inf)
    j = others.argmax(axis=-1)
    s_j = xp.take_along_axis(scores, j[..., None], axis=-1)
    raw = (margin + s_j - s_t)[..., 0]
    active = (raw > 0).astype(scores.dtype)
    loss = raw * active

    def vjp(g):
        grad = xp.zeros_like(scores)
        w = g * active
        _add_at_targets(xp, grad, j, w)
        _add_at_targets(xp, grad, targets, -w)
        return grad, None

    return loss, vjp


# --- the Tensor's operators -----------------------------------------------------------------------
def _binary(name: str, reflected: bool = False) -> Callable:
    if reflected:
        return lambda self, other: apply(name, as_tensor(other, self), self)
    return lambda self, other: apply(name, self, as_tensor(other, self))


Tensor.__add__ = _binary("add")
Tensor.__radd__ = _binary("add", reflected=True)
Tensor.__sub__ = _binary("sub")
Tensor.__rsub__ = _binary("sub", reflected=True)
Tensor.__mul__ = _binary("mul")
Tensor.__rmul__ = _binary("mul", reflected=True)
Tensor.__truediv__ = _binary("div")
Tensor.__rtruediv__ = _binary("div", reflected=True)
Tensor.__matmul__ = _binary("matmul")
Tensor.__rmatmul__ = _binary("matmul", reflected=True)
Tensor.__neg__ = lambda self: apply("neg", self)
Tensor.__pow__ = lambda self, e: apply("pow", self, exponent=float(e))
Tensor.__getitem__ = lambda self, index: apply("getitem", self, index=_host_index(self, index))


def _host_index(t: Tensor, index: Any) -> Any:
    """Turn Tensors used as indices into arrays of the tensor's namespace."""
    if isinstance(index, tuple):
        return tuple(_host_index(t, i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return t.xp.asarray(index)
    return index


def _method(name: str, **fixed: Any) -> Callable:
    return lambda self, *a, **k: apply(name, self, *a, **{**fixed, **k})


Tensor.sum = _method("sum")
Tensor.mean = _method("mean")
Tensor.max = _method("max")
Tensor.exp = _method("exp")
Tensor.log = _method("log")
Tensor.tanh = _method("tanh")
Tensor.sigmoid = _method("sigmoid")
Tensor.relu = _method("relu")
Tensor.reshape = lambda self, *shape: apply(
    "reshape", self, shape=tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int)
    else tuple(shape)
)
Tensor.transpose = lambda self, *axes: apply("transpose", self, axes=tuple(axes) or None)
Tensor.T = property(lambda self: apply("transpose", self))
Tensor.astype = lambda self, dtype: apply("astype", self, dtype=str(Bk.dtype_of(dtype)))
