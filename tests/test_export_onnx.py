"""ONNX export: onnxruntime's scores equal rnndsl's to 1e-5 (float32) for every cell and form."""

from __future__ import annotations

import pytest
from runs_fixture import write_data

pytest.importorskip("onnx", reason="ONNX export needs the optional `onnx` package")
pytest.importorskip("onnxruntime", reason="the comparison runs the file in onnxruntime")

from onnx_check import max_difference  # noqa: E402

from rnndsl import lang  # noqa: E402
from rnndsl.cli import main  # noqa: E402
from rnndsl.errors import ExportError  # noqa: E402
from rnndsl.export.onnx import export_network  # noqa: E402
from rnndsl.nn.batch import on_backend  # noqa: E402
from rnndsl.run import prepare  # noqa: E402

TAGGER = """
data ud = conllu(train="data/train.conllu", dev="data/dev.conllu", tags=upos)
{defs}
m = {model}
train m on ud {{ epochs = 1; seed = 2 }}
"""
CLASSIFIER = """
data s = classification(train="data/train.txt", dev="data/dev.txt")
m = {model}
train m on s {{ epochs = 1; seed = 2 }}
"""
LM = """
data t = text(train="data/train.lm", dev="data/dev.lm")
m = {model}
train m on t {{ epochs = 1; seed = 2 }}
"""

CASES = {
    # every cell, one and two directions, both GRU forms, learned initial states, stacks
    "lstm": (TAGGER, "embed(ud.words, d=6) |> lstm(d=5) |> softmax(ud.tags)"),
    "bilstm_stack": (TAGGER, "embed(ud.words, d=6) |> bilstm(d=5) |> stack(2) |> "
                             "softmax(ud.tags)"),
    "gru_lecture": (TAGGER, "embed(ud.words, d=6) |> gru(d=5) |> softmax(ud.tags)"),
    "bigru_lecture": (TAGGER, "embed(ud.words, d=6) |> bigru(d=5, forget_bias=1) |> "
                              "softmax(ud.tags)"),
    "gru_after": (TAGGER, 'embed(ud.words, d=6) |> gru(d=5, reset="after") |> softmax(ud.tags)'),
    "bigru_after": (TAGGER, 'embed(ud.words, d=6) |> bigru(d=5, reset="after") |> '
                            'softmax(ud.tags)'),
    "srnn_tanh": (TAGGER, "embed(ud.words, d=6) |> srnn(d=5) |> softmax(ud.tags)"),
    "bisrnn_relu": (TAGGER, "embed(ud.words, d=6) |> bisrnn(d=5, act=relu) |> softmax(ud.tags)"),
    "s0_learned": (TAGGER, 'embed(ud.words, d=6) |> bilstm(d=5, s0=learned) |> '
                           'gru(d=4, s0=learned) |> softmax(ud.tags)'),
    "char_encoder_crf": (TAGGER.replace("{defs}", "w = embed(ud.words, d=6)\n"
                                        "c = embed(ud.chars, d=4) |> bilstm(d=3) |> last\n"
                                        "{defs}"),
                         "concat(w, c) |> dropout(0.5) |> bilstm(d=5) |> linear(d=7) |> "
                         "crf(ud.tags)"),
    "char_gru_mean": (TAGGER.replace("{defs}", "w = embed(ud.words, d=6)\n"
                                     "c = embed(ud.chars, d=4) |> gru(d=3) |> mean\n{defs}"),
                      "concat(w, c) |> lstm(d=5) |> softmax(ud.tags)"),
    "chars_alone": (TAGGER, "embed(ud.chars, d=4) |> bilstm(d=3) |> last |> softmax(ud.tags)"),
    "pool_last_bi": (CLASSIFIER, "embed(s.words, d=6) |> bilstm(d=5) |> last |> mlp(d=4) |> "
                                 "softmax(s.labels)"),
    "pool_first": (CLASSIFIER, "embed(s.words, d=6) |> bigru(d=5) |> first |> softmax(s.labels)"),
    "pool_max": (CLASSIFIER, "embed(s.words, d=6) |> lstm(d=5) |> max |> softmax(s.labels)"),
    "pool_attention_skip": (CLASSIFIER, "embed(s.words, d=6) |> bilstm(d=4) |> "
                                        "stack(2, skip=true) |> attention |> softmax(s.labels)"),
    "lm": (LM, "embed(t.words, d=6) |> lstm(d=5) |> stack(2) |> softmax(t.next)"),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    write_data(d / "data")
    return d


def prepared(base, name, template, model):
    spec = base / f"{name}.rnn"
    spec.write_text(template.replace("{defs}", "").format(model=model))
    return prepare(lang.load(str(spec)), log=lambda s: None)


@pytest.mark.parametrize("name", list(CASES))
def test_onnxruntime_scores_equal_rnndsl_scores(data_dir, tmp_path, name):
    template, model = CASES[name]
    prep = prepared(data_dir, name, template, model)
    out = tmp_path / f"{name}.onnx"
    export_network(prep.net, prep.data, out)
    examples = prep.data.dev[:12] + prep.data.train[:20]
    diff = max_difference(prep.net, prep.data, prep.needs, out, examples, batch=7)
    assert diff < 1e-5, diff


def test_the_exported_gate_layout_is_not_trivially_symmetric(data_dir, tmp_path):
    """Swapping two LSTM gate blocks in the ONNX weights changes the scores: the comparison
    above would notice a wrong gate order."""
    import onnx
    from onnx import numpy_helper

    prep = prepared(data_dir, "gates", *CASES["lstm"])
    out = tmp_path / "g.onnx"
    export_network(prep.net, prep.data, out)
    m = onnx.load(str(out))
    w = next(t for t in m.graph.initializer if t.name.endswith(".W_" + t.name.split("_")[-1])
             and "lstm" in t.name)
    a = numpy_helper.to_array(w).copy()
    d = a.shape[1] // 4
    a[:, d:2 * d], a[:, 2 * d:3 * d] = a[:, 2 * d:3 * d].copy(), a[:, d:2 * d].copy()
    w.CopyFrom(numpy_helper.from_array(a, w.name))
    onnx.save(m, str(out))
    diff = max_difference(prep.net, prep.data, prep.needs, out, prep.data.dev[:8])
    assert diff > 1e-3


def test_export_command_on_a_run(tmp_path, capsys):
    from runs_fixture import train_all

    runs = train_all(tmp_path, ("crf",))
    code = main(["export", str(runs["crf"]), "-o", str(tmp_path / "crf.onnx")])
    assert code == 0
    assert "transitions" in capsys.readouterr().err
    import json

    import onnx

    props = {p.key: p.value for p in onnx.load(str(tmp_path / "crf.onnx")).metadata_props}
    assert set(json.loads(props["rnndsl.vocab.tags"])) == {"B-NP", "I-NP", "B-VP"}
    assert json.loads(props["rnndsl.vocab.words"])[:2] == ["<pad>", "<unk>"]
    from rnndsl.run import load_run

    prep, _ = load_run(runs["crf"], log=lambda s: None)
    assert max_difference(prep.net, prep.data, prep.needs, tmp_path / "crf.onnx",
                          prep.data.read_file(tmp_path / "data" / "dev.conll")) < 1e-5


def test_a_span_model_cannot_be_exported_and_says_why(data_dir, tmp_path, capsys):
    prep = prepared(data_dir, "spans", CLASSIFIER,
                    "embed(s.words, d=6) |> spans(bilstm(d=4) |> last) |> lstm(d=4) |> last "
                    "|> softmax(s.labels)")
    with pytest.raises(ExportError, match="spans at punctuation"):
        export_network(prep.net, prep.data, tmp_path / "s.onnx")
    assert not (tmp_path / "s.onnx").exists()


def test_export_needs_an_onnx_file_name(tmp_path, capsys):
    from runs_fixture import train_all

    runs = train_all(tmp_path, ("classifier",))
    code = main(["export", str(runs["classifier"]), "-o", str(tmp_path / "model.txt")])
    assert code == 2
    assert "must end in .onnx" in capsys.readouterr().err


def test_a_language_model_carries_its_state_through_onnx(data_dir, tmp_path):
    """Segments of the text stream fed one after another, each starting from the state the
    previous one returned, give rnndsl's scores with its carried state (as eval reads text)."""
    import numpy as np
    import onnxruntime as ort
    from onnx_check import zero_states

    from rnndsl.autodiff import backend as Bk
    from rnndsl.autodiff.tensor import no_grad
    from rnndsl.nn.module import RunContext

    prep = prepared(data_dir, "lmstate", LM, "embed(t.words, d=6) |> lstm(d=5) |> gru(d=4) "
                                             "|> softmax(t.next)")
    out = tmp_path / "lm.onnx"
    export_network(prep.net, prep.data, out)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    assert {"m.2.lstm.h", "m.2.lstm.c", "m.3.gru.h"} <= set(outs)
    net, data = prep.net, prep.data
    batches = [on_backend(b, net.backend.xp) for b in data.lm_batches(data.dev, 3, 5)[:4]]
    state = zero_states(sess, 3)
    carry: dict = {}
    worst = 0.0
    with no_grad():
        for b in batches:
            ctx = RunContext(init_states=carry)
            ours = Bk.to_host(net.head.scores(net.run(b.inputs, ctx)[net.output]).data)
            carry = ctx.final_states
            ids = Bk.to_host(b.inputs["t.words"].ids).T  # (B, T)
            got = dict(zip(outs, sess.run(None, {"words": ids, "lengths": np.full(3, ids.shape[1]),
                                                 **state})))
            state = {k + "0": got[k] for k in outs if k.endswith((".h", ".c"))}
            worst = max(worst, float(np.abs(got["scores"] - ours.transpose(1, 0, 2)).max()))
    assert worst < 1e-5, worst


def test_every_ir_kind_has_an_export_rule():
    """A new layer kind needs a row in the exporter's table (an ONNX form, or a clear error)."""
    from rnndsl.export.onnx import EXPORTERS
    from rnndsl.lang.ir import NODE_KINDS

    assert set(EXPORTERS) == set(NODE_KINDS)


def test_export_without_the_onnx_package_says_how_to_get_it(data_dir, tmp_path, monkeypatch):
    import sys

    prep = prepared(data_dir, "noonnx", *CASES["lstm"])
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ExportError, match="needs the `onnx` package") as e:
        export_network(prep.net, prep.data, tmp_path / "m.onnx")
    assert "rnndsl[onnx]" in e.value.hint
