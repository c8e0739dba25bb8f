"""Recurrent layers, poolings, heads and losses: BPTT gradients, padding, attention, the probe."""

import numpy as np
import pytest

import rnndsl
from rnndsl import Tensor
from rnndsl.autodiff import check_grads
from rnndsl.autodiff.backend import get_backend
from rnndsl.gradchecks import PIPELINES, cell_forms, form_text, pooling_pipelines
from rnndsl.lang.cells import CELLS
from rnndsl.nn.cells import Cell
from rnndsl.nn.heads import SoftmaxHead
from rnndsl.nn.layers import Init
from rnndsl.nn.module import RunContext, SeqInfo, SeqValue
from rnndsl.nn.probe import state_gradient_norms
from rnndsl.nn.selfcheck import check_network_grads

# every cell of the cell table in every form: (name, options)
FORMS = [(name, form) for name, c in CELLS.items() for form in cell_forms(c)]
FORM_IDS = [f"{name}{form_text(form)}" for name, form in FORMS]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_bptt_gradient_matches_finite_differences(pipeline):
    """Every cell, bi(stack(2)) of every cell, every pooling: float64 BPTT gradient check."""
    net = rnndsl.compile(pipeline, input_dim=3, dtype="float64", seed=3)
    x = np.random.default_rng(4).standard_normal((3, 5, 3))
    res = check_network_grads(net, x, lengths=[5, 2, 4])
    assert res.ok, str(res)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bi_of_stack_long_form_equals_shorthand(cell):
    a = rnndsl.compile(f"bi({cell}(d=3)) |> stack(2)", input_dim=2, seed=1)
    b = rnndsl.compile(f"bi{cell}(d=3) |> stack(2)", input_dim=2, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 4, 2)).astype("float32")
    np.testing.assert_array_equal(a(x, lengths=[4, 3]).numpy(), b(x, lengths=[4, 3]).numpy())
    assert a(x).shape == (2, 4, 6)


@pytest.mark.parametrize("pipeline", [
    *(f"bi{name}(d=3{form_text(form)}) |> stack(2)" for name, form in FORMS),
    *pooling_pipelines(),
])
@pytest.mark.parametrize("lengths", [[6, 2, 4], [6, 4, 2]], ids=["masked", "sorted"])
def test_padding_invariance_outputs_and_gradients(pipeline, lengths):
    """A padded batch gives what each sequence gives alone: outputs and all gradients.

    Unsorted lengths go through the step masks; sorted ones (longest first) through the
    shrinking prefix of running sequences, as packed sequences do.
    """
    net = rnndsl.compile(pipeline, input_dim=3, dtype="float64", seed=2)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 6, 3))
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3 if b % 2 else -7.0  # garbage in the padding must not leak anywhere
    xt = Tensor(x, requires_grad=True)
    y = net(xt, lengths=lengths)
    w = rng.standard_normal(y.shape)
    net.zero_grad()
    (y * Tensor(w)).sum().backward()
    batch_grads = {k: p.grad.copy() for k, p in net.named_parameters().items()}
    alone_grads = {k: 0 for k in batch_grads}
    for b, n in enumerate(lengths):
        xb = Tensor(x[b:b + 1, :n].copy(), requires_grad=True)
        yb = net(xb)
        wb = w[b:b + 1, :n] if y.ndim == 3 else w[b:b + 1]
        if y.ndim == 3:
            np.testing.assert_allclose(y.numpy()[b, :n], yb.numpy()[0], atol=1e-12)
            np.testing.assert_array_equal(y.numpy()[b, n:], 0.0)
        else:
            np.testing.assert_allclose(y.numpy()[b], yb.numpy()[0], atol=1e-12)
        net.zero_grad()
        (yb * Tensor(wb)).sum().backward()
        np.testing.assert_allclose(xt.grad[b, :n], xb.grad[0], atol=1e-12)
        np.testing.assert_array_equal(xt.grad[b, n:], 0.0)
        for k, p in net.named_parameters().items():
            alone_grads[k] = alone_grads[k] + p.grad
    for k in batch_grads:
        np.testing.assert_allclose(batch_grads[k], alone_grads[k], atol=1e-10, err_msg=k)


def test_last_pooling_of_a_bi_layer_takes_each_direction_at_its_own_end():
    net = rnndsl.compile("bilstm(d=2)", input_dim=2, dtype="float64")
    pooled = rnndsl.compile("bilstm(d=2) |> last", input_dim=2, dtype="float64")
    pooled.load_torch_state(net.torch_state())
    x = np.random.default_rng(0).standard_normal((2, 5, 2))
    y = net(x, lengths=[5, 3]).numpy()
    v = pooled(x, lengths=[5, 3]).numpy()
    np.testing.assert_allclose(v[0], np.r_[y[0, 4, :2], y[0, 0, 2:]])
    np.testing.assert_allclose(v[1], np.r_[y[1, 2, :2], y[1, 0, 2:]])


def test_attention_weights_are_zero_on_padding_and_sum_to_one():
    net = rnndsl.compile("bilstm(d=3) |> attention", input_dim=2, dtype="float64")
    x = np.random.default_rng(1).standard_normal((3, 6, 2))
    info = SeqInfo([6, 1, 4], 6, np)
    ctx = RunContext()
    net.forward_value(SeqValue(Tensor(x.transpose(1, 0, 2)), info), ctx)
    (w,) = ctx.attention.values()
    w = w.numpy()  # (T, B)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
    assert np.all(w[1:, 1] == 0.0) and np.all(w[4:, 2] == 0.0)
    assert w[0, 1] == 1.0


def test_vanishing_gradient_probe_srnn_vs_lstm():
    """100 steps, standard initialisation: ||dL/ds_1|| of the S-RNN is orders of magnitude
    below the LSTM's (measured here: about 1e-27 vs 1e-20 with these seeds)."""
    x = np.random.default_rng(0).standard_normal((1, 100, 8))
    first = {}
    for cell in ("srnn", "lstm", "gru"):
        net = rnndsl.compile(f"{cell}(d=32)", input_dim=8, dtype="float64", seed=0)
        (norms,) = state_gradient_norms(net, x).values()
        assert norms.shape == (1, 100)
        assert norms[0, 99] > 0
        first[cell] = norms[0, 0] / norms[0, 99]
    assert first["srnn"] < 1e-4 * first["lstm"]
    assert first["srnn"] < 1e-4 * first["gru"]


def test_probe_norms_decay_toward_the_start_for_srnn():
    x = np.random.default_rng(1).standard_normal((1, 30, 4))
    net = rnndsl.compile("srnn(d=16)", input_dim=4, dtype="float64", seed=0)
    (n,) = state_gradient_norms(net, x).values()
    assert n[0, 0] < n[0, 15] < n[0, 29]


def test_forget_bias_option_sets_the_forget_gate_bias():
    net = rnndsl.compile("lstm(d=3, forget_bias=1.0)", input_dim=2)
    st = net.torch_state()
    b = st["bias_ih_l0"] + st["bias_hh_l0"]
    np.testing.assert_allclose(b[3:6], 1.0)  # torch order i, f, g, o


@pytest.mark.parametrize("reset,sign", [("before", -1.0), ("after", 1.0)])
def test_gru_forget_bias_leans_the_update_gate_towards_keeping_the_state(reset, sign):
    net = rnndsl.compile(f'gru(d=3, reset="{reset}", forget_bias=2.0)', input_dim=2)
    gru = next(iter(net.modules.values()))
    np.testing.assert_allclose(gru.b_ih.data[3:6], sign * 2.0)  # gate order r, z, n
    np.testing.assert_allclose(gru.b_hh.data[0, 0, 3:6], 0.0)


def test_learned_initial_state_gets_a_gradient():
    net = rnndsl.compile("lstm(d=3, s0=learned)", input_dim=2, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    net(x).sum().backward()
    names = [k for k in net.named_parameters() if k.endswith(("h0", "c0"))]
    assert len(names) == 2
    assert all(np.abs(net.named_parameters()[k].grad).sum() > 0 for k in names)


def _head(loss):
    return SoftmaxHead("h", 4, 3, Init(np.random.default_rng(0), get_backend(), np.float64),
                       loss=loss)


@pytest.mark.parametrize("loss", ["xent", "hinge"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_gradients_sequence_and_per_position(loss, reduction):
    head = _head(loss)
    rng = np.random.default_rng(3)
    targets_seq = np.array([0, 2])
    targets_pos = np.array([[0, 1], [2, 2], [1, 0]])
    valid_pos = np.array([[True, True], [True, False], [True, False]])

    def f_seq(v):
        return head.loss(head.proj.apply(v), targets_seq, None, reduction)

    def f_pos(v):
        return head.loss(head.proj.apply(v), targets_pos, valid_pos, reduction)

    for f, shape in ((f_seq, (2, 4)), (f_pos, (3, 2, 4))):
        res = check_grads(f, rng.standard_normal(shape))
        assert res.ok, str(res)


@pytest.mark.parametrize("loss", ["xent", "hinge"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("shape", [(2, 4), (3, 2, 4)])
def test_scored_loss_is_the_loss_of_the_scores(loss, reduction, shape):
    """The training entry (one op for the output layer and cross entropy) against the loss of
    the scores: the same value and gradients for the input and every parameter."""
    from types import SimpleNamespace

    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    targets = rng.integers(0, 3, size=shape[:-1])
    valid = None if len(shape) == 2 else np.array([[True, True], [True, False], [True, False]])
    results = []
    for fused in (True, False):
        head = _head(loss)
        v = Tensor(x, requires_grad=True)
        value = SimpleNamespace(data=v)
        out = head.scored_loss(value, targets, valid, reduction) if fused else \
            head.loss(head.scores(value), targets, valid, reduction)
        out.backward()
        results.append([out.item(), v.grad] + [p.grad for p in head.named_parameters().values()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_weighted_reduction():
    head = _head("xent")
    v = Tensor(np.random.default_rng(0).standard_normal((2, 4)))
    s = head.proj.apply(v)
    full = head.loss(s, np.array([0, 1]), None, "sum").item()
    w = head.loss(s, np.array([0, 1]), None, weights=np.array([1.0, 1.0])).item()
    assert abs(w - full / 2) < 1e-12


def test_variational_dropout_shares_one_mask_across_time():
    net = rnndsl.compile("lstm(d=4, dropout=0.5)", input_dim=6, dtype="float64")
    layer = net.recurrent_layers()[0]
    info = SeqInfo([5, 5], 5, np)
    x = Tensor(np.ones((5, 2, 6)), requires_grad=True)
    ctx = RunContext(train=True, rng=np.random.default_rng(0))
    layer.forward(SeqValue(x, info), ctx).data.sum().backward()
    g = x.grad
    zero = g == 0
    assert zero.any() and not zero.all()
    assert np.all(zero == zero[0:1])  # the same features dropped at every step


def test_shape_errors_are_clear():
    net = rnndsl.compile("lstm(d=3)", input_dim=2)
    with pytest.raises(rnndsl.RnnError, match="features"):
        net(np.zeros((1, 3, 5)))
    with pytest.raises(rnndsl.RnnError, match="batch, time, features"):
        net(np.zeros((3, 5)))


def test_word_dropout_replaces_by_unk_with_fixed_or_frequency_based_probability():
    from rnndsl.nn.layers import Embedding

    be = get_backend("numpy")
    counts = [0, 0, 1, 3, 1000]  # <pad>, <unk>, a singleton, a rare word, a frequent word
    ids = np.tile(np.arange(5), (20000, 1))  # every id 20,000 times
    emb = Embedding("e", 5, 2, Init(np.random.default_rng(0), be, np.float64),
                    word_dropout_alpha=0.25, counts=counts)
    emb.table.value[:] = np.arange(5)[:, None]  # row i holds i: the output says which id was read
    out = emb.lookup(ids, RunContext(train=True, rng=np.random.default_rng(1))).numpy()[..., 0]
    replaced = (out != ids).mean(axis=0)
    assert replaced[0] == 0 and replaced[1] == 0  # padding stays padding; <unk> is <unk>
    np.testing.assert_allclose(replaced[2:], [0.25 / 1.25, 0.25 / 3.25, 0.25 / 1000.25],
                               atol=0.01)
    assert set(np.unique(out[out != ids])) == {1}  # replaced by <unk>
    test = emb.lookup(ids, RunContext(train=False, rng=np.random.default_rng(1))).numpy()[..., 0]
    np.testing.assert_array_equal(test, ids)  # never at evaluation
    fixed = Embedding("f", 5, 2, Init(np.random.default_rng(0), be, np.float64), word_dropout=0.5)
    fixed.table.value[:] = np.arange(5)[:, None]
    out = fixed.lookup(ids, RunContext(train=True, rng=np.random.default_rng(2))).numpy()[..., 0]
    np.testing.assert_allclose((out != ids).mean(axis=0)[2:], 0.5, atol=0.02)


def test_word_dropout_alpha_reaches_the_embedding_from_a_spec(tmp_path):
    from rnndsl.nn.layers import Embedding
    from rnndsl.run import prepare

    data = tmp_path / "d.conllu"
    data.write_text("1\tthe\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tdog\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n"
                    "1\tthe\t_\tDET\t_\t_\t_\t_\t_\t_\n2\tcat\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n")
    spec = tmp_path / "s.rnn"
    spec.write_text(f'data d = conllu(train="{data}", dev="{data}", tags=upos)\n'
                    "m = embed(d.words, d=4, word_dropout_alpha=0.5) |> lstm(d=3) "
                    "|> softmax(d.tags)\ntrain m on d { epochs = 1 }\n")
    prep = prepare(rnndsl.load(str(spec)), log=lambda s: None)
    emb = next(m for m in prep.net.modules.values() if isinstance(m, Embedding))
    vocab = prep.data.vocabs["words"]
    p = {w: float(emb.drop_prob[vocab.index(w)]) for w in ("the", "dog")}
    assert p == pytest.approx({"the": 0.5 / 2.5, "dog": 0.5 / 1.5})


def test_full_length_reversal_views_match_the_gather():
    # every sequence fills all T steps: the layer passes rev_flat=None (a view a[::-1], no mask)
    from rnndsl.autodiff.ops import OPS

    rng = np.random.default_rng(0)
    T, B, G = 4, 3, 5
    rev = np.repeat((T - 1 - np.arange(T))[:, None], B, axis=1)
    rev_flat = (rev * B + np.arange(B)[None, :]).reshape(-1)
    proj = rng.standard_normal((T, B, 2 * G))
    g = rng.standard_normal((T, 2, B, G))
    (a0, v0), (a1, v1) = (OPS["bi_arrange"].fn(np, proj, r, D=2) for r in (rev_flat, None))
    np.testing.assert_array_equal(a0, a1)
    np.testing.assert_array_equal(v0(g)[0], v1(g)[0])
    hs = [rng.standard_normal((2, B, G)) for _ in range(T)]
    gy = rng.standard_normal((T, B, 2 * G))
    ones = np.ones((T, B, 1))
    (y0, w0), (y1, w1) = (OPS["bi_merge"].fn(np, *hs, rev_flat=r, mask=m)
                          for r, m in ((rev_flat, ones), (None, None)))
    np.testing.assert_array_equal(y0, y1)
    for x0, x1 in zip(w0(gy), w1(gy)):
        np.testing.assert_array_equal(x0, x1)


@pytest.mark.parametrize("pipeline", [
    *(f"bi{name}(d=3{form_text(form)})" for name, form in FORMS), "bilstm(d=5) |> stack(2)",
    "gru(d=4)",
])
@pytest.mark.parametrize("lengths", [[6, 6, 6], [6, 4, 1], [2, 6, 5]],
                         ids=["full", "sorted", "masked"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inference_loop_matches_the_taped_loop(monkeypatch, pipeline, lengths, dtype):
    # under no_grad the layer runs its steps on plain arrays (no tape): same outputs; in float32
    # a few sequences go through the fused small-batch LSTM step (another summation order).
    # Both sides per step (the layer op is checked against them in tests/test_layer_op.py)
    from rnndsl.autodiff import no_grad

    monkeypatch.setenv("RNNDSL_LAYER_OP", "0")

    net = rnndsl.compile(pipeline, input_dim=4, seed=2, dtype=dtype)
    x = np.random.default_rng(1).standard_normal((3, 6, 4)).astype(dtype)
    y_tape = net(Tensor(x, requires_grad=True), lengths=lengths).numpy()
    with no_grad():
        y_infer = net(Tensor(x), lengths=lengths).numpy()
    if dtype == "float64":
        np.testing.assert_array_equal(y_infer, y_tape)
    else:
        np.testing.assert_allclose(y_infer, y_tape, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell,bi", [*((Cell(name, **form), True) for name, form in FORMS),
                                     (Cell("gru"), False)], ids=[*FORM_IDS, "gru-uni"])
@pytest.mark.parametrize("s0", ["zeros", "learned"])
@pytest.mark.parametrize("grad", [True, False], ids=["taped", "no-tape"])
def test_packed_layout_matches_the_padded_one(monkeypatch, cell, bi, s0, grad):
    """A sorted batch with padding runs packed (module.Packing); the padded layout with its
    shrinking prefix is the reference: outputs, final states and every gradient agree."""
    from rnndsl.autodiff import no_grad
    from rnndsl.nn.layers import Recurrent

    be = get_backend("numpy")
    lengths = [7, 7, 5, 2, 2, 1]
    x = np.random.default_rng(3).standard_normal((8, 6, 4))  # T = 8 > the longest: padding
    w = np.random.default_rng(4).standard_normal((8, 6, 10 if bi else 5))

    def run(packed: bool):
        if not packed:
            monkeypatch.setattr(SeqInfo, "packing", property(lambda self: None))
        layer = Recurrent("r", cell, 4, 5, bi, Init(np.random.default_rng(0), be, np.float64),
                          s0=s0)
        info = SeqInfo(lengths, 8, np)
        assert packed == (info.packing is not None)
        xt = Tensor(x, requires_grad=True)
        ctx = RunContext(train=True)
        if grad:
            y = layer.forward(SeqValue(xt, info), ctx)
            final = ctx.final_states["r"]
            loss = (y.data * Tensor(w)).sum() + sum((s * s).sum() for s in final)
            loss.backward()
            grads = [xt.grad] + [p.grad for _, p in sorted(layer.named_parameters().items())]
        else:
            with no_grad():
                y = layer.forward(SeqValue(xt, info), ctx)
            final, grads = ctx.final_states["r"], []
        monkeypatch.undo()
        return [y.data.numpy()] + [s.numpy() for s in final] + grads

    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=1e-12)
