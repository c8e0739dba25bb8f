"""The fused CPU GRU gate kernels (rnndsl/kernels/gru_cpu.py), both forms, against the generic
NumPy gate arithmetic of kernels.py."""

from __future__ import annotations

import numpy as np
import pytest

from rnndsl.autodiff import backend as Bk
from rnndsl.nn.cells import gru as K

fused = pytest.importorskip("rnndsl.kernels.gru_cpu", reason="numba is not installed")


def _generic(fn, *args):
    """Run fn with the fused kernels off (the generic NumPy path)."""
    before = Bk.set_fused(False)
    try:
        return fn(*args)
    finally:
        Bk.set_fused(before)


SHAPES = [(1, 1, 1), (2, 5, 7), (2, 32, 128), (1, 3, 200)]


@pytest.mark.parametrize("scale", [0.1, 3.0, 30.0])
@pytest.mark.parametrize("shape", SHAPES)
def test_reset_after_gates_match_the_generic_kernel(scale, shape):
    D, B, H = shape
    rng = np.random.default_rng(sum(shape))
    xg = (rng.normal(size=(D, B, 3 * H)) * scale).astype(np.float32)
    hh = (rng.normal(size=(D, B, 3 * H)) * scale).astype(np.float32)
    h = rng.normal(size=(D, B, H)).astype(np.float32)
    gh = rng.normal(size=(D, B, H)).astype(np.float32)
    saved_r, h_r = K._gru_gates_forward(np, xg, hh, h)
    saved, h_new = fused.gru_gates_forward(np, xg, hh, h)
    assert h_new.dtype == np.float32
    # float32 rounding of pre-activations of size ~scale^2 (r * hh) sets the scale of the error
    tol = 2e-6 * max(1.0, scale) ** 2
    np.testing.assert_allclose(h_new, h_r, atol=tol, rtol=0)
    for g in (gh, None):
        ref = K._gru_gates_backward(np, saved_r, hh, h, g)
        out = fused.gru_gates_backward(np, saved, hh, h, g)
        for r, o in zip(ref, out):
            np.testing.assert_allclose(o, r, atol=10 * tol, rtol=1e-5)


def _lecture(core, xg, h, W, gh):
    (h_new,), vjp = core(np, xg.copy(), (h,), (W,))
    dxg, (g_h,), (g_W,) = vjp((gh,))
    return h_new, dxg, g_h, g_W


@pytest.mark.parametrize("shape", SHAPES)
def test_lecture_core_matches_the_generic_core(shape):
    D, B, H = shape
    rng = np.random.default_rng(7 + sum(shape))
    xg = (rng.normal(size=(D, B, 3 * H)) * 2).astype(np.float32)
    h = rng.normal(size=(D, B, H)).astype(np.float32)
    W = (rng.normal(size=(D, H, 3 * H)) / np.sqrt(H)).astype(np.float32)
    gh = rng.normal(size=(D, B, H)).astype(np.float32)
    ref = _generic(_lecture, K._gru_lecture_core, xg, h, W, gh)
    out = _lecture(fused.gru_lecture_core, xg, h, W, gh)
    for r, o in zip(ref, out):
        assert o.dtype == np.float32 and o.shape == r.shape
        np.testing.assert_allclose(o, r, atol=3e-5, rtol=1e-5)
    # no cotangent for h_new (a step whose output nobody reads)
    ref0 = _generic(_lecture, K._gru_lecture_core, xg, h, W, None)
    out0 = _lecture(fused.gru_lecture_core, xg, h, W, None)
    for r, o in zip(ref0, out0):
        np.testing.assert_allclose(o, r, atol=3e-5, rtol=1e-5)


def test_strided_state_slices_and_dispatch():
    """The packed step passes h[:, :n] (strided); the step ops pick the fused kernels for
    float32 host arrays only."""
    rng = np.random.default_rng(3)
    D, B, H, n = 2, 6, 9, 4
    h = rng.normal(size=(D, B, H)).astype(np.float32)
    xg = rng.normal(size=(D, n, 3 * H)).astype(np.float32)
    hh = rng.normal(size=(D, n, 3 * H)).astype(np.float32)
    W = rng.normal(size=(D, H, 3 * H)).astype(np.float32)
    np.testing.assert_allclose(fused.gru_gates_forward(np, xg, hh, h[:, :n])[1],
                               K._gru_gates_forward(np, xg, hh, h[:, :n])[1], atol=2e-6)
    a = _generic(_lecture, K._gru_lecture_core, xg, h[:, :n], W, h[:, :n])
    b = _lecture(fused.gru_lecture_core, xg, h[:, :n], W, h[:, :n])
    for r, o in zip(a, b):
        np.testing.assert_allclose(o, r, atol=5e-5, rtol=1e-5)
    assert K.gru_gate_kernels(np, hh)[0] is fused.gru_gates_forward
    assert K.gru_gate_kernels(np, hh.astype(np.float64))[0] is K._gru_gates_forward
    assert _generic(K.gru_gate_kernels, np, hh)[0] is K._gru_gates_forward


@pytest.mark.parametrize("op", ["gru_step", "gru_lecture_step"])
def test_step_ops_with_fused_gates_match_generic(op):
    """The whole step op (masks, packed prefix) with the fused gates against the generic."""
    from rnndsl.autodiff.ops import OPS

    rng = np.random.default_rng(11)
    D, B, H = 2, 5, 6
    xg = rng.normal(size=(D, B, 3 * H)).astype(np.float32)
    h = rng.normal(size=(D, B, H)).astype(np.float32)
    W = (rng.normal(size=(D, H, 3 * H)) / 3).astype(np.float32)
    bh = rng.normal(size=(D, 1, 3 * H)).astype(np.float32)
    mask = np.array([True, True, False, True, False])[:, None]
    gh = rng.normal(size=(D, B, H)).astype(np.float32)
    params = (W, bh) if op == "gru_step" else (W,)

    def go(kw):
        (h_new,), vjp = OPS[op].fn(np, xg.copy(), h, *params, **kw)
        return (h_new, *[g for g in vjp((gh,)) if g is not None])

    for kw in ({"mask": mask}, {"n": 3}, {}):
        ref = _generic(go, kw)
        out = go(kw)
        for r, o in zip(ref, out):
            r = r.materialize() if hasattr(r, "materialize") else r
            o = o.materialize() if hasattr(o, "materialize") else o
            np.testing.assert_allclose(o, r, atol=5e-5, rtol=1e-5)
