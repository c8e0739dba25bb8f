"""What a run pays besides the training step: the dev set evaluated once at the end, evaluation
batches grouped by length (predictions in input order), the gradient norm without temporaries."""

import json
from pathlib import Path

import numpy as np
import pytest

import rnndsl.run as run_mod
from rnndsl.data import bucket_batches
from rnndsl.run import load_run, run
from rnndsl.train import loop
from rnndsl.train.loop import evaluate

DATA = Path(__file__).resolve().parents[1] / "specs" / "data" / "ewt"
TAGGER = """
data ewt = conllu(train="{data}/train.conllu.gz", dev="{data}/dev.conllu.gz", tags=upos)
tagger = embed(ewt.words, d=16) |> bilstm(d=12) |> softmax(ewt.tags)
train tagger on ewt {{
  optimizer = adam(lr=5e-3)
  epochs = {epochs}
  batch = 8
  seed = 1
}}
"""
TOY = """
data toy = synthetic(task=first_token, n=5, vocab=6, size=120, seed=0)
model = embed(toy.words, d=8) |> lstm(d=8) |> last |> softmax(toy.labels)
train model on toy {
  optimizer = adam(lr=0.01)
  epochs = 3
  batch = 16
  seed = 3
}
"""


def spec_file(tmp_path, text):
    p = tmp_path / "m.rnn"
    p.write_text(text)
    return p


@pytest.mark.parametrize("kind", ["tagging", "classification"])
def test_the_dev_set_is_evaluated_once_at_the_end(monkeypatch, tmp_path, kind):
    text = TAGGER.format(data=DATA, epochs=2) if kind == "tagging" else TOY
    calls = []
    real = run_mod.evaluate
    monkeypatch.setattr(run_mod, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = tmp_path / "run"
    final = run(spec_file(tmp_path, text), out=str(out), log=lambda _m: None, limit=40)
    assert calls == []  # finish() reused the best epoch's evaluation
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = history[final["best_epoch"] - 1]
    assert final["dev_accuracy"] == best["dev_accuracy"]
    # the same figures and predictions as evaluating the best weights afresh
    prep, _ = load_run(out, log=lambda _m: None)
    ext = "txt" if kind == "tagging" else "tsv"
    again = tmp_path / f"again.{ext}"
    examples = prep.data.subset(prep.data.read_split("dev"), 40)  # the run's dev set
    dev = evaluate(prep.net, prep.data, examples, prep.cfg, prep.needs, write=again)
    assert dev["accuracy"] == pytest.approx(final["dev_accuracy"], abs=1e-9)
    assert dev["loss"] == pytest.approx(final["dev_loss"], rel=1e-5)
    assert again.read_text() == (out / f"predictions.dev.{ext}").read_text()


def test_evaluation_batches_by_length_give_the_same_predictions(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(spec_file(tmp_path, TAGGER.format(data=DATA, epochs=1)), out=str(out),
        log=lambda _m: None, limit=40)
    prep, _ = load_run(out, log=lambda _m: None)
    dev = prep.data.subset(prep.data.read_split("dev"), 60)
    a, b = tmp_path / "sorted.txt", tmp_path / "one.txt"
    by_length = evaluate(prep.net, prep.data, dev, prep.cfg, prep.needs, write=a)
    monkeypatch.setattr(loop, "EVAL_BATCH", 1)  # one sentence per batch: no padding, input order
    alone = evaluate(prep.net, prep.data, dev, prep.cfg, prep.needs, write=b)
    assert a.read_text() == b.read_text()
    assert by_length["accuracy"] == alone["accuracy"]
    assert by_length["loss"] == pytest.approx(alone["loss"], rel=1e-5)


def test_bucket_batches_by_length():
    lengths = [3, 1, 2, 5, 4, 2, 5]
    batches = bucket_batches(lengths, 3, None, by_length=True)
    assert batches == [[3, 6, 4], [0, 2, 5], [1]]  # longest first, ties in input order
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert bucket_batches(lengths, 3, None) == [[0, 1, 2], [3, 4, 5], [6]]


def test_global_grad_norm_and_clipping_in_place():
    from rnndsl.autodiff.tensor import RowSparse
    from rnndsl.nn.module import Parameter
    from rnndsl.train.optim import clip_grad_norm, global_grad_norm

    rng = np.random.default_rng(0)
    a = Parameter(np.zeros((3, 4), np.float32))
    b = Parameter(np.zeros((5, 2), np.float32))
    ga = rng.standard_normal((3, 4)).astype(np.float32)
    a.grad = ga.copy()
    b._grad = RowSparse(np.array([1, 1, 3]), rng.standard_normal((3, 2)).astype(np.float32),
                        (5, 2))
    dense_b = b._grad.to_dense()
    want = float(np.sqrt((ga.astype(np.float64) ** 2).sum()
                         + (dense_b.astype(np.float64) ** 2).sum()))
    params = {"a": a, "b": b}
    assert global_grad_norm(params) == pytest.approx(want, rel=1e-6)
    a.accumulate_grad(np.zeros_like(ga))  # now an owned buffer: scaled in place
    buf = a._grad
    norm = clip_grad_norm(params, 1.0)
    assert norm == pytest.approx(want, rel=1e-6)
    assert a._grad is buf
    np.testing.assert_allclose(a.grad, ga / (want + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(b.grad, dense_b / (want + 1e-6), rtol=1e-6)
    assert global_grad_norm(params) == pytest.approx(1.0, rel=1e-5)
