"""Cells and stacks equal torch.nn.RNN/LSTM/GRU with the same weights, outputs and gradients.

Stored fixtures (made by tests/fixtures/make_torch_fixtures.py with torch's packed sequences)
are compared always; a live comparison with fresh weights runs where torch is installed.
"""

import glob
import os

import numpy as np
import pytest

import rnndsl
from rnndsl import Tensor
from rnndsl.errors import TorchStateError
from rnndsl.gradchecks import cell_forms, form_text
from rnndsl.lang.cells import CELLS as LANG_CELLS
from rnndsl.nn.cells import Cell

HERE = os.path.dirname(__file__)
FIXTURES = sorted(glob.glob(os.path.join(HERE, "fixtures", "torch_*.npz")))


def run_against(z, dtype):
    state = {k[6:]: z[k] for k in z.files if k.startswith("state.")}
    net = rnndsl.compile(str(z["pipeline"]), input_dim=z["x"].shape[-1], dtype=dtype)
    net.load_torch_state(state)
    x = Tensor(z["x"].astype(dtype), requires_grad=True)
    y = net(x, lengths=z["lengths"])
    (y * Tensor(z["w"].astype(dtype))).sum().backward()
    return net, x, y


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: os.path.basename(p)[6:-4])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_matches_torch_fixture(path, dtype, tol):
    with np.load(path, allow_pickle=False) as z:
        net, x, y = run_against(z, dtype)
        np.testing.assert_allclose(y.numpy(), z["y"], atol=tol, rtol=tol)
        np.testing.assert_allclose(x.grad, z["dx"], atol=tol, rtol=tol)
        grads = net.torch_state(grads=True)
        names = [k[5:] for k in z.files if k.startswith("grad.")]
        assert sorted(grads) == sorted(names)
        for k in names:
            np.testing.assert_allclose(grads[k], z[f"grad.{k}"], atol=tol, rtol=tol, err_msg=k)


def test_fixtures_exist():
    assert len(FIXTURES) >= 10


def torch_forms() -> list[tuple[str, dict, str]]:
    """Every form of every cell that PyTorch has: (pipeline, constructor options, module)."""
    rows = []
    for name, spec in LANG_CELLS.items():
        for form in cell_forms(spec):
            cell = Cell(name, **form)
            try:
                cell.check_torch_compatible()
            except TorchStateError:
                continue  # not in PyTorch: tests/cell_references.py has its NumPy reference
            pipeline = f"bi{name}(d=5{form_text(form)}) |> stack(2)"
            rows.append(pytest.param(pipeline, cell.type.torch_options(cell), cell.torch_module,
                                     id=pipeline))
    return rows


@pytest.mark.parametrize("pipeline,extra,module", torch_forms())
@pytest.mark.parametrize("lengths", [[7, 3, 1, 5, 7], [7, 7, 5, 3, 1]], ids=["masked", "packed"])
def test_live_against_torch(pipeline, extra, module, lengths):
    # unsorted lengths run through the step masks, sorted ones (longest first) in the packed
    # layout (rnndsl.nn.module.Packing)
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)
    m = getattr(torch.nn, module)(4, 5, num_layers=2, bidirectional=True, batch_first=True,
                                  **extra).double()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 7, 4))
    xt = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out, _ = m(packed)
    y_ref, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=7)
    w = rng.standard_normal(tuple(y_ref.shape))
    (y_ref * torch.tensor(w)).sum().backward()

    net = rnndsl.compile(pipeline, input_dim=4, dtype="float64")
    net.load_torch_state(m.state_dict())  # torch tensors are accepted as they are
    xr = Tensor(x, requires_grad=True)
    y = net(xr, lengths=lengths)
    (y * Tensor(w)).sum().backward()
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(xr.grad, xt.grad.numpy(), atol=1e-10)
    grads = net.torch_state(grads=True)
    for k, p in m.named_parameters():
        np.testing.assert_allclose(grads[k], p.grad.numpy(), atol=1e-10, err_msg=k)


def test_torch_state_roundtrip_names_and_layouts():
    net = rnndsl.compile("bilstm(d=3) |> stack(2)", input_dim=2)
    state = net.torch_state()
    assert state["weight_ih_l0"].shape == (12, 2)
    assert state["weight_hh_l1_reverse"].shape == (12, 3)
    assert state["weight_ih_l1"].shape == (12, 6)
    net2 = rnndsl.compile("bilstm(d=3) |> stack(2)", input_dim=2, seed=5)
    net2.load_torch_state(state)
    for k, v in net2.torch_state().items():
        np.testing.assert_array_equal(v, state[k])


def test_torch_state_from_npz(tmp_path):
    net = rnndsl.compile('gru(d=3, reset="after")', input_dim=2)
    np.savez(tmp_path / "w.npz", **net.torch_state())
    net2 = rnndsl.compile('gru(d=3, reset="after")', input_dim=2, seed=9)
    net2.load_torch_state(tmp_path / "w.npz")
    x = np.ones((1, 3, 2), dtype="float32")
    np.testing.assert_array_equal(net(x).numpy(), net2(x).numpy())


def test_lecture_gru_refuses_torch_weights():
    net = rnndsl.compile("gru(d=3)", input_dim=2)
    with pytest.raises(TorchStateError, match="reset"):
        net.torch_state()
    other = rnndsl.compile('gru(d=3, reset="after")', input_dim=2)
    with pytest.raises(TorchStateError, match="reset"):
        net.load_torch_state(other.torch_state())


def test_wrong_torch_state_is_a_clear_error():
    net = rnndsl.compile("lstm(d=3)", input_dim=2)
    state = net.torch_state()
    state["weight_hh_l0"] = state["weight_hh_l0"][:, :2]
    with pytest.raises(TorchStateError, match="weight_hh_l0 has shape"):
        net.load_torch_state(state)
    with pytest.raises(TorchStateError, match="missing bias_ih_l0"):
        net.load_torch_state({k: v for k, v in state.items() if k != "bias_ih_l0"})


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("kind", ["adam", "adam_wd", "sgd", "sgd_momentum"])
def test_optimizers_against_torch(kind, dtype, tol):
    # float32 goes through the fused kernels when Numba is there, float64 through NumPy
    torch = pytest.importorskip("torch")
    from rnndsl.train.optim import SGD, Adam

    rng = np.random.default_rng(5)
    shapes = [(6, 4), (4,), (300, 40)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(5)]
    ours = {str(i): Tensor(a.copy(), requires_grad=True) for i, a in enumerate(init)}
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    if kind.startswith("adam"):
        wd = 0.1 if kind == "adam_wd" else 0.0
        opt = Adam(ours, lr=0.01, beta1=0.8, beta2=0.99, weight_decay=wd)
        topt = torch.optim.Adam(theirs, lr=0.01, betas=(0.8, 0.99), weight_decay=wd)
    else:
        mom = 0.9 if kind == "sgd_momentum" else 0.0
        opt = SGD(ours, lr=0.1, momentum=mom)
        topt = torch.optim.SGD(theirs, lr=0.1, momentum=mom)
    for gs in grads:
        for (_, t), tt, g in zip(ours.items(), theirs, gs):
            t.grad = g.copy()
            tt.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
    for (k, t), tt in zip(ours.items(), theirs):
        np.testing.assert_allclose(t.data, tt.detach().numpy(), rtol=tol, atol=tol, err_msg=k)
