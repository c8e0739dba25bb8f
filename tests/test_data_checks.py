"""Data checks before training: one golden test per check with its message, `check --data`,
and the BIO case of issue 21 (I-LOC at a sentence start under scheme=bio) stopping `run`
before the first step."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rnndsl.data.checks import check_data, scheme_violation
from rnndsl.data.dataset import TaskData
from rnndsl.errors import DataError
from rnndsl.run import run


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # places print relative to the working directory


def conll(name, *sentences):
    with open(name, "w") as f:
        for s in sentences:
            f.write("".join(f"{w} {t}\n" for w, t in (p.split("/") for p in s.split())) + "\n")
    return name


def lines(name, *rows):
    with open(name, "w") as f:
        f.write("\n".join(rows) + "\n")
    return name


def findings(reader, **args):
    data = TaskData("d", reader, args)
    return [f.format() for f in check_data(data) if f.severity != "info"]


def infos(reader, **args):
    return [f.format() for f in check_data(TaskData("d", reader, args)) if f.severity == "info"]


def test_bio_violation_names_places_count_and_the_fitting_scheme():
    conll("train.txt", "Peter/I-PER lives/O in/O Berlin/I-LOC", "the/O man/O")
    conll("dev.txt", "man/O the/O")
    assert findings("conll", train="train.txt", dev="dev.txt", scheme="bio") == [
        "train.txt:1: error[TagScheme]: I-PER at the start of a sentence (under scheme=bio a "
        "chunk starts with B-); 2 such tags in train (also at train.txt:4)\n"
        "  hint: scheme=iob1 fits all the tags (IOB1: I- starts a chunk and B- only separates "
        "two chunks of one type, as in CoNLL-2003): set it in the data statement",
    ]


def test_iob1_violation_suggests_bio():
    conll("train.txt", "the/O B-ORG/B-ORG x/I-ORG", "a/B-PER b/I-PER")
    assert findings("conll", train="train.txt", scheme="iob1") == [
        "train.txt:2: error[TagScheme]: B-ORG after O (under scheme=iob1 B- only starts a chunk "
        "right after one of the same type); 2 such tags in train (also at train.txt:5)\n"
        "  hint: scheme=bio fits all the tags (IOB2: every chunk starts with B-): set it in the "
        "data statement",
    ]


def test_iobes_rules_and_a_tag_of_no_scheme():
    assert scheme_violation("B-X", "O", "iobes") == \
        "O after B-X (under scheme=iobes a B-/I- chunk ends with E-)"
    assert scheme_violation("O", "E-X", "iobes") == \
        "E-X after O (under scheme=iobes I- and E- continue a B- or I- chunk)"
    assert scheme_violation("B-X", "E-X", "iobes") is None
    assert scheme_violation(None, "S-X", "bio") == \
        "'S-X' is not a BIO tag (O or B-TYPE / I-TYPE)"
    conll("train.txt", "a/B-X b/I-X", "c/O d/B-Y e/Q-Y")
    out = findings("conll", train="train.txt", scheme="iobes")
    assert scheme_violation("B-Y", "Q-Y", "iobes") == \
        "'Q-Y' is not a IOBES tag (O or B-/I-/E-/S-TYPE)"
    assert out == [
        "train.txt:2: error[TagScheme]: the sentence ends inside a chunk at I-X (under "
        "scheme=iobes it ends with E-); 2 such tags in train (also at train.txt:6)"
        "\n  hint: fix the tags, or set scheme=none to train on plain tags"]


def test_one_class():
    lines("train.txt", "pos good", "pos fine")
    assert findings("classification", train="train.txt") == [
        "train.txt: error[OneClass]: every training example has the label 'pos': there is "
        "nothing to learn\n  hint: check the label/tag column, or the file list of "
        "labelled_files"]


def test_unseen_label_in_dev_and_test():
    lines("train.txt", "pos good", "neg bad")
    lines("dev.txt", "pos ok", "neutral so so")
    lines("test.txt", "mixed hm", "mixed hmm")
    assert findings("classification", train="train.txt", dev="dev.txt", test="test.txt") == [
        "dev.txt:2: warning[UnseenLabel]: label 'neutral' never occurs in the training data "
        "(once in dev)\n  hint: the model can never predict it; is the file from the same data "
        "set and tag set?",
        "test.txt:1: warning[UnseenLabel]: label 'mixed' never occurs in the training data "
        "(2 times in test)\n  hint: the model can never predict it; is the file from the same "
        "data set and tag set?",
        "dev.txt: warning[OOV]: dev: 100.0% of the tokens (100.0% of the word types) are not in "
        "the training vocabulary\n  hint: is dev from the same domain? are lowercase and "
        "encoding the same as for train?",
    ]


def test_empty_example_is_refused_by_the_reader_with_its_place():
    lines("train.tsv", "label\tsentence", "pos\tgood", "neg\t  ", "neg\tbad")
    with pytest.raises(DataError) as e:
        TaskData("d", "classification", {"train": "train.tsv", "format": "tsv"})
    assert e.value.message == "train.tsv:3: empty text in column 'sentence'"


def test_duplicates_and_conflicts():
    lines("train.txt", "pos good film", "neg bad film", "pos good film", "neg good film",
          "pos good film")
    assert findings("classification", train="train.txt") == [
        "train.txt:3: warning[Duplicate]: 2 training examples repeat an earlier one exactly "
        "(this one repeats train.txt:1)\n  hint: repeats weigh those examples more; remove them "
        "if that is not meant",
        "train.txt:4: warning[Conflict]: 1 training example with the words of an earlier one "
        "but other labels (this one: train.txt:1)\n  hint: the labels contradict each other; "
        "check the annotation",
    ]


def test_overlap_of_dev_and_train():
    lines("train.txt", "pos good film", "neg bad film")
    lines("dev.txt", "pos a good film", "neg bad film", "pos good")
    assert findings("classification", train="train.txt", dev="dev.txt") == [
        "dev.txt:2: warning[Overlap]: 1 of 3 dev examples (33.3%) also occur in train (this one "
        "is train.txt:2)\n  hint: dev scores on examples seen in training flatter the model"]


def test_class_balance():
    lines("train.txt", *["pos good"] * 1, *[f"neg bad {i}" for i in range(10)])
    out = check_data(TaskData("d", "classification", {"train": "train.txt"}))
    assert [f.format() for f in out if f.kind in ("Imbalance", "Balance")] == [
        "train.txt: warning[Imbalance]: label 'neg' has 10 training examples but 'pos' only 1 "
        "(10x)\n  hint: accuracy then says little: look at macro_f1 and the per-class scores",
        "info[Balance]: labels in train: neg 90.9%, pos 9.1%"]


def test_lengths():
    long_sentence = " ".join(f"w{i}" for i in range(251))
    lines("train.txt", f"pos {long_sentence}", "neg " + "x" * 41 + " y")
    assert findings("classification", train="train.txt") == [
        "train.txt:1: warning[Length]: 1 train example with more than 250 tokens\n"
        "  hint: long sequences are slow to unroll and often two sentences run together (a "
        "missing blank line)",
        f"train.txt:2: warning[Length]: 1 train word with more than 40 characters, e.g. "
        f"'{'x' * 41}'\n  hint: a URL or text without spaces; the character encoder pays for "
        "every character"]
    assert infos("classification", train="train.txt")[1] == (
        "info[Lengths]: train: 2 examples, 253 tokens; tokens per example min 2, median 251, "
        "max 251; characters per word max 41")


def test_oov_rate_of_dev():
    lines("train.txt", "pos a good film", "neg a bad film")
    lines("dev.txt", "pos a fine film", "neg a film")
    assert findings("classification", train="train.txt", dev="dev.txt") == []
    # 5 dev tokens, 'fine' unseen; types a, fine, film
    assert "info[OOV]: dev: 20.0% of the tokens (33.3% of the word types) are not in the " \
           "training vocabulary" in infos("classification", train="train.txt", dev="dev.txt")


BIO_SPEC = """data ner = conll(train="train.txt", dev="dev.txt", scheme=bio)
tagger = embed(ner.words, d=8) |> bilstm(d=8) |> crf(ner.tags)
train tagger on ner { epochs = 1 }
"""


def test_the_bio_case_stops_run_before_the_first_step(tmp_path):
    conll("train.txt", "Peter/B-PER lives/O in/O Berlin/B-LOC", "I-LOC/I-LOC here/O")
    conll("dev.txt", "Berlin/B-LOC here/O")
    (tmp_path / "bio.rnn").write_text(BIO_SPEC)
    logged = []
    with pytest.raises(DataError, match="1 data error .* make training meaningless"):
        run(tmp_path / "bio.rnn", out=str(tmp_path / "r"), log=logged.append)
    assert logged == ["train.txt:6: error[TagScheme]: I-LOC at the start of a sentence (under "
                      "scheme=bio a chunk starts with B-); 1 such tag in train\n  hint: "
                      "fix the tags, or set scheme=none to train on plain tags"]
    assert not (tmp_path / "r").exists()  # stopped before anything was written or trained
    # overridden: the same data trains, the error printed as before
    final = run(tmp_path / "bio.rnn", out=str(tmp_path / "r"), log=logged.append,
                ignore_data_errors=True)
    assert final["epochs"] == 1 and logged[1] == logged[0]


def test_check_data_command(tmp_path):
    conll("train.txt", "Peter/I-PER lives/O", "the/O man/O")
    conll("dev.txt", "Paris/B-LOC is/O")
    (tmp_path / "bio.rnn").write_text(BIO_SPEC)
    p = subprocess.run([sys.executable, "-m", "rnndsl.cli", "check", "--data", "bio.rnn"],
                       capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "data ner (conll):"
    assert out[1].startswith("  train.txt:1: error[TagScheme]: I-PER at the start")
    assert "  dev.txt:1: warning[UnseenLabel]: tag 'B-LOC' never occurs" in p.stdout
    assert "  info[Balance]: tags in train: O 75.0%, I-PER 25.0%" in out
    assert out[-1] == "1 data error, 2 warnings"
    p = subprocess.run([sys.executable, "-m", "rnndsl.cli", "run", "bio.rnn", "--out", "r"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "error[DataError]: 1 data error (above)" in p.stderr and "--ignore-data-errors" in \
        p.stderr


def test_a_few_long_words_are_an_info_line_not_a_warning():
    rows = [f"{'pos' if i % 2 else 'neg'} film {i} was fine and good" for i in range(300)]
    rows.append("neg see http://example.com/a/very/long/address/of/a/page.html now")
    lines("train.txt", *rows)
    assert findings("classification", train="train.txt") == []
    assert "info[Lengths]: train: 1 word over 40 characters, e.g. " \
           "'http://example.com/a/very/long/address/of/a/page.html' at train.txt:301" in \
           infos("classification", train="train.txt")
