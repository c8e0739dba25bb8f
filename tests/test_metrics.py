"""Metrics: conlleval chunk semantics on tricky sequences (numbers derived by hand), accuracy,
perplexity.

The derivations use conlleval.pl's rules as quoted in rnndsl/train/metrics.py: a chunk ends
between two words on (B,B) (B,O) (I,B) (I,O) (E,E) (E,I) (E,O) or when the previous tag is not
O/"." and the type changes; it starts on (B,B) (I,B) (O,B) (O,I) (E,E) (E,I) (O,E) or when the
current tag is not O/"." and the type changes; "[" and "]" chunks have length 1. Every sentence
starts after and ends before an O boundary.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.data import read_conll
from rnndsl.errors import ShapeError
from rnndsl.train.metrics import accuracy, perplexity, span_f1, spans

FIXTURES = Path(__file__).parent / "fixtures"

# ---------------------------------------------------------------------------------------------
# chunk decoding, case by case


@pytest.mark.parametrize(
    "tags, expected",
    [
        # I- without B-: (O, I) starts a chunk; (I, O) ends it.
        (["O", "I-NP", "I-NP", "O"], [("NP", 1, 3)]),
        # type change: (B-NP, I-VP) ends NP (prev type differs) and starts VP (type differs).
        (["B-NP", "I-VP"], [("NP", 0, 1), ("VP", 1, 2)]),
        # consecutive B-: (B, B) both ends and starts a chunk.
        (["B-NP", "B-NP", "I-NP"], [("NP", 0, 1), ("NP", 1, 3)]),
        # the sequence ends inside a chunk: the boundary O after it ends the chunk.
        (["O", "B-NP", "I-NP"], [("NP", 1, 3)]),
        # IOB1: a B- only between two chunks of one type; decoded by the same rules.
        (["I-NP", "I-NP", "B-NP", "O", "I-VP"], [("NP", 0, 2), ("NP", 2, 3), ("VP", 4, 5)]),
        # IOE: (I, E) continues, (E, I) ends and starts; (O, E) starts, (E, E) ends and starts.
        (["I-NP", "E-NP", "I-NP", "I-NP"], [("NP", 0, 2), ("NP", 2, 4)]),
        (["E-NP", "E-NP"], [("NP", 0, 1), ("NP", 1, 2)]),
        # types may contain hyphens: the tag splits at its first hyphen only.
        (["B-NP-SBJ", "I-NP-SBJ"], [("NP-SBJ", 0, 2)]),
        # "." is outside like O: (B-NP, .) ends by type change, "." starts nothing,
        # (., I-NP) starts by type change ("" vs NP).
        (["B-NP", ".", "I-NP"], [("NP", 0, 1), ("NP", 2, 3)]),
        # bracket tags: "[" and "]" always start a chunk and always end the one before them.
        (["[-NP", "]-NP", "O"], [("NP", 0, 1), ("NP", 1, 2)]),
        # nothing but O, and nothing at all
        (["O", "O"], []),
        ([], []),
    ],
)
def test_spans_bio(tags, expected):
    assert spans(tags) == expected
    assert spans(tags, scheme="iob1") == expected


def test_s_and_e_tags_plain_conlleval_versus_iobes():
    tags = ["S-PER", "S-PER", "B-LOC", "E-LOC", "B-LOC", "E-LOC"]
    # conlleval.pl has no S- rules and no (E,B) rule: (S-PER, S-PER) has the same type, so it
    # neither ends nor starts a chunk; (E-LOC, B-LOC) likewise. Two long chunks come out.
    assert spans(tags, scheme="bio") == [("PER", 0, 2), ("LOC", 2, 6)]
    # the IOBES rules: after S- a chunk always ends; B- and S- always start one.
    assert spans(tags, scheme="iobes") == [
        ("PER", 0, 1),
        ("PER", 1, 2),
        ("LOC", 2, 4),
        ("LOC", 4, 6),
    ]


def test_unknown_scheme():
    with pytest.raises(ValueError, match="scheme='bioes'"):
        spans(["O"], scheme="bioes")


# ---------------------------------------------------------------------------------------------
# conlleval's counts, case by case


def test_one_right_one_wrong_type_and_the_table():
    # gold NP(0,2) VP(3,4); pred NP(0,2) NP(3,4): NP(0,2) is correct.
    # tags: 3 of 4 equal -> accuracy 75%. overall P = R = 1/2.
    # NP: found 2 predicted, 1 gold, 1 correct -> P 50, R 100, F 66.67; VP: 0 predicted -> 0.
    s = span_f1([["B-NP", "I-NP", "O", "B-VP"]], [["B-NP", "I-NP", "O", "B-NP"]])
    assert (s.found_gold, s.found_pred, s.correct) == (2, 2, 1)
    assert (s.precision, s.recall, s.f1, s.accuracy) == (50.0, 50.0, 50.0, 75.0)
    assert s.per_type["NP"].f1 == pytest.approx(200 / 3)
    assert (s.per_type["VP"].found_pred, s.per_type["VP"].f1) == (0, 0.0)
    assert s.table() == (
        "processed 4 tokens with 2 phrases; found: 2 phrases; correct: 1.\n"
        "accuracy:  75.00%; precision:  50.00%; recall:  50.00%; FB1:  50.00\n"
        "               NP: precision:  50.00%; recall: 100.00%; FB1:  66.67  2\n"
        "               VP: precision:   0.00%; recall:   0.00%; FB1:   0.00  0"
    )


def test_i_without_b_is_a_correct_chunk_but_a_wrong_tag():
    # pred I-NP I-NP decodes to NP(0,2) like gold B-NP I-NP: the chunk is right (P = R = 100)
    # while the first tag differs (accuracy 50%).
    s = span_f1([["B-NP", "I-NP"]], [["I-NP", "I-NP"]])
    assert (s.correct, s.f1, s.accuracy) == (1, 100.0, 50.0)


def test_chunk_too_long_is_wrong():
    # gold NP(0,1), pred NP(0,2): both start together, but at word 1 gold ends (B,O) and pred
    # does not (B,I), so the match is dropped.
    s = span_f1([["B-NP", "O"]], [["B-NP", "I-NP"]])
    assert (s.found_gold, s.found_pred, s.correct, s.f1) == (1, 1, 0, 0.0)


def test_same_extent_other_type_is_wrong():
    # both start at 0 but the types differ, so conlleval never marks the pair as matching.
    s = span_f1([["B-NP", "I-NP"]], [["B-VP", "I-VP"]])
    assert s.correct == 0
    assert (s.per_type["NP"].found_gold, s.per_type["NP"].found_pred) == (1, 0)
    assert (s.per_type["VP"].found_gold, s.per_type["VP"].found_pred) == (0, 1)


def test_type_change_inside_a_predicted_chunk():
    # pred B-NP I-VP: NP(0,1) and VP(1,2); gold NP(0,2). At word 1 pred ends by type change and
    # gold does not: no match. Found: gold 1, pred 2; P = 0/2, R = 0/1.
    s = span_f1([["B-NP", "I-NP"]], [["B-NP", "I-VP"]])
    assert (s.found_gold, s.found_pred, s.correct, s.precision, s.recall) == (1, 2, 0, 0.0, 0.0)


def test_empty_prediction():
    # no predicted chunks: precision 0/0 is reported as 0 (as conlleval), recall 0/2, F 0;
    # only the O tag is right: accuracy 1/4.
    s = span_f1([["B-NP", "I-NP", "O", "B-PP"]], [["O", "O", "O", "O"]])
    assert (s.found_gold, s.found_pred, s.correct) == (2, 0, 0)
    assert (s.precision, s.recall, s.f1, s.accuracy) == (0.0, 0.0, 0.0, 25.0)
    assert s.table().splitlines()[1:] == [
        "accuracy:  25.00%; precision:   0.00%; recall:   0.00%; FB1:   0.00",
        "               NP: precision:   0.00%; recall:   0.00%; FB1:   0.00  0",
        "               PP: precision:   0.00%; recall:   0.00%; FB1:   0.00  0",
    ]


def test_sentence_boundary_separates_chunks():
    # [B-NP I-NP] [I-NP]: the boundary O between the sentences ends the first NP and the
    # second sentence's I-NP starts a new one (O, I): two chunks, not one.
    gold = [["B-NP", "I-NP"], ["I-NP"]]
    s = span_f1(gold, gold)
    assert (s.found_gold, s.correct, s.f1, s.n_tokens) == (2, 2, 100.0, 3)


def test_chunk_ending_the_data_counts():
    s = span_f1([["O", "B-NP", "I-NP"]], [["O", "B-NP", "I-NP"]])
    assert (s.correct, s.precision, s.recall, s.f1) == (1, 100.0, 100.0, 100.0)


def test_iobes_singletons_against_b_e():
    gold, pred = [["S-PER", "S-PER"]], [["B-PER", "E-PER"]]
    # IOBES: gold PER(0,1) PER(1,2); pred PER(0,2). At word 1 gold ends (S,S), pred does not
    # (B,E): no match. found 2 / 1, correct 0.
    s = span_f1(gold, pred, scheme="iobes")
    assert (s.found_gold, s.found_pred, s.correct, s.f1) == (2, 1, 0, 0.0)
    # plain conlleval reads S-PER S-PER as one chunk PER(0,2) and calls the prediction right;
    # the tags still differ: accuracy 0.
    s = span_f1(gold, pred, scheme="bio")
    assert (s.found_gold, s.found_pred, s.correct, s.f1, s.accuracy) == (1, 1, 1, 100.0, 0.0)


def test_no_tokens_and_shape_errors():
    s = span_f1([], [])
    assert s.table() == "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0."
    with pytest.raises(ShapeError, match="1 gold sequences but 2 predicted"):
        span_f1([["O"]], [["O"], ["O"]])
    with pytest.raises(ShapeError, match="sequence 0: 1 gold tags but 2 predicted"):
        span_f1([["O"]], [["O", "O"]])


def test_same_report_as_conlleval_pl():
    # the fixture's expected text is conlleval.pl's own output (see tests/fixtures/README.md)
    path = FIXTURES / "conlleval_input.txt"
    gold = [e.tags for e in read_conll(path, tag_column=1)]
    pred = [e.tags for e in read_conll(path, tag_column=2)]
    expected = (FIXTURES / "conlleval_input.expected").read_text().rstrip("\n")
    assert span_f1(gold, pred).table() == expected


# ---------------------------------------------------------------------------------------------
# laws


def tag_seqs(alphabet):
    return st.lists(st.sampled_from(alphabet), max_size=12)


BIO = ["O", "B-X", "I-X", "B-Y", "I-Y"]
IOBES = BIO + ["E-X", "S-X", "E-Y", "S-Y"]


@settings(max_examples=300, deadline=None)
@given(tag_seqs(BIO))
def test_schemes_agree_without_e_and_s(tags):
    assert spans(tags, "bio") == spans(tags, "iobes") == spans(tags, "iob1")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["bio", "iobes"]),
    st.lists(st.integers(0, 12), min_size=1, max_size=4),
    st.data(),
)
def test_counts_equal_span_set_matching(scheme, lengths, data):
    gold = [data.draw(st.lists(st.sampled_from(IOBES), min_size=n, max_size=n)) for n in lengths]
    pred = [data.draw(st.lists(st.sampled_from(IOBES), min_size=n, max_size=n)) for n in lengths]
    s = span_f1(gold, pred, scheme)
    g_spans = [set(spans(g, scheme)) for g in gold]
    p_spans = [set(spans(p, scheme)) for p in pred]
    assert s.found_gold == sum(map(len, g_spans))
    assert s.found_pred == sum(map(len, p_spans))
    assert s.correct == sum(len(a & b) for a, b in zip(g_spans, p_spans))
    for kind, t in s.per_type.items():
        assert t.correct == sum(1 for a, b in zip(g_spans, p_spans) for c in a & b if c[0] == kind)
    same = span_f1(gold, gold, scheme)
    assert same.accuracy == (100.0 if sum(lengths) else 0.0)
    assert same.f1 == (100.0 if same.found_gold else 0.0)


# ---------------------------------------------------------------------------------------------
# accuracy and perplexity


def test_accuracy_tokens_and_labels():
    assert accuracy([["a", "b"], ["c"]], [["a", "x"], ["c"]]) == pytest.approx(2 / 3)
    assert accuracy(["pos", "neg", "pos", "pos"], ["pos", "pos", "pos", "neg"]) == 0.5
    assert accuracy(np.array([1, 0, 1]), np.array([1, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy([np.array([1, 2])], [[1, 3]]) == 0.5
    with pytest.raises(ShapeError, match="2 predictions but 1 gold"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(ShapeError, match="item 0: 2 predicted tokens but 1 gold"):
        accuracy([["a", "b"]], [["a"]])
    with pytest.raises(ShapeError, match="zero tokens"):
        accuracy([[]], [[]])


def test_perplexity():
    assert perplexity(10 * math.log(100.0), 10) == pytest.approx(100.0)
    assert perplexity(0.0, 5) == 1.0
    assert perplexity(1e6, 1) == math.inf
    with pytest.raises(ShapeError, match="n_tokens=0"):
        perplexity(1.0, 0)
