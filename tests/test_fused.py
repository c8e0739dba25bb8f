"""The fused CPU kernels (rnndsl/kernels/cells_cpu.py, optim_cpu.py) against the generic NumPy
arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from rnndsl.autodiff import backend as Bk
from rnndsl.nn.cells import lstm as K

fused = pytest.importorskip("rnndsl.kernels.cells_cpu",
                            reason="numba (the `fast` extra) is not installed")


def _inputs(rng, D=2, B=5, H=7, scale=3.0):
    a = (rng.normal(size=(D, B, 4 * H)) * scale).astype(np.float32)
    c = rng.normal(size=(D, B, H)).astype(np.float32)
    gh = rng.normal(size=(D, B, H)).astype(np.float32)
    gc = rng.normal(size=(D, B, H)).astype(np.float32)
    return a, c, gh, gc


@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 7), (2, 32, 128), (1, 3, 200)])
def test_lstm_gates_match_the_generic_kernel(scale, shape):
    rng = np.random.default_rng(sum(shape))
    a, c, gh, gc = _inputs(rng, *shape, scale=scale)
    a1, a2 = a.copy(), a.copy()
    ref = K._lstm_gates_forward(np, a1, c)
    out = fused.lstm_gates_forward(np, a2, c)
    np.testing.assert_allclose(a2, a1, atol=1e-6, rtol=0)  # the activated gates, in place
    for r, o in zip(ref, out):
        assert o.dtype == np.float32 and o.shape == r.shape
        np.testing.assert_allclose(o, r, atol=2e-6, rtol=0)
    for g_h, g_c in [(gh, gc), (None, gc), (gh, None)]:
        da_ref, gcp_ref = K._lstm_gates_backward(np, a1, c, ref[1], g_h, g_c)
        da, gcp = fused.lstm_gates_backward(np, a1, c, ref[1], g_h, g_c)
        np.testing.assert_allclose(da, da_ref, atol=2e-6, rtol=1e-5)
        np.testing.assert_allclose(gcp, gcp_ref, atol=2e-6, rtol=1e-5)


def test_strided_state_slices():
    # the packed-sequence step passes c[:, :n] (a strided slice) while a is contiguous
    rng = np.random.default_rng(3)
    a, c, gh, gc = _inputs(rng, 2, 6, 9)
    n = 4
    a_n = np.ascontiguousarray(a[:, :n])
    ref = K._lstm_gates_forward(np, a_n.copy(), c[:, :n])
    a_f = a_n.copy()
    out = fused.lstm_gates_forward(np, a_f, c[:, :n])
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, atol=2e-6)
    da_ref, _ = K._lstm_gates_backward(np, a_f, c[:, :n], out[1], gh[:, :n], gc[:, :n])
    da, _ = fused.lstm_gates_backward(np, a_f, c[:, :n], out[1], gh[:, :n], gc[:, :n])
    np.testing.assert_allclose(da, da_ref, atol=2e-6)


def test_dispatch_float32_host_only(monkeypatch):
    a32 = np.zeros((1, 2, 8), np.float32)
    assert K.lstm_gate_kernels(np, a32)[0] is fused.lstm_gates_forward
    assert K.lstm_gate_kernels(np, a32.astype(np.float64))[0] is K._lstm_gates_forward
    assert K.lstm_gate_kernels(np, np.zeros((1, 8, 2), np.float32).transpose(0, 2, 1))[0] \
        is K._lstm_gates_forward  # not contiguous: the in-place contract needs a view
    monkeypatch.setattr(Bk, "_fused_on", False)
    assert K.lstm_gate_kernels(np, a32)[0] is K._lstm_gates_forward


@pytest.mark.parametrize("lengths", [[7, 5, 2], [2, 7, 5]], ids=["sorted", "masked"])
def test_a_network_gives_the_same_with_and_without_the_kernel(monkeypatch, lengths):
    import rnndsl
    from rnndsl import Tensor

    def run(flag):
        monkeypatch.setattr(Bk, "_fused_on", flag == "1")
        net = rnndsl.compile("bilstm(d=5) |> stack(2)", input_dim=6, seed=1)  # float32
        x = np.random.default_rng(0).standard_normal((3, 7, 6)).astype(np.float32)
        xt = Tensor(x, requires_grad=True)
        y = net(xt, lengths=lengths)
        net.zero_grad()
        (y * y).sum().backward()
        return y.numpy(), xt.grad.copy(), {k: p.grad.copy() for k, p in
                                           net.named_parameters().items()}

    y0, gx0, g0 = run("0")
    y1, gx1, g1 = run("1")
    np.testing.assert_allclose(y1, y0, atol=1e-5)
    np.testing.assert_allclose(gx1, gx0, atol=1e-4)
    for k in g0:
        np.testing.assert_allclose(g1[k], g0[k], atol=1e-4, err_msg=k)


def test_nan_propagates():
    # fast math without the "no NaNs" flag: a diverged run must still show up as a NaN loss
    a = np.zeros((1, 2, 8), np.float32)
    a[0, 1, 3] = np.nan
    _, _, h = fused.lstm_gates_forward(np, a, np.zeros((1, 2, 2), np.float32))
    assert np.isnan(h[0, 1]).any() and not np.isnan(h[0, 0]).any()


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (40, 10000), (2, 5, 33)])
def test_fused_softmax_matches_numpy(shape, monkeypatch):
    from rnndsl.autodiff.ops import OPS, _softmax_parts, fused_softmax_kernel

    assert fused_softmax_kernel() is not None
    rng = np.random.default_rng(len(shape))
    logits = (rng.normal(size=shape) * 5).astype(np.float32)
    logits.reshape(-1)[0] = -200.0  # far below the row maximum: exp underflows to ~0
    m, e, s = _softmax_parts(np, logits)
    m64 = logits.astype(np.float64).max(-1, keepdims=True)
    e64 = np.exp(logits.astype(np.float64) - m64)
    np.testing.assert_array_equal(m, m64.astype(np.float32))
    np.testing.assert_allclose(e, e64, rtol=2e-6, atol=1e-30)
    np.testing.assert_allclose(s, e64.sum(-1, keepdims=True), rtol=1e-5)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    loss, vjp = OPS["softmax_cross_entropy"].fn(np, logits, targets)
    grad = vjp(np.ones(shape[:-1], np.float32))[0]
    monkeypatch.setattr(Bk, "_fused_on", False)  # the NumPy path
    loss0, vjp0 = OPS["softmax_cross_entropy"].fn(np, logits, targets)
    np.testing.assert_allclose(loss, loss0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, vjp0(np.ones(shape[:-1], np.float32))[0], atol=1e-6)


@pytest.mark.parametrize("n,d,c", [(1, 1, 1), (5, 3, 7), (400, 20, 10000)])
@pytest.mark.parametrize("masked", [False, True])
def test_fused_linear_xent_matches_numpy(n, d, c, masked, monkeypatch):
    """The output layer + cross entropy op: its Numba sweep (bias, softmax in place) against
    the NumPy path and against float64, loss and all three gradients, with invalid rows."""
    from rnndsl.autodiff.ops import OPS, fused_bias_softmax_kernel

    assert fused_bias_softmax_kernel() is not None
    rng = np.random.default_rng(n + c)
    x = rng.normal(size=(n, d)).astype(np.float32)
    W = (rng.normal(size=(d, c)) * 2).astype(np.float32)
    b = rng.normal(size=c).astype(np.float32)
    targets = rng.integers(0, c, size=n)
    valid = None
    if masked:
        valid = rng.random(n) > 0.3
        targets = np.where(valid, targets, -1)  # what a padded position holds
    g = rng.uniform(0.5, 1.5, size=n).astype(np.float32)

    def run(dtype):
        loss, vjp = OPS["linear_softmax_xent"].fn(np, x.astype(dtype), W.astype(dtype),
                                                  b.astype(dtype), targets, valid)
        return [loss, *vjp(g.astype(dtype))[:3]]

    fused = run(np.float32)
    monkeypatch.setattr(Bk, "_fused_on", False)
    plain, exact = run(np.float32), run(np.float64)
    for a, p, e in zip(fused, plain, exact):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, p, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=2e-5)
    if masked:
        assert (fused[0][~valid] == 0).all()


def test_linear_xent_refuses_targets_outside_the_classes():
    from rnndsl.autodiff.ops import OPS
    from rnndsl.errors import ShapeError

    x, W, b = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32), np.zeros(4, np.float32)
    for bad in ([0, 4, 1], [0, -1, 1]):
        with pytest.raises(ShapeError, match=r"\[0, 4\)"):
            OPS["linear_softmax_xent"].fn(np, x, W, b, np.array(bad))
    valid = np.array([True, False, True])  # a padded position may hold anything
    OPS["linear_softmax_xent"].fn(np, x, W, b, np.array([0, -1, 3]), valid)


def _optimizer_run(monkeypatch, flag, make, steps=4, wd=0.0):
    """Parameters after a few updates with dense, row-sparse and large gradients."""
    from rnndsl.autodiff.tensor import RowSparse

    monkeypatch.setattr(Bk, "_fused_on", flag == "1")
    rng = np.random.default_rng(0)
    shapes = {"w": (7, 5), "b": (5,), "emb": (30, 4), "big": (300, 700)}  # big: threaded blocks
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    from rnndsl import Tensor

    ts = {k: Tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = make(ts, wd)
    for step in range(steps):
        for k, t in ts.items():
            g = rng.normal(size=t.data.shape).astype(np.float32)
            if k == "emb":
                rows = np.array([3, 7, 3, 29, step], dtype=np.int64)  # repeats: coalesced
                t._grad = RowSparse(rows, g[:5], t.data.shape)
            else:
                t._grad = g
        opt.step()
    return {k: t.data.copy() for k, t in ts.items()}, opt


@pytest.mark.parametrize("make", [
    lambda ps, wd: __import__("rnndsl.train.optim", fromlist=["Adam"]).Adam(
        ps, lr=1e-2, weight_decay=wd),
    lambda ps, wd: __import__("rnndsl.train.optim", fromlist=["SGD"]).SGD(
        ps, lr=0.3, weight_decay=wd),
], ids=["adam", "sgd"])
@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_fused_optimizers_match_numpy(monkeypatch, make, wd):
    pytest.importorskip("rnndsl.kernels.optim_cpu")
    from rnndsl.train import optim

    assert optim._fused(np.zeros(3, np.float32)) is not None
    assert optim._fused(np.zeros(3, np.float64)) is None
    got, opt = _optimizer_run(monkeypatch, "1", make, wd=wd)
    ref, opt0 = _optimizer_run(monkeypatch, "0", make, wd=wd)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # rows of the embedding never used are untouched; the moments differ by rounding only (FMA)
    assert np.array_equal(got["emb"][10:20], ref["emb"][10:20])
    for key, v in opt0.state_arrays().items():
        np.testing.assert_allclose(opt.state_arrays()[key], v, rtol=1e-4, atol=1e-7,
                                   err_msg=key)


@pytest.mark.parametrize("n,d", [(1, 3), (800, 100), (50, 1)])
def test_fused_row_sums_match_numpy(monkeypatch, n, d):
    from rnndsl.autodiff.tensor import RowSparse

    rng = np.random.default_rng(n)
    rows = rng.integers(0, max(2, n // 3), size=n)  # many repeats
    values = rng.normal(size=(n, d)).astype(np.float32)
    u1, s1 = Bk.sum_rows(rows, values)
    dense = RowSparse(rows, values, (max(2, n // 3), d)).to_dense()
    monkeypatch.setattr(Bk, "_fused_on", False)
    u0, s0 = Bk.sum_rows(rows, values)
    np.testing.assert_array_equal(u1, u0)
    np.testing.assert_allclose(s1, s0, rtol=1e-5, atol=1e-6)
    ref = np.zeros_like(dense)
    np.add.at(ref, rows, values)
    np.testing.assert_allclose(dense, ref, rtol=1e-5, atol=1e-6)


def test_the_environment_switch_at_start_up():
    import subprocess
    import sys

    code = ("from rnndsl.autodiff import backend as B; import numpy as np; "
            "from rnndsl.nn.cells import lstm as K; "
            "print(K.lstm_gate_kernels(np, np.zeros((1, 1, 4), np.float32))[0].__module__)")
    env = dict(__import__("os").environ, **{Bk.FUSED_ENV: "0"})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "rnndsl.nn.cells.lstm"
    assert Bk.set_fused(False) is True and Bk.fused_module("rnndsl.kernels.cells_cpu") is None
    assert Bk.set_fused(True) is False and Bk.fused_module("rnndsl.kernels.cells_cpu") is fused


@pytest.mark.parametrize("D,B,H", [(2, 1, 128), (1, 3, 7), (2, 4, 5)])
def test_small_step_matches_the_generic_step(D, B, H):
    # h W + xg and the gates in one call (inference of a few sequences) against matmul + gates
    rng = np.random.default_rng(H)
    xg = rng.normal(size=(D, B, 4 * H)).astype(np.float32)
    h = rng.normal(size=(D, B, H)).astype(np.float32)
    c = rng.normal(size=(D, B, H)).astype(np.float32)
    W = (rng.normal(size=(D, H, 4 * H)) * 0.3).astype(np.float32)
    a = np.matmul(h, W) + xg
    c_ref, _, h_ref = K._lstm_gates_forward(np, a, c)
    h1, c1 = fused.lstm_small_step(xg, h, c, W)
    np.testing.assert_allclose(h1, h_ref, atol=2e-6)
    np.testing.assert_allclose(c1, c_ref, atol=2e-6)
    assert K.lstm_small_step_kernel(np, W, D * B) is fused.lstm_small_step
    assert K.lstm_small_step_kernel(np, W, fused.SMALL_ROWS + 1) is None
    assert K.lstm_small_step_kernel(np, W.astype(np.float64), 1) is None
