"""The CuPy gate and optimizer kernels (rnndsl/kernels/gpu.py) against the generic arithmetic.

Two ways: on a GPU, the kernels themselves through CuPy against the generic step ops on CuPy and
NumPy; on any machine, the same kernel bodies compiled as C++ by the host's compiler (an
ElementwiseKernel body is C++ over one element) against the generic NumPy functions, so their
arithmetic is tested where no GPU is.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from rnndsl.autodiff import backend as Bk
from rnndsl.kernels import gpu as G
from rnndsl.nn.cells import gru as KG
from rnndsl.nn.cells import lstm as K

# --- the kernel bodies as host C++ --------------------------------------------------------------
_CTYPES = {"int32": ("int", ctypes.c_int), "int64": ("long long", ctypes.c_longlong)}


def _params(spec: str, out: bool):
    """[(raw, type, name, is_output)] of an ElementwiseKernel parameter list."""
    found = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        words = part.split()
        raw = words[0] == "raw"
        typ, name = words[-2], words[-1]
        found.append((raw, typ, name, out))
    return found


def _cxx(name: str, T: str) -> str:
    """An extern "C" function looping the body of KERNELS[name] over i, element type T."""
    in_p, out_p, body = G.KERNELS[name]
    params = _params(in_p, False) + _params(out_p, True)
    args, binds = ["long long size"], []
    for raw, typ, pname, is_out in params:
        ctype = {"T": T, "I": "long long"}.get(typ) or _CTYPES[typ][0]
        if raw:
            args.append(f"{ctype}* {pname}")
        elif typ in ("T", "I"):  # an array argument: this element's value (a reference)
            args.append(f"{ctype}* {pname}_p")
            binds.append(f"{'' if is_out else 'const '}{ctype}& {pname} = {pname}_p[i];")
        else:  # a scalar
            args.append(f"{ctype} {pname}")
    return (f'extern "C" void {name}_{T}({", ".join(args)}) {{\n'
            f"  typedef {T} T;\n  typedef long long I;\n"
            f"  for (long long i = 0; i < size; ++i) {{\n    {' '.join(binds)}\n{body}\n  }}\n}}\n")


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.fail("a C++ compiler is needed to test the GPU kernels' arithmetic on the host "
                    "(apt-get install g++)")
    src = "#include <cmath>\n#include <cstddef>\nusing std::tanh; using std::sqrt;\n" + "".join(
        _cxx(name, T) for name in G.KERNELS for T in ("float", "double"))
    d = tmp_path_factory.mktemp("kernels")
    (d / "k.cpp").write_text(src)
    subprocess.run([cxx, "-O1", "-shared", "-fPIC", "-o", str(d / "k.so"), str(d / "k.cpp")],
                   check=True)
    return ctypes.CDLL(str(d / "k.so"))


def _call(lib, name, size, *args):
    """Call KERNELS[name] on the host with the arguments in the kernel's order: arrays
    (contiguous, full size) by pointer, the scalars as their declared C types."""
    in_p, out_p, _ = G.KERNELS[name]
    params = _params(in_p, False) + _params(out_p, True)
    assert len(params) == len(args)
    dtype = next(a.dtype for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    T = "float" if dtype == np.float32 else "double"
    conv, keep = [], []
    for (raw, typ, _, _), a in zip(params, args):
        if isinstance(a, np.ndarray):
            assert a.flags.c_contiguous and (raw or a.size == size)
            conv.append(a.ctypes.data_as(ctypes.c_void_p))
        elif typ == "T":  # a scalar for an element argument: broadcast, as CuPy does
            keep.append(np.full(size, a, dtype))
            conv.append(keep[-1].ctypes.data_as(ctypes.c_void_p))
        else:
            conv.append(_CTYPES[typ][1](a))
    getattr(lib, f"{name}_{T}")(ctypes.c_longlong(size), *conv)


def _lstm_inputs(rng, dtype, D=2, B=5, H=7, scale=3.0):
    a = (rng.normal(size=(D, B, 4 * H)) * scale).astype(dtype)
    c, gh, gc = (rng.normal(size=(D, B, H)).astype(dtype) for _ in range(3))
    return a, c, gh, gc


TOL = {np.float32: 2e-6, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_kernel_bodies_on_the_host(host_lib, dtype):
    rng = np.random.default_rng(1)
    a, c, gh, gc = _lstm_inputs(rng, dtype)
    H = c.shape[-1]
    ref_a = a.copy()
    ref = K._lstm_gates_forward(np, ref_a, c)
    out = np.empty((3,) + c.shape, dtype)
    got_a = a.copy()
    _call(host_lib, "lstm_forward", c.size, c, H, got_a, out[0], out[1], out[2])
    tol = TOL[dtype]
    np.testing.assert_allclose(got_a, ref_a, atol=tol, rtol=tol)
    for r, o in zip(ref, out):
        np.testing.assert_allclose(o, r, atol=tol, rtol=tol)
    da_ref, gcp_ref = K._lstm_gates_backward(np, ref_a, c, ref[1], gh, gc)
    da, gcp = np.empty_like(a), np.empty_like(c)
    _call(host_lib, "lstm_backward", c.size, got_a, c, ref[1], gh, gc, H, da, gcp)
    np.testing.assert_allclose(da, da_ref, atol=tol, rtol=tol * 10)
    np.testing.assert_allclose(gcp, gcp_ref, atol=tol, rtol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gru_kernel_bodies_on_the_host(host_lib, dtype):
    rng = np.random.default_rng(2)
    D, B, H = 2, 4, 6
    xg, hh = (rng.normal(size=(D, B, 3 * H)).astype(dtype) * 2 for _ in range(2))
    h, gh = (rng.normal(size=(D, B, H)).astype(dtype) for _ in range(2))
    saved, h_ref = KG._gru_gates_forward(np, xg, hh, h)
    s, h_new = np.empty_like(xg), np.empty_like(h)
    _call(host_lib, "gru_forward", h.size, xg, hh, h, H, s, h_new)
    tol = TOL[dtype]
    np.testing.assert_allclose(h_new, h_ref, atol=tol, rtol=tol)
    refs = KG._gru_gates_backward(np, saved, hh, h, gh)
    dxg, dhh, gh_z = np.empty_like(xg), np.empty_like(xg), np.empty_like(h)
    _call(host_lib, "gru_backward", h.size, s, hh, h, gh, H, dxg, dhh, gh_z)
    for r, o in zip(refs, (dxg, dhh, gh_z)):
        np.testing.assert_allclose(o, r, atol=tol, rtol=tol * 10)


def _adam_reference(p, g, m, v, t, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    m = m * b1 + (1 - b1) * g
    v = v * b2 + (1 - b2) * g * g
    p = p - (lr / (1 - b1**t)) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return p, m, v


def _adam_scalars(t, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    return b1, b2, lr / (1 - b1**t), 1 / np.sqrt(1 - b2**t), eps


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_bodies_on_the_host(host_lib, dtype):
    rng = np.random.default_rng(3)
    p, g, m = (rng.normal(size=(6, 5)).astype(dtype) for _ in range(3))
    v = rng.random((6, 5)).astype(dtype)
    want = _adam_reference(p, g, m, v, t=3)
    got = [x.copy() for x in (p, m, v)]
    _call(host_lib, "adam", p.size, g, *_adam_scalars(3), *got)
    tol = TOL[dtype] * 10
    for w, o in zip(want, got):
        np.testing.assert_allclose(o, w, atol=tol, rtol=tol)
    rows = np.array([4, 1], dtype=np.int64)  # lazy: only these rows move
    got = [x.copy() for x in (p, m, v)]
    values = np.ascontiguousarray(g[:2])
    _call(host_lib, "adam_rows", rows.size * 5, rows, values, 5, *_adam_scalars(3), *got)
    want = _adam_reference(p[rows], values, m[rows], v[rows], t=3)
    for full, w, o in zip((p, m, v), want, got):
        np.testing.assert_allclose(o[rows], w, atol=tol, rtol=tol)
        untouched = np.setdiff1d(np.arange(6), rows)
        np.testing.assert_array_equal(o[untouched], full[untouched])


# --- on a GPU: the kernels through CuPy ---------------------------------------------------------
needs_gpu = pytest.mark.skipif(not Bk.cupy_available(),
                               reason="CuPy backend: CuPy is not installed or no GPU is visible")


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("prefix", [None, 3], ids=["full", "strided-prefix"])
def test_lstm_gates_on_cupy_match_the_generic(dtype, prefix):
    import cupy as cp

    rng = np.random.default_rng(4)
    a, c, gh, gc = _lstm_inputs(rng, dtype, D=2, B=6, H=9)
    if prefix:  # the sorted-batch step passes state slices c[:, :n] (strided)
        a = np.ascontiguousarray(a[:, :prefix])
        c, gh, gc = c[:, :prefix], gh[:, :prefix], gc[:, :prefix]
    ca, cc = cp.asarray(a), cp.asarray(np.ascontiguousarray(c))
    if prefix:
        cc = cp.asarray(np.pad(np.ascontiguousarray(c), ((0, 0), (0, 2), (0, 0))))[:, :prefix]
    assert K.lstm_gate_kernels(cp, ca)[0] is G.lstm_gates_forward
    ref_a = a.copy()
    ref = K._lstm_gates_forward(np, ref_a, c)
    out = G.lstm_gates_forward(cp, ca, cc)
    tol = TOL[dtype] * 5
    np.testing.assert_allclose(cp.asnumpy(ca), ref_a, atol=tol, rtol=tol)
    for r, o in zip(ref, out):
        np.testing.assert_allclose(cp.asnumpy(o), r, atol=tol, rtol=tol)
    for g_h, g_c in [(gh, gc), (None, gc), (gh, None)]:
        want = K._lstm_gates_backward(np, ref_a, c, ref[1], g_h, g_c)
        got = G.lstm_gates_backward(cp, ca, cc, out[1],
                                    None if g_h is None else cp.asarray(g_h),
                                    None if g_c is None else cp.asarray(g_c))
        for w, o in zip(want, got):
            np.testing.assert_allclose(cp.asnumpy(o), w, atol=tol, rtol=tol * 10)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D,B,H,width", [(2, 32, 128, 512), (1, 20, 200, 800), (2, 1, 5, 20),
                                     (2, 3, 7, 1)])
def test_the_gradient_product_through_cublas_matches_matmul(dtype, D, B, H, width):
    import cupy as cp

    rng = np.random.default_rng(7)
    W = cp.asarray(rng.normal(size=(D, H, width)).astype(dtype))
    d = cp.asarray(rng.normal(size=(D, B + 2, width)).astype(dtype))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    # a batch-prefix slice (the sorted-batch step) and a contiguous array
    for dd in (d[:, :B], cp.ascontiguousarray(d[:, :B])):
        want = cp.asnumpy(cp.matmul(dd, cp.swapaxes(W, -1, -2)))
        np.testing.assert_allclose(cp.asnumpy(G.step_product_t(cp, dd, W)), want, rtol=tol,
                                   atol=tol * width)
    # layouts cuBLAS cannot take directly go through matmul and are still right
    Wf = cp.asfortranarray(W)
    np.testing.assert_allclose(cp.asnumpy(G.step_product_t(cp, d, Wf)),
                               cp.asnumpy(cp.matmul(d, cp.swapaxes(Wf, -1, -2))), rtol=tol,
                               atol=tol * width)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gru_gates_on_cupy_match_the_generic(dtype):
    import cupy as cp

    rng = np.random.default_rng(5)
    D, B, H = 2, 5, 8
    xg, hh = (rng.normal(size=(D, B, 3 * H)).astype(dtype) * 2 for _ in range(2))
    h, gh = (rng.normal(size=(D, B, H)).astype(dtype) for _ in range(2))
    saved, h_ref = KG._gru_gates_forward(np, xg, hh, h)
    assert KG.gru_gate_kernels(cp, cp.asarray(hh))[0] is G.gru_gates_forward
    s, h_new = G.gru_gates_forward(cp, cp.asarray(xg), cp.asarray(hh), cp.asarray(h))
    tol = TOL[dtype] * 5
    np.testing.assert_allclose(cp.asnumpy(h_new), h_ref, atol=tol, rtol=tol)
    for g in (gh, None):
        want = KG._gru_gates_backward(np, saved, hh, h, g)
        got = G.gru_gates_backward(cp, s, cp.asarray(hh), cp.asarray(h),
                                   None if g is None else cp.asarray(g))
        for w, o in zip(want, got):
            np.testing.assert_allclose(cp.asnumpy(o), w, atol=tol, rtol=tol * 10)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_on_cupy_matches_the_numpy_rule(dtype):
    import cupy as cp

    from rnndsl.autodiff import Tensor
    from rnndsl.autodiff.tensor import RowSparse
    from rnndsl.train.optim import Adam

    rng = np.random.default_rng(6)
    w0, e0 = rng.normal(size=(7, 5)).astype(dtype), rng.normal(size=(9, 4)).astype(dtype)
    grads = [(rng.normal(size=(7, 5)).astype(dtype), np.array([3, 0, 8]),
              rng.normal(size=(3, 4)).astype(dtype)) for _ in range(3)]

    def run(xp, fused):
        before = Bk.set_fused(fused)
        try:
            # copies: the updates are in place (np.asarray would hand over w0 itself)
            w, e = Tensor(xp.array(w0), requires_grad=True), Tensor(xp.array(e0),
                                                                    requires_grad=True)
            opt = Adam({"w": w, "e": e}, lr=1e-2)
            for gw, rows, vals in grads:
                w.grad = xp.asarray(gw)
                e.grad = RowSparse(xp.asarray(rows), xp.asarray(vals), e0.shape)
                opt.step()
            return [Bk.to_host(x.data) for x in (w, e)]
        finally:
            Bk.set_fused(before)

    want = run(np, False)
    for fused in (True, False):
        got = run(cp, fused)
        for w, o in zip(want, got):
            np.testing.assert_allclose(o, w, atol=TOL[dtype] * 10, rtol=TOL[dtype] * 10)


@needs_gpu
@pytest.mark.parametrize("cell", ["bilstm", "bigru"])
@pytest.mark.parametrize("lengths", [[7, 7, 7], [7, 5, 2], [2, 7, 5]],
                         ids=["full", "sorted", "masked"])
def test_a_network_on_cupy_with_and_without_the_kernels(cell, lengths):
    import cupy as cp

    import rnndsl
    from rnndsl import Tensor

    x = np.random.default_rng(0).standard_normal((3, 7, 6))

    def run(backend, fused):
        before = Bk.set_fused(fused)
        try:
            net = rnndsl.compile(f"{cell}(d=5) |> stack(2)", input_dim=6, seed=1,
                                 dtype="float64", backend=backend)
            xp = net.backend.xp
            xt = Tensor(xp.asarray(x), requires_grad=True)
            y = net(xt, lengths=lengths)
            net.zero_grad()
            (y * y).sum().backward()
            return [Bk.to_host(y.data), Bk.to_host(xt.grad)] + [
                Bk.to_host(p.grad) for _, p in sorted(net.named_parameters().items())]
        finally:
            Bk.set_fused(before)

    want = run("numpy", False)
    for fused in (True, False):
        for w, o in zip(want, run("cupy", fused)):
            np.testing.assert_allclose(o, w, atol=1e-9, rtol=1e-7)
    assert cp.cuda.runtime.getDeviceCount() >= 1
