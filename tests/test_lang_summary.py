"""Parameter counts and the summary table."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnndsl.lang import compile_pipeline, load, model_table, node_params, summary_table

ROOT = Path(__file__).resolve().parents[1]


def count(text: str, node: str, input_dim: int = 3, sizes=None) -> int | None:
    g = compile_pipeline(text, input_dim)
    return node_params(g, node, sizes)


# PyTorch's counts for the same layers (two bias vectors per gate block):
#   nn.RNN(3, 4): 4*3 + 4*4 + 4 + 4 = 36; nn.LSTM(3, 4): 16*3 + 16*4 + 16 + 16 = 144;
#   nn.GRU(3, 4): 12*3 + 12*4 + 12 + 12 = 108; bidirectional doubles.
@pytest.mark.parametrize(
    "text, node, n",
    [
        ("srnn(d=4)", "pipeline.1.srnn", 36),
        ("lstm(d=4)", "pipeline.1.lstm", 144),
        ("gru(d=4)", "pipeline.1.gru", 108),
        ("gru(d=4, reset=after)", "pipeline.1.gru", 108),
        ("bilstm(d=4)", "pipeline.1.bilstm", 288),
        ("bi(gru(d=4))", "pipeline.1.bi", 216),
        ("lstm(d=4, s0=learned)", "pipeline.1.lstm", 144 + 8),
        ("srnn(d=4, s0=learned)", "pipeline.1.srnn", 36 + 4),
        ("lstm(d=4) |> stack(2)", "pipeline.1.lstm.1", 4 * (4 * (4 + 4) + 8)),
        ("linear(5)", "pipeline.1.linear", 3 * 5 + 5),
        ("mlp([8, 2])", "pipeline.1.mlp", (3 * 8 + 8) + (8 * 2 + 2)),
        ("mlp(d=8, layers=2)", "pipeline.1.mlp", (3 * 8 + 8) + (8 * 8 + 8)),
        ("attention", "pipeline.1.attention", 3),
        ("last", "pipeline.1.last", 0),
        ("dropout(0.5)", "pipeline.1.dropout", 0),
        ("softmax(5)", "pipeline.1.softmax", (3 + 1) * 5),
        ("crf(5)", "pipeline.1.crf", (3 + 1) * 5 + 5 * 5 + 2 * 5),
    ],
)
def test_parameter_counts(text: str, node: str, n: int):
    assert count(text, node) == n


def test_embedding_and_head_counts_need_sizes():
    checked = load(ROOT / "specs" / "sentiment_sst2.rnn")
    g = checked.models["classifier"]
    assert node_params(g, "classifier.1.embed") is None
    assert node_params(g, "classifier.1.embed", {"sst.words": 1000}) == 1000 * 100
    assert node_params(g, "classifier.5.softmax", {"sst.labels": 2}) == (64 + 1) * 2


def test_summary_table_with_unknown_sizes():
    checked = load(ROOT / "specs" / "pos_tagger.rnn")
    table = summary_table(checked)
    lines = table.splitlines()
    assert lines[0] == "Model: tagger (data: ewt)"
    assert any(line.startswith("tagger.3.bilstm.1 ") for line in lines)
    assert lines[-1] == (
        "Total params: 957,184 + ? (needs the sizes of ewt.words, ewt.chars, ewt.tags)"
    )


def test_summary_table_with_sizes():
    checked = load(ROOT / "specs" / "pos_tagger.rnn")
    sizes = {"ewt.words": 1000, "ewt.chars": 50, "ewt.tags": 17}
    table = model_table(checked.models["tagger"], sizes)
    # char BiLSTM 2 x (4*100*(50+100) + 800), tagger layers 2 x (4*128*(300+128) + 1024) and
    # 2 x (4*128*(256+128) + 1024), then the embeddings and the softmax
    total = 957_184 + 1000 * 100 + 50 * 50 + (256 + 1) * 17
    assert table.splitlines()[-1] == f"Total params: {total:,}"
    assert "?" not in table


def test_summary_of_a_spec_without_models():
    from rnndsl.lang import check_text

    checked, _ = check_text("x = lstm(d=2)\n")
    assert summary_table(checked) == "No model: the spec has no train or eval statement."
