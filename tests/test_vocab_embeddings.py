"""Vocabularies and pretrained-vector loading: exact indices, exact values, exact messages."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.data import (
    Vocab,
    build_matrix,
    load_glove,
    load_vectors,
    load_word2vec_binary,
    load_word2vec_text,
    sniff_format,
)
from rnndsl.errors import DataError

SENTS = [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat"], ["The"]]

# ---------------------------------------------------------------------------------------------
# Vocab


def test_build_orders_specials_then_count_then_alphabet():
    v = Vocab.build(SENTS)
    # the:2 cat:2 sat:2 (ties alphabetical), then a:1 dog:1 The:1 ("The" < "a" < "dog")
    assert v.tokens == ["<pad>", "<unk>", "cat", "sat", "the", "The", "a", "dog"]
    assert (v.pad_index, v.unk_index, len(v)) == (0, 1, 8)
    assert v.counts == {"cat": 2, "sat": 2, "the": 2, "The": 1, "a": 1, "dog": 1}
    assert v.words == v.tokens[2:]


def test_build_min_count_max_size_lowercase():
    assert Vocab.build(SENTS, min_count=2).tokens == ["<pad>", "<unk>", "cat", "sat", "the"]
    assert Vocab.build(SENTS, max_size=4).tokens == ["<pad>", "<unk>", "cat", "sat"]
    low = Vocab.build(SENTS, lowercase=True)
    assert low.tokens[:3] == ["<pad>", "<unk>", "the"] and low.counts["the"] == 3
    assert low.encode(["THE", "Cat", "zebra"]) == [2, 3, 1]
    assert "CAT" in low and "CAT" not in Vocab.build(SENTS)
    with pytest.raises(ValueError, match="no room"):
        Vocab.build(SENTS, max_size=1)
    with pytest.raises(ValueError, match="min_count"):
        Vocab.build(SENTS, min_count=0)


def test_encode_decode_index():
    v = Vocab.build(SENTS)
    assert v.encode(["the", "zebra", "<pad>"]) == [4, 1, 0]
    assert v.decode([4, 1, 0]) == ["the", "<unk>", "<pad>"]
    assert v.decode(np.array([2, 3])) == ["cat", "sat"]
    assert v.index("dog") == 7 and v.index("unseen") == 1
    assert "cat" in v and "zebra" not in v and 3 not in v
    with pytest.raises(IndexError, match="index 8 is outside the vocabulary of 8"):
        v.decode([8])


def test_data_token_equal_to_a_special_maps_to_it():
    v = Vocab.build([["<unk>", "a", "<unk>", "<unk>"]])
    assert v.tokens == ["<pad>", "<unk>", "a"]


def test_label_vocab_has_no_specials_and_no_unknowns():
    tags = Vocab.labels([("B-NP", "I-NP", "O"), ("B-VP", "O")])
    assert tags.tokens == ["B-NP", "B-VP", "I-NP", "O"]
    assert tags.pad_index is None and tags.unk_index is None
    labels = Vocab.labels(["pos", "neg", "pos"])
    assert labels.tokens == ["neg", "pos"] and labels.counts == {"pos": 2, "neg": 1}
    with pytest.raises(DataError) as info:
        tags.encode(["B-NPP"])
    assert info.value.message == "'B-NPP' is not in the vocabulary, which has no <unk> entry"
    assert info.value.hint == "did you mean one of 'B-NP', 'I-NP', 'B-VP'?"


def test_char_vocab():
    chars = Vocab.build_chars([["ab", "b"], ["c"]])
    assert chars.tokens == ["<pad>", "<unk>", "b", "a", "c"]
    assert chars.encode("bz") == [2, 1]


def test_specials_checks():
    with pytest.raises(ValueError, match="'<pad>' must be the first special"):
        Vocab(["a"], specials=("<unk>", "<pad>"))
    with pytest.raises(ValueError, match="occurs twice"):
        Vocab(["a", "a"])
    v = Vocab(["x"], specials=("<pad>", "<unk>", "<bos>", "<eos>"))
    assert v.index("x") == 4 and v.unk_index == 1


def test_json_round_trip_through_text():
    for v in (Vocab.build(SENTS, lowercase=True), Vocab.labels(["b", "a"]), Vocab(["x"], ())):
        again = Vocab.from_json(json.loads(json.dumps(v.to_json())))
        assert again == v and again.tokens == v.tokens and again.counts == v.counts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.text(min_size=1, max_size=4), max_size=6), max_size=6),
    st.integers(1, 3),
    st.booleans(),
)
def test_build_is_deterministic_and_round_trips(seqs, min_count, lowercase):
    v = Vocab.build(seqs, min_count=min_count, lowercase=lowercase)
    assert Vocab.build(list(reversed(seqs)), min_count=min_count, lowercase=lowercase) == v
    assert Vocab.from_json(json.loads(json.dumps(v.to_json()))) == v
    assert v.decode(v.encode(v.words)) == v.words


@pytest.mark.parametrize(
    "data, message",
    [
        ({"format": "other"}, "not a vocabulary"),
        ([], "not a vocabulary"),
        ({"format": "rnndsl.vocab/1", "specials": [], "words": [1], "lowercase": False}, "lists"),
        ({"format": "rnndsl.vocab/1", "specials": [], "words": [], "lowercase": 0}, "lowercase"),
        (
            {"format": "rnndsl.vocab/1", "specials": [], "words": ["a"], "lowercase": False,
             "counts": [1, 2]},
            "counts",
        ),
        ({"format": "rnndsl.vocab/1", "specials": [], "words": ["a", "a"], "lowercase": False},
         "occurs twice"),
    ],
)  # fmt: skip
def test_from_json_rejects_malformed(data, message):
    with pytest.raises(DataError, match=message):
        Vocab.from_json(data)


# ---------------------------------------------------------------------------------------------
# vector files

VECS = {"the": [0.5, -1.25, 3.0], "Cat": [1.0, 2.0, 0.125], "dog": [-0.5, 0.25, 4.0]}


def w2v_text(vecs: dict[str, list[float]]) -> str:
    dim = len(next(iter(vecs.values())))
    lines = [f"{len(vecs)} {dim}"] + [f"{w} {' '.join(map(str, v))} " for w, v in vecs.items()]
    return "\n".join(lines) + "\n"


def glove_text(vecs: dict[str, list[float]]) -> str:
    return "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vecs.items())


def w2v_binary(vecs: dict[str, list[float]], newline: bool = True) -> bytes:
    dim = len(next(iter(vecs.values())))
    out = [f"{len(vecs)} {dim}\n".encode()]
    for w, v in vecs.items():
        out.append(w.encode() + b" " + struct.pack(f"<{dim}f", *v) + (b"\n" if newline else b""))
    return b"".join(out)


def expected_arrays(vecs):
    return list(vecs), np.array(list(vecs.values()), dtype=np.float32)


def check(loaded, vecs):
    words, vectors = loaded
    want_words, want = expected_arrays(vecs)
    assert words == want_words
    assert vectors.dtype == np.float32 and vectors.shape == want.shape
    np.testing.assert_array_equal(vectors, want)


def test_word2vec_text(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text(w2v_text(VECS))
    check(load_word2vec_text(path), VECS)
    check(load_vectors(path), VECS)
    assert sniff_format(path) == "word2vec"


def test_glove_with_a_word_containing_spaces(tmp_path):
    vecs = {**VECS, ". . .": [0.0, 1.0, -1.0]}
    path = tmp_path / "glove.6B.3d.txt"
    path.write_text(glove_text(vecs))
    check(load_glove(path), vecs)
    check(load_vectors(path), vecs)
    assert sniff_format(path) == "glove"


@pytest.mark.parametrize("newline", [True, False])
@pytest.mark.parametrize("gz", [False, True])
def test_word2vec_binary(tmp_path, newline, gz):
    data = w2v_binary(VECS, newline)
    path = tmp_path / ("v.bin.gz" if gz else "v.bin")
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    check(load_word2vec_binary(path), VECS)
    check(load_vectors(path), VECS)
    check(load_vectors(path, format="word2vec-bin"), VECS)
    assert sniff_format(path) == "word2vec-bin"


@pytest.mark.parametrize("binary", [True, False])
def test_a_word2vec_file_with_any_name_is_read_in_its_own_format(tmp_path, binary):
    """The checker reads only the vector size from the shared "COUNT DIM" header and keeps
    format=auto; the data layer looks at the bytes after it and decides text or binary."""
    from rnndsl import lang
    from rnndsl.run import prepare

    vecs = {"A": [0.5, -1.25, 3.0], "B": [1.0, 2.0, 0.125]}
    path = tmp_path / "vectors.w2v"
    if binary:
        path.write_bytes(w2v_binary(vecs))
    else:
        path.write_text(w2v_text(vecs))
    spec = tmp_path / "s.rnn"
    spec.write_text(
        "data toy = synthetic(task=first_token, n=3, vocab=4, size=32)\n"
        'm = embed(toy.words, pretrained="vectors.w2v") |> lstm(d=2) |> last\n'
        "  |> softmax(toy.labels)\n"
        "train m on toy { epochs = 1 }\n")
    checked = lang.load(spec)
    (node,) = [a for _, a in checked.models["m"].nodes(data=True) if a["kind"] == "embed"]
    assert node["params"]["format"] == "auto" and node["params"]["d"] == 3
    lines = []
    prep = prepare(checked, log=lines.append)
    assert any("pretrained vectors cover 2 of" in s for s in lines), lines
    emb = next(p for k, p in prep.net.named_parameters().items() if k.endswith("weight"))
    vocab = prep.data.vocabs["words"]
    np.testing.assert_array_equal(np.asarray(emb.value)[vocab.index("B")], vecs["B"])


def test_word2vec_binary_bad_words_and_trailing_data(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(w2v_binary({"caf\xe9": [1.0, 2.0]}).replace("caf\xe9".encode(), b"caf\xe9"))
    with pytest.raises(DataError, match=r"entry 1 of 1 \(byte 4\): the word is not utf-8"):
        load_word2vec_binary(path)
    words, _ = load_word2vec_binary(path, unicode_errors="replace")
    assert words == ["caf\ufffd"]
    path.write_bytes(w2v_binary({"a": [1.0, 2.0]}) + b"junk")
    with pytest.raises(DataError, match="data after the 1 entries"):
        load_word2vec_binary(path)
    path.write_bytes(w2v_binary({"a": [1.0, float("nan")]}))
    with pytest.raises(DataError, match="entry 1 \\('a'\\) has a non-finite value"):
        load_word2vec_binary(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="expected a header"):
        load_word2vec_binary(path)


def test_text_vector_errors(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("a 1 2\nb 1 2 3\n")
    with pytest.raises(DataError, match=r"g\.txt:2: expected a word and 2 numbers, found 3"):
        load_glove(path)
    path.write_text("a 1 2\nb 1 inf\n")
    with pytest.raises(DataError, match=r"g\.txt:2: the vector for 'b' is not finite"):
        load_glove(path)
    path.write_text("a\n")
    with pytest.raises(DataError, match=r"g\.txt:1: a word with no numbers"):
        load_glove(path)
    path.write_text("\n")
    with pytest.raises(DataError, match="no vectors"):
        load_glove(path)
    with pytest.raises(ValueError, match="format='fasttext'"):
        load_vectors(path, format="fasttext")


# ---------------------------------------------------------------------------------------------
# the embedding matrix


def test_build_matrix_exact_rows_and_report():
    vocab = Vocab.build([["the", "the", "cat", "cat", "cat", "zebra"]])
    # tokens: <pad> <unk> cat the zebra; "cat" is found as "Cat" by lower case
    words, vectors = expected_arrays(VECS)
    matrix, report = build_matrix(vocab, words, vectors, 3, np.random.default_rng(7))
    random = np.random.default_rng(7).uniform(-0.1, 0.1, size=(5, 3)).astype(np.float32)
    assert matrix.dtype == np.float32 and matrix.shape == (5, 3)
    np.testing.assert_array_equal(matrix[0], np.zeros(3, np.float32))
    np.testing.assert_array_equal(matrix[1], random[1])  # <unk>: random
    np.testing.assert_array_equal(matrix[2], np.float32(VECS["Cat"]))
    np.testing.assert_array_equal(matrix[3], np.float32(VECS["the"]))
    np.testing.assert_array_equal(matrix[4], random[4])  # zebra: random
    assert (report.found, report.total, report.by_lowercase) == (2, 3, 1)
    assert report.missing == ("zebra",)
    assert report.coverage == pytest.approx(2 / 3)
    assert report.token_coverage == pytest.approx(5 / 6)  # from the vocab's own counts
    assert str(report) == (
        "pretrained vectors cover 2 of 3 word types (66.7%) and 83.3% of tokens; "
        "1 found by lower case"
    )


def test_build_matrix_options():
    vocab = Vocab(["cat", "the"])
    words, vectors = expected_arrays(VECS)
    strict, report = build_matrix(
        vocab, words, vectors, 3, np.random.default_rng(0), lowercase_fallback=False,
        counts={"cat": 9, "the": 1},
    )  # fmt: skip
    assert (report.found, report.by_lowercase) == (1, 0)
    assert report.token_coverage == pytest.approx(0.1)
    assert str(report) == "pretrained vectors cover 1 of 2 word types (50.0%) and 10.0% of tokens"
    # duplicates in the file: the first wins
    m, _ = build_matrix(
        vocab, ["the", "the"], np.array([[1, 1, 1], [2, 2, 2]]), 3, np.random.default_rng(0)
    )
    np.testing.assert_array_equal(m[3], np.ones(3, np.float32))


def test_build_matrix_dimension_mismatch():
    words, vectors = expected_arrays(VECS)
    with pytest.raises(DataError) as info:
        build_matrix(Vocab(["the"]), words, vectors, 100, np.random.default_rng(0), source="v.txt")
    assert info.value.format() == (
        "error[DataError]: v.txt: pretrained vectors have dimension 3, but the embedding asks "
        "for 100\n  hint: set the embedding size to 3, or use vectors of dimension 100"
    )


def test_build_matrix_same_seed_same_matrix(tmp_path: Path):
    vocab = Vocab.build(SENTS)
    words, vectors = expected_arrays(VECS)
    a, _ = build_matrix(vocab, words, vectors, 3, np.random.default_rng(3))
    b, _ = build_matrix(vocab, words, vectors, 3, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
