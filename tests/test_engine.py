"""The autodiff engine: deep unrolls, memory release, broadcasting, accumulation, modes.

Every test takes the ``bk`` fixture and runs on NumPy, and on CuPy when CuPy and a GPU are
present (skipped with the reason otherwise).
"""

import gc
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

from rnndsl.autodiff import Tensor, check_grads, no_grad
from rnndsl.autodiff import functional as F
from rnndsl.autodiff.backend import cupy_available, get_backend, to_host
from rnndsl.autodiff.tensor import RowSparse


@pytest.fixture(params=["numpy", "cupy"])
def bk(request):
    if request.param == "cupy" and not cupy_available():
        pytest.skip("CuPy backend: CuPy is not installed or no GPU is visible on this machine")
    return get_backend(request.param)


def arr(bk, a, dtype="float64"):
    return bk.asarray(np.asarray(a), dtype=dtype)


def recurrence(h0, W, U, xs):
    """h_t = tanh(h_{t-1} W + x_t U), returns the sum of the last state."""
    h = h0
    for x in F.unbind(xs, axis=0):
        h = F.tanh(h @ W + x @ U)
    return h


def test_10000_step_recurrence_runs_backward_without_recursion_error(bk):
    r = np.random.default_rng(0)
    T, d = 10_000, 4
    W = Tensor(arr(bk, r.standard_normal((d, d)) * 0.3, "float32"), requires_grad=True)
    U = Tensor(arr(bk, r.standard_normal((d, d)) * 0.3, "float32"), requires_grad=True)
    xs = Tensor(arr(bk, r.standard_normal((T, 1, d)), "float32"))
    h0 = Tensor(bk.xp.zeros((1, d), dtype="float32"))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # the walk must be iterative, whatever the limit
    try:
        recurrence(h0, W, U, xs).sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    assert W.grad.shape == (d, d) and np.all(np.isfinite(to_host(W.grad)))


def test_recurrence_gradient_matches_finite_differences_on_a_prefix(bk):
    r = np.random.default_rng(1)
    d = 3
    args = (
        arr(bk, np.zeros((1, d))),
        arr(bk, r.standard_normal((d, d)) * 0.5),
        arr(bk, r.standard_normal((d, d)) * 0.5),
        arr(bk, r.standard_normal((12, 1, d))),
    )
    result = check_grads(recurrence, *args, wrt=[1, 2, 3])
    assert result.ok, str(result)


def test_graph_release_frees_a_1000_step_unroll(bk):
    r = np.random.default_rng(2)
    d = 64
    W = Tensor(arr(bk, r.standard_normal((d, d)) * 0.1, "float32"), requires_grad=True)
    xs = Tensor(arr(bk, r.standard_normal((1000, 8, d)), "float32"))
    h = Tensor(bk.xp.zeros((8, d), dtype="float32"))
    refs = []
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for x in F.unbind(xs, axis=0):
        h = F.tanh(h @ W + x)
        refs.append(weakref.ref(h))
    loss = h.sum()
    during = tracemalloc.get_traced_memory()[0]
    loss.backward()
    del h, x, loss
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    alive = sum(ref() is not None for ref in refs)
    assert alive == 0, f"{alive} of 1000 intermediate states are still alive after backward"
    if bk.name == "numpy":  # device memory is not traced by tracemalloc
        assert during - before > 1000 * 8 * d * 4  # the unroll really held its activations
        assert after - before < 0.05 * (during - before)


def test_retain_graph_allows_a_second_backward_and_accumulates(bk):
    x = Tensor(arr(bk, [1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(to_host(x.grad), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="already released"):
        y.backward()


def test_broadcasting_gradients_are_unbroadcast(bk):
    a = Tensor(arr(bk, np.ones((2, 3, 4))), requires_grad=True)
    b = Tensor(arr(bk, np.full((3, 1), 2.0)), requires_grad=True)
    c = Tensor(arr(bk, np.full((4,), 3.0)), requires_grad=True)
    (a * b + c).sum().backward()
    assert b.grad.shape == (3, 1) and c.grad.shape == (4,)
    np.testing.assert_allclose(to_host(b.grad), np.full((3, 1), 8.0))
    np.testing.assert_allclose(to_host(c.grad), np.full((4,), 6.0))
    np.testing.assert_allclose(to_host(a.grad), np.full((2, 3, 4), 2.0))


def test_a_tensor_used_twice_accumulates_both_paths(bk):
    x = Tensor(arr(bk, [3.0]), requires_grad=True)
    y = x * x + x * 2.0 + F.tanh(x)  # dy/dx = 2x + 2 + 1 - tanh(x)^2
    y.sum().backward()
    np.testing.assert_allclose(to_host(x.grad), [8.0 + 1 - np.tanh(3.0) ** 2])
    (x * 5.0).sum().backward()  # gradients accumulate across backward calls
    np.testing.assert_allclose(to_host(x.grad), [13.0 + 1 - np.tanh(3.0) ** 2])
    x.zero_grad()
    assert x.grad is None


def test_shared_cotangent_is_not_corrupted_by_in_place_accumulation(bk):
    # add's vjp hands the same array to both inputs; accumulation must copy before updating
    x = Tensor(arr(bk, [1.0, 1.0]), requires_grad=True)
    z = Tensor(arr(bk, [1.0, 1.0]), requires_grad=True)
    s = x + z
    (s + s * 2.0 + x).sum().backward()
    np.testing.assert_allclose(to_host(x.grad), [4.0, 4.0])
    np.testing.assert_allclose(to_host(z.grad), [3.0, 3.0])


def test_no_grad_records_nothing(bk):
    x = Tensor(arr(bk, [1.0, 2.0]), requires_grad=True)
    with no_grad():
        y = (x * 3.0).sum()
    assert y.node is None and not y.requires_grad
    y2 = (x * 3.0).sum()
    assert y2.node is not None


def test_detach_stops_the_gradient(bk):
    x = Tensor(arr(bk, [2.0]), requires_grad=True)
    y = x * x.detach()  # d/dx = x (only one path)
    y.sum().backward()
    np.testing.assert_allclose(to_host(x.grad), [2.0])


def test_retain_grad_keeps_interior_gradients(bk):
    x = Tensor(arr(bk, [1.0, -1.0]), requires_grad=True)
    h = (x * 2.0).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(to_host(h.grad), [4.0, -4.0])


def test_embedding_gradient_is_row_sparse_and_densifies_correctly(bk):
    table = Tensor(arr(bk, np.arange(12.0).reshape(4, 3)), requires_grad=True)
    ids = bk.asarray(np.array([[0, 2], [2, 2]]))
    out = F.gather_rows(table, ids)
    (out * 1.0).sum().backward()
    assert isinstance(table.raw_grad, RowSparse)
    expect = np.zeros((4, 3))
    expect[0] = 1
    expect[2] = 3
    np.testing.assert_allclose(to_host(table.grad), expect)


def test_float32_stays_float32(bk):
    x = Tensor(arr(bk, np.ones((2, 3)), "float32"), requires_grad=True)
    y = F.log_softmax(F.tanh(x * 0.5 + 1.0) / 3.0 - 2.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_fused_cross_entropy_matches_composed_ops(bk):
    r = np.random.default_rng(3)
    logits = arr(bk, r.standard_normal((4, 5)))
    targets = bk.asarray(np.array([1, 0, 4, 2]))
    valid = bk.asarray(np.array([True, True, False, True]))
    a = Tensor(logits, requires_grad=True)
    F.softmax_cross_entropy(a, targets, valid).sum().backward()
    b = Tensor(logits, requires_grad=True)
    onehot = np.eye(5)[to_host(targets)] * to_host(valid)[:, None]
    (-(F.log_softmax(b) * Tensor(arr(bk, onehot))).sum()).backward()
    np.testing.assert_allclose(to_host(a.grad), to_host(b.grad), atol=1e-12)


def test_softmax_cross_entropy_vjp_twice_is_the_same():
    # the first vjp call reuses the forward's exp buffer in place; a second call must recompute
    import numpy as np

    from rnndsl.autodiff.ops import OPS

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 7))
    targets = rng.integers(0, 7, size=(3, 4))
    valid = rng.random((3, 4)) < 0.7
    _, vjp = OPS["softmax_cross_entropy"].fn(np, logits, targets, valid)
    g = rng.normal(size=(3, 4))
    first = vjp(g)[0].copy()
    second = vjp(g)[0]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(3)[:, None], np.arange(4)[None, :], targets] -= 1
    expected = p * (g * valid)[..., None]
    np.testing.assert_allclose(first, expected, atol=1e-12)
    np.testing.assert_allclose(second, expected, atol=1e-12)
