"""Every spec in specs/ checks clean, and its IR has the nodes and edges it should."""

from __future__ import annotations

import os
from pathlib import Path

import networkx as nx
import pytest

from rnndsl.lang import check_file, inputs_of, load, ordered_nodes
from rnndsl.lang.ir import NODE_KINDS
from rnndsl.lang.types import Seq, Tokens, Vec
from rnndsl.lang.values import FuncValue

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.rnn"))


def kinds(g: nx.DiGraph) -> list[str]:
    return [g.nodes[n]["kind"] for n in ordered_nodes(g)]


def model(name: str) -> nx.DiGraph:
    checked = load(ROOT / "specs" / name)
    assert checked.train is not None
    return checked.models[checked.train.model]


def test_there_are_specs():
    assert len(SPECS) >= 13


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_checks_clean(path: Path):
    assert [str(d) for d in check_file(path)] == []


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_ir_is_well_formed(path: Path):
    checked = load(path)
    assert checked.models, "every spec trains a model"
    for g in checked.models.values():
        assert nx.is_directed_acyclic_graph(g)
        assert g.graph["head"] in ("softmax", "crf")
        assert g.graph["output"] in g and not list(g.successors(g.graph["output"]))
        assert g.graph["inputs"] and all(g.nodes[n]["kind"] == "input" for n in g.graph["inputs"])
        for n, a in g.nodes(data=True):
            assert a["kind"] in NODE_KINDS
            assert isinstance(a["params"], dict)
            assert len(a["in_types"]) == g.in_degree(n)
            assert str(a["out_type"]) and a["label"]
            assert a["kind"] == "input" or a["span"] is not None
            assert "INVALID" not in repr(a["params"])
        for _, _, order in g.edges(data="order"):
            assert isinstance(order, int)
        for path_arg in _paths(checked):
            assert os.path.isabs(path_arg) and os.path.exists(path_arg)


def _paths(checked) -> list[str]:
    out = []
    for decl in checked.data.values():
        for key in ("train", "dev"):
            v = decl.args.get(key)
            out += v if isinstance(v, list) else [v] if v else []
    return out


def test_pos_tagger():
    checked = load(ROOT / "specs" / "pos_tagger.rnn")
    g = checked.models["tagger"]
    assert kinds(g) == [
        "input",
        "embed",
        "input",
        "embed",
        "rnn",
        "pool",
        "concat",
        "dropout",
        "rnn",
        "dropout",
        "rnn",
        "softmax",
    ]
    rnns = [n for n in ordered_nodes(g) if g.nodes[n]["kind"] == "rnn"]
    assert rnns == ["chars.2.bilstm", "tagger.3.bilstm", "tagger.3.bilstm.1"]
    assert inputs_of(g, "tagger.1.concat") == ["words.1.embed", "chars.3.last"]
    assert g.edges["chars.3.last", "tagger.1.concat"]["order"] == 1
    head = g.nodes["tagger.5.softmax"]
    assert g.graph["output"] == "tagger.5.softmax" and g.graph["head"] == "softmax"
    assert head["params"]["target"] == "ewt.tags" and head["params"]["per"] == "token"
    assert head["params"]["loss"] == "xent"
    assert g.graph["inputs"] == ["ewt.words", "ewt.chars"]
    assert g.nodes["ewt.chars"]["params"] == {"dataset": "ewt", "field": "chars", "level": 2}
    assert g.nodes["ewt.chars"]["out_type"] == Tokens(2)
    assert g.nodes["chars.2.bilstm"]["out_type"] == Seq(200, 2)
    assert str(g.nodes["chars.2.bilstm"]["out_type"]) == "Seq[Seq[200]]"
    assert g.nodes["tagger.1.concat"]["out_type"] == Seq(300)
    lstm = g.nodes["tagger.3.bilstm.1"]
    assert lstm["params"] == {
        "cell": "lstm",
        "bidirectional": True,
        "d": 128,
        "act": None,
        "reset": None,
        "forget_bias": 0.0,
        "s0": "zeros",
        "dropout": 0.0,
    }
    assert lstm["in_types"] == [Seq(256)]
    assert g.nodes["tagger.2.dropout"]["params"] == {"p": 0.33}
    assert g.nodes["tagger.4.stack.dropout.1"]["params"] == {"p": 0.33}
    embed = g.nodes["words.1.embed"]["params"]
    assert embed["source"] == "ewt.words" and embed["d"] == 100 and embed["pretrained"] is None
    assert embed["word_dropout_alpha"] == 0.25
    t = checked.train
    assert (t.model, t.data, t.epochs, t.batch, t.clip, t.seed) == ("tagger", "ewt", 14, 32, 5.0, 1)
    assert t.optimizer == FuncValue("adam", {"lr": 2e-3, "beta1": 0.9, "beta2": 0.9, "eps": 1e-8})
    assert t.schedule == FuncValue("plateau", {"factor": 0.5, "patience": 0})
    assert checked.output.predictions is True and checked.output.dir is None
    ewt = checked.data["ewt"]
    assert ewt.reader == "conllu" and ewt.args["tags"] == "upos" and ewt.args["lowercase"] is True
    assert ewt.args["train"] == str(ROOT / "specs" / "data" / "ewt" / "train.conllu.gz")
    assert set(ewt.fields) == {"words", "chars", "tags"}
    assert checked.definitions["chars"].out_type == Seq(200)
    assert not checked.definitions["chars"].open


def test_crf_heads_take_the_data_scheme():
    g = model("chunking_bilstm_crf.rnn")
    crf = g.nodes[g.graph["output"]]
    assert crf["kind"] == "crf" and crf["params"]["scheme"] == "bio"
    assert crf["params"]["constraints"] is True
    g = model("pos_tagger_crf.rnn")
    assert g.nodes[g.graph["output"]]["params"]["scheme"] == "none"
    checked = load(ROOT / "specs" / "chunking_bilstm_crf.rnn")
    assert checked.eval.metrics == ("f1", "accuracy")
    assert checked.data["conll"].args["tag_column"] == 2


def test_char_acceptor_predicts_per_word():
    g = model("char_pos_acceptor.rnn")
    assert kinds(g) == ["input", "embed", "rnn", "pool", "softmax"]
    assert g.nodes["acceptor.3.last"]["out_type"] == Seq(100, 1)


def test_language_model():
    checked = load(ROOT / "specs" / "language_model_ptb.rnn")
    g = checked.models["lm"]
    assert kinds(g) == ["input", "embed", "rnn", "rnn", "softmax"]
    assert [g.nodes[n]["params"]["d"] for n in ("lm.2.lstm", "lm.2.lstm.1")] == [200, 200]
    assert g.nodes["lm.4.softmax"]["params"]["target"] == "ptb.next"
    t = checked.train
    assert t.optimizer == FuncValue("sgd", {"lr": 1.0, "momentum": 0.0})
    assert t.schedule == FuncValue("step", {"start": 4, "factor": 0.5})
    assert t.init == FuncValue("uniform", {"scale": 0.1})
    assert (t.epochs, t.batch, t.bptt, t.clip) == (13, 20, 20, 5.0)
    assert checked.eval.metrics == ("perplexity",)


def test_pretrained_vectors_give_the_size():
    g = model("sentiment_pretrained.rnn")
    embed = g.nodes["classifier.1.embed"]
    assert embed["out_type"] == Seq(50)
    assert embed["params"]["format"] == "glove"
    assert embed["params"]["pretrained"].endswith("specs/data/vectors/tiny.glove.txt")
    assert os.path.isabs(embed["params"]["pretrained"])


def test_sentiment_acceptor():
    g = model("sentiment_sst2.rnn")
    assert kinds(g) == ["input", "embed", "rnn", "pool", "mlp", "softmax"]
    assert g.nodes["classifier.4.mlp"]["params"]["sizes"] == [64]
    head = g.nodes["classifier.5.softmax"]
    assert head["in_types"] == [Vec(64)] and head["params"]["per"] == "sequence"


def test_hierarchical_spans_emit_a_split_then_the_encoder_at_nesting_2():
    g = model("hierarchical_sst2.rnn")
    assert kinds(g) == ["input", "embed", "split", "rnn", "pool", "rnn", "pool", "softmax"]
    split = "classifier.2.spans.split"
    assert g.nodes[split]["out_type"] == Seq(100, 2)
    (enc,) = g.successors(split)
    assert enc == "classifier.2.spans.1.span_encoder.1.bilstm"
    assert g.nodes[enc]["out_type"] == Seq(100, 2)
    assert g.nodes["classifier.2.spans.1.span_encoder.2.last"]["out_type"] == Seq(100, 1)


def test_deepmoji_skip_connections_and_attention():
    checked = load(ROOT / "specs" / "deepmoji_sst2.rnn")
    g = checked.models["model"]
    assert kinds(g) == [
        "input",
        "embed",
        "rnn",
        "concat",
        "rnn",
        "concat",
        "pool",
        "dropout",
        "softmax",
    ]
    assert inputs_of(g, "encoder.3.stack.skip.0") == ["encoder.1.embed", "encoder.2.bilstm"]
    assert inputs_of(g, "encoder.3.stack.skip.1") == [
        "encoder.3.stack.skip.0",
        "encoder.2.bilstm.1",
    ]
    assert g.nodes["model.2.attention"]["params"] == {"mode": "attention"}
    assert g.nodes["model.2.attention"]["out_type"] == Vec(64 + 128 + 128)
    assert checked.train.chain_thaw is True


def test_deepmoji_source_task_shares_the_encoder_names():
    """The pretraining spec's encoder has the fine-tuning spec's layer names (weights carry
    over by name)."""
    src = load(ROOT / "specs" / "deepmoji_pretrain_ewt.rnn").models["tagger"]
    dst = load(ROOT / "specs" / "deepmoji_sst2.rnn").models["model"]
    enc = [n for n in dst.nodes if n.startswith("encoder.")]
    assert enc and all(n in src.nodes for n in enc)


def test_rt_polarity_files_and_encoding():
    checked = load(ROOT / "specs" / "rt_polarity.rnn")
    rt = checked.data["rt"]
    assert rt.reader == "labelled_files" and rt.args["encoding"] == "cp1252"
    assert [Path(p).name for p in rt.args["train"]] == ["train.pos.gz", "train.neg.gz"]
    assert rt.args["labels"] == ["pos", "neg"]


@pytest.mark.parametrize("cell", ["srnn", "lstm", "gru"])
def test_vanishing_specs_differ_only_in_the_cell(cell: str):
    checked = load(ROOT / "specs" / f"vanishing_{cell}.rnn")
    g = checked.models["model"]
    assert kinds(g) == ["input", "embed", "rnn", "pool", "softmax"]
    assert g.nodes[f"model.2.{cell}"]["params"]["cell"] == cell
    assert checked.data["toy"].args == {
        "task": "first_token",
        "n": 20,
        "vocab": 10,
        "size": 2000,
        "seed": 0,
    }
