"""Property: whatever a spec's text, checking it gives a CheckedSpec or diagnostics, never
another exception. The valid specs are mutated token by token (delete, duplicate, swap,
replace numbers and names, insert punctuation) a few thousand times in all."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnndsl.errors import Diagnostic, SpecError
from rnndsl.lang import CheckedSpec, catalogue, check_text, compile_pipeline

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / "specs"
TEXTS = [p.read_text() for p in sorted(SPEC_DIR.glob("*.rnn"))]
# the bad specs too: their errors, mutated, reach other corners of the checker
BAD_TEXTS = [p.read_text() for p in sorted((ROOT / "tests" / "bad_specs").glob("*.rnn"))]
TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\|>|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\w+|.', re.S)

NUMBERS = ["0", "1", "-1", "2", "0.5", "1.5", "1e-3", "1e999", "-0.0", "100000000000", "3.0"]
NAMES = [
    *catalogue.LAYERS,
    *catalogue.READERS,
    *catalogue.TRAIN_SETTINGS,
    "data",
    "train",
    "eval",
    "output",
    "on",
    "true",
    "false",
    "none",
    "words",
    "chars",
    "tags",
    "labels",
    "next",
    "ewt",
    "sst",
    "tagger",
    "x",
    "dev",
    "punct",
    "upos",
    "bio",
    "tanh",
]
PUNCT = ["(", ")", "[", "]", "{", "}", ",", "=", ".", ";", "|>", ":", '"', "|", "-", "'"]
PIPELINES = [
    "bilstm(d=16) |> stack(2)",
    "gru(d=4, reset=after) |> mean |> linear(3)",
    "bi(lstm(d=3)) |> skip(gru(d=2)) |> spans(bilstm(d=2) |> last) |> attention |> softmax(4)",
    "lstm(d=4) |> stack(3, dropout=0.5, skip=true) |> concat(srnn(d=2), gru(d=1)) |> crf(5)",
    "mlp([8, 4], act=relu) |> dropout(0.2) |> max |> softmax(2)",
]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


@st.composite
def mutated(draw, sources: list[str]) -> str:
    toks = tokens(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(1, 6))):
        if not toks:
            break
        i = draw(st.integers(0, len(toks) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "number", "name", "punct"]))
        if op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap" and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif op == "number":
            nums = [j for j, t in enumerate(toks) if re.fullmatch(r"-?\d[\d.eE+-]*", t)]
            if nums:
                toks[draw(st.sampled_from(nums))] = draw(st.sampled_from(NUMBERS))
        elif op == "name":
            names = [j for j, t in enumerate(toks) if re.fullmatch(r"[A-Za-z_]\w*", t)]
            if names:
                toks[draw(st.sampled_from(names))] = draw(st.sampled_from(NAMES))
        else:
            toks.insert(i, draw(st.sampled_from(PUNCT)))
    return "".join(toks)


def fuzz(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@fuzz(1800)
@given(mutated(TEXTS + BAD_TEXTS))
def test_mutated_specs_give_a_result_or_diagnostics(text: str):
    checked, diags = check_text(text, "fuzz.rnn", base_dir=SPEC_DIR)
    assert isinstance(diags, list) and all(isinstance(d, Diagnostic) for d in diags)
    if checked is None:
        assert diags
        assert all(d.kind in catalogue.DIAGNOSTIC_KINDS for d in diags)
        for d in diags:
            d.format(text)
    else:
        assert isinstance(checked, CheckedSpec) and diags == []


@fuzz(600)
@given(mutated(PIPELINES), st.integers(1, 9))
def test_mutated_pipelines_compile_or_raise_spec_error(text: str, dim: int):
    try:
        g = compile_pipeline(text, dim)
    except SpecError as e:
        assert e.diagnostics and e.format()
    else:
        assert isinstance(g, nx.DiGraph) and g.graph["output"] in g
