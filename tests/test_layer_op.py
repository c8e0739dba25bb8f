"""The layer op (one tape node per recurrent layer) equals the per-step tape it replaces.

Outputs, final states and every gradient (weights, biases, learned initial states, the input),
for every cell, one and two directions, full, packed (sorted, padded) and masked (unsorted)
batches, float64 to 1e-10 and float32 to float rounding; and a whole spec trains to the same
losses either way.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from rnndsl.autodiff import backend as Bk
from rnndsl.autodiff.tensor import Tensor, no_grad
from rnndsl.nn import layer_op
from rnndsl.nn.cells import Cell
from rnndsl.nn.layers import Init, Recurrent
from rnndsl.nn.module import RunContext, SeqInfo, SeqValue

K = Bk.fused_module("rnndsl.kernels.layer_cpu")
pytestmark = pytest.mark.skipif(
    K is None, reason="the layer op needs Numba and the OpenBLAS that NumPy's wheel ships")

CELLS = {
    "srnn_tanh": Cell("srnn"),
    "srnn_relu": Cell("srnn", act="relu"),
    "lstm": Cell("lstm"),
    "gru_after": Cell("gru", reset="after"),
    "gru_before": Cell("gru", reset="before"),
}
BATCHES = {
    "full": [6, 6, 6],
    "packed": [7, 5, 5, 2, 1],  # sorted longest first, with padding
    "masked": [3, 7, 1, 5],  # not sorted
}


def run_layer(monkeypatch, cell, D, lengths, dtype, op_on, s0="zeros", init_state=False,
              T=None, din=5, H=4, seed=0, forget_bias=0.5, x_grad=True):
    """Forward and backward of one layer; returns the result arrays and which op ran."""
    monkeypatch.setenv(layer_op.LAYER_OP_ENV, "1" if op_on else "0")
    rng = np.random.default_rng(seed)
    T = T or max(lengths)
    B = len(lengths)
    init = Init(np.random.default_rng(1), Bk.get_backend("numpy"), np.dtype(dtype))
    layer = Recurrent("l", cell, din, H, D == 2, init, s0=s0, forget_bias=forget_bias)
    if s0 == "learned":
        for p in cell.carries:
            layer.params[p + "0"].data[:] = rng.standard_normal((D, 1, H))
    x = Tensor(rng.standard_normal((T, B, din)).astype(dtype), requires_grad=x_grad)
    ctx = RunContext()
    given = []
    if init_state:
        given = [Tensor(rng.standard_normal((D, B, H)).astype(dtype), requires_grad=True)
                 for _ in cell.carries]
        ctx.init_states["l"] = tuple(given)
    y = layer.forward(SeqValue(x, SeqInfo(lengths, T, np)), ctx).data
    finals = ctx.final_states["l"]
    loss = (y * Tensor(rng.standard_normal(y.shape).astype(dtype))).sum()
    for s in finals:
        loss = loss + (s * Tensor(rng.standard_normal(s.shape).astype(dtype))).sum()
    loss.backward()
    out = {"y": y.data, "dx": x.grad} if x_grad else {"y": y.data}
    out.update({f"final{k}": s.data for k, s in enumerate(finals)})
    out.update({f"d{k}": p.grad for k, p in layer.params.items()})
    out.update({f"dinit{k}": t.grad for k, t in enumerate(given)})
    return out, y.node.op


def assert_same(a, b, dtype):
    assert a.keys() == b.keys()
    for k in b:
        assert b[k] is not None, k
        if dtype == "float64":
            np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-10, err_msg=k)
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=2e-6, err_msg=k)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("D", [1, 2])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_layer_op_equals_per_step(monkeypatch, cell, D, batch, dtype):
    lengths = BATCHES[batch]
    a, op_a = run_layer(monkeypatch, CELLS[cell], D, lengths, dtype, True)
    b, op_b = run_layer(monkeypatch, CELLS[cell], D, lengths, dtype, False)
    assert op_a == "rnn_layer" and op_b != "rnn_layer"
    assert_same(a, b, dtype)


class _NaNEmpty:
    """NumPy, but np.empty fills with NaN: a kernel that reads memory it never wrote shows."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float, **kw):
        a = np.empty(shape, dtype, **kw)
        a.fill(np.nan)
        return a


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("batch", ["packed", "masked"])
def test_no_uninitialised_buffer_is_read(monkeypatch, cell, batch):
    monkeypatch.setattr(layer_op, "np", _NaNEmpty())
    a, _ = run_layer(monkeypatch, CELLS[cell], 2, BATCHES[batch], "float64", True)
    monkeypatch.undo()
    b, _ = run_layer(monkeypatch, CELLS[cell], 2, BATCHES[batch], "float64", False)
    assert_same(a, b, "float64")


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("batch", ["packed", "masked"])
def test_learned_and_given_initial_states(monkeypatch, cell, batch):
    for kw in ({"s0": "learned"}, {"init_state": True}):
        a, _ = run_layer(monkeypatch, CELLS[cell], 2, BATCHES[batch], "float64", True, **kw)
        b, _ = run_layer(monkeypatch, CELLS[cell], 2, BATCHES[batch], "float64", False, **kw)
        assert_same(a, b, "float64")


@pytest.mark.parametrize("cell", ["lstm", "gru_before", "srnn_relu"])
@pytest.mark.parametrize("lengths", [[4, 2, 1], [2, 4, 1]])
def test_padding_beyond_the_longest_sequence(monkeypatch, cell, lengths):
    """T larger than every length (a batch padded to a fixed size): no step runs every row."""
    a, _ = run_layer(monkeypatch, CELLS[cell], 2, lengths, "float64", True, T=6)
    b, _ = run_layer(monkeypatch, CELLS[cell], 2, lengths, "float64", False, T=6)
    assert not a["y"][4:].any()
    assert_same(a, b, "float64")


def test_small_inference_keeps_the_per_step_path(monkeypatch):
    """Tape-free inference of a few rows (one sentence) runs the per-step small-step kernel."""
    monkeypatch.setenv(layer_op.LAYER_OP_ENV, "1")
    init = Init(np.random.default_rng(1), Bk.get_backend("numpy"), np.dtype("float32"))
    layer = Recurrent("l", CELLS["lstm"], 3, 4, True, init)
    x = Tensor(np.ones((5, 1, 3), np.float32))
    calls = []
    monkeypatch.setattr(layer_op, "forward", lambda *a: calls.append(1))
    with no_grad():
        layer.forward(SeqValue(x, SeqInfo([5], 5, np)), RunContext())
    assert calls == []
    x = Tensor(np.ones((5, 8, 3), np.float32))
    with no_grad():
        layer.forward(SeqValue(x, SeqInfo([5] * 8, 5, np)), RunContext())
    assert calls == [1]


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_input_without_gradient(monkeypatch, cell):
    """The first layer of a model without an embedding: no input gradient is computed, the
    weights' gradients are the same."""
    a, _ = run_layer(monkeypatch, CELLS[cell], 2, BATCHES["masked"], "float64", True,
                     x_grad=False)
    b, _ = run_layer(monkeypatch, CELLS[cell], 2, BATCHES["masked"], "float64", False,
                     x_grad=False)
    assert "dx" not in a
    assert_same(a, b, "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", ["lstm", "gru_after"])
def test_two_threads_and_blas_threads_restored(monkeypatch, cell, dtype):
    """A batch large enough for the two-thread path (P >= PARALLEL_MIN_ROWS rows per
    direction), a bigger state; OpenBLAS's thread count is restored afterwards."""
    monkeypatch.setenv("RNNDSL_THREADS", "2")
    lengths = [20, 18, 18, 11, 9, 9, 4, 1]
    assert sum(lengths) >= layer_op.PARALLEL_MIN_ROWS
    before = K.blas_threads()
    kw = dict(din=12, H=16)
    a, _ = run_layer(monkeypatch, CELLS[cell], 2, lengths, dtype, True, **kw)
    assert K.blas_threads() == before
    b, _ = run_layer(monkeypatch, CELLS[cell], 2, lengths, dtype, False, **kw)
    assert_same(a, b, dtype)


def test_inference_without_tape_equals_per_step(monkeypatch):
    rng = np.random.default_rng(3)
    init = Init(np.random.default_rng(1), Bk.get_backend("numpy"), np.dtype("float32"))
    layer = Recurrent("l", CELLS["lstm"], 5, 4, True, init)
    x = Tensor(rng.standard_normal((7, 5, 5)).astype("float32"))
    outs = []
    for on in ("1", "0"):
        monkeypatch.setenv(layer_op.LAYER_OP_ENV, on)
        ctx = RunContext()
        with no_grad():
            y = layer.forward(SeqValue(x, SeqInfo(BATCHES["packed"], 7, np)), ctx).data
        outs.append((y.data, *(s.data for s in ctx.final_states["l"])))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_per_step_path_when_states_are_recorded_or_reference(monkeypatch):
    """The gradient probe and the pictures need a node per step: they get the per-step tape."""
    monkeypatch.setenv(layer_op.LAYER_OP_ENV, "1")
    init = Init(np.random.default_rng(1), Bk.get_backend("numpy"), np.dtype("float64"))
    layer = Recurrent("l", CELLS["gru_after"], 3, 2, True, init)
    x = Tensor(np.ones((4, 2, 3)), requires_grad=True)
    for ctx in (RunContext(record_states=True), RunContext(reference=True), RunContext()):
        y = layer.forward(SeqValue(x, SeqInfo([4, 2], 4, np)), ctx).data
        assert (y.node.op == "rnn_layer") == (not ctx.record_states and not ctx.reference)
        if ctx.record_states:
            assert len(ctx.states["l"]) == 4  # one retained carry per step


def test_switch_and_fallback(monkeypatch):
    monkeypatch.setenv(layer_op.LAYER_OP_ENV, "0")
    assert layer_op.kernels() is None
    monkeypatch.setenv(layer_op.LAYER_OP_ENV, "1")
    assert layer_op.kernels() is K
    before = Bk.set_fused(False)  # RNNDSL_FUSED=0: the plain NumPy paths, per step
    try:
        assert layer_op.kernels() is None
    finally:
        Bk.set_fused(before)


def test_every_cell_form_has_a_kernel():
    codes = {layer_op.cell_code(c) for c in CELLS.values()}
    assert codes == {K.SRNN_TANH, K.SRNN_RELU, K.LSTM, K.GRU_AFTER, K.GRU_BEFORE}
    assert layer_op.cell_code(Cell("srnn", act="sigmoid")) is None  # -> the per-step tape


def test_openblas_symbols_are_found():
    assert Path(K.LIBRARY).exists()
    n = K.blas_threads()
    assert n >= 1
    assert K.blas_threads(1) == n and K.blas_threads(n) == 1


TAGGER = """
data ewt = conllu(train="{data}/train.conllu.gz", dev="{data}/dev.conllu.gz", tags=upos)
words  = embed(ewt.words, d=16)
chars  = embed(ewt.chars, d=8) |> bigru(d=8, reset="after") |> last
tagger = concat(words, chars) |> dropout(0.2) |> bilstm(d=12) |> stack(2, dropout=0.2)
         |> softmax(ewt.tags)
train tagger on ewt {{
  optimizer = adam(lr=2e-3)
  epochs = 2
  batch = 8
  clip = 5
  seed = 1
}}
"""


def test_a_spec_trains_to_the_same_losses_either_way(monkeypatch, tmp_path):
    from rnndsl.run import run

    data = Path(__file__).resolve().parents[1] / "specs" / "data" / "ewt"
    spec = tmp_path / "tagger.rnn"
    spec.write_text(TAGGER.format(data=data))
    history = {}
    for on in ("1", "0"):
        monkeypatch.setenv(layer_op.LAYER_OP_ENV, on)
        out = tmp_path / f"run{on}"
        run(spec, out=str(out), log=lambda _m: None, limit=48)
        history[on] = [json.loads(line) for line in
                       (out / "metrics.jsonl").read_text().splitlines() if line]
    assert len(history["1"]) == 2
    for a, b in zip(history["1"], history["0"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["dev_accuracy"] == pytest.approx(b["dev_accuracy"], abs=0.5)
