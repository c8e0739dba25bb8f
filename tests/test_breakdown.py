"""Metrics broken down by class and chunk type: hand-computed fixtures, conlleval.pl's own
per-type output, macro/micro F1, and the tables where metrics appear (eval --json,
metrics.jsonl, metrics.json), with a test split scored apart from dev."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import evalkit
import pytest

from rnndsl.data import read_conll
from rnndsl.run import run
from rnndsl.train.breakdown import class_report, epoch_lines, span_report, tagging_report
from rnndsl.train.metrics import span_f1

FIXTURES = Path(__file__).parent / "fixtures"


def test_per_class_scores_equal_a_hand_computed_fixture():
    gold = ["pos", "pos", "pos", "neg", "neg", "neu"]
    pred = ["pos", "neg", "pos", "neg", "neu", "neu"]
    r = class_report(gold, pred, known=["pos", "neg", "neu", "never"])
    # pos: 2 right of 2 predicted, 3 gold; neg: 1 of 2, 2 gold; neu: 1 of 2, 1 gold
    assert r["per_class"]["pos"] == pytest.approx(
        {"precision": 100.0, "recall": 200 / 3, "f1": 80.0, "support": 3})
    assert r["per_class"]["neg"] == pytest.approx(
        {"precision": 50.0, "recall": 50.0, "f1": 50.0, "support": 2})
    assert r["per_class"]["neu"] == pytest.approx(
        {"precision": 50.0, "recall": 100.0, "f1": 200 / 3, "support": 1})
    assert "never" not in r["per_class"]  # neither gold nor predicted: not a class of this data
    assert r["confusion"] == {"labels": ["pos", "neg", "neu"],
                              "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]}
    assert r["accuracy"] == pytest.approx(400 / 6)
    assert r["micro_f1"] == pytest.approx(400 / 6)  # one label per item: micro-F1 = accuracy
    assert r["macro_f1"] == pytest.approx((80 + 50 + 200 / 3) / 3)


def test_macro_f1_weighs_a_rare_class_like_a_frequent_one():
    # 9 of 10 right, the one rare item missed: accuracy 90, but the rare class has F1 0
    gold = ["a"] * 9 + ["b"]
    pred = ["a"] * 10
    r = class_report(gold, pred)
    assert r["accuracy"] == pytest.approx(90.0)
    f1_a = 2 * 90 * 100 / 190
    assert r["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["macro_f1"] == pytest.approx((f1_a + 0.0) / 2)


def test_labels_only_dev_has_come_after_the_known_ones():
    r = class_report(["x", "new"], ["x", "x"], known=["y", "x"])
    assert r["confusion"]["labels"] == ["x", "new"]
    assert r["per_class"]["new"]["support"] == 1 and r["per_class"]["new"]["recall"] == 0.0


def conlleval_expected(name):
    """conlleval.pl's printed numbers: overall (p, r, f) and type -> (p, r, f, found)."""
    lines = (FIXTURES / f"{name}.expected").read_text().splitlines()
    pattern = r"\s*(\S+): precision:\s*([\d.]+)%; recall:\s*([\d.]+)%; FB1:\s*([\d.]+)\s+(\d+)"
    per_type = {}
    for line in lines[2:]:
        kind, p, r, f, found = re.fullmatch(pattern, line).groups()
        per_type[kind] = (float(p), float(r), float(f), int(found))
    overall = re.search(r"precision:\s*([\d.]+)%; recall:\s*([\d.]+)%; FB1:\s*([\d.]+)",
                        lines[1]).groups()
    return tuple(map(float, overall)), per_type


def test_per_type_scores_of_a_ner_fixture_equal_conlleval_pl():
    # IOB1 and IOB2 gold, chunks predicted wrong in every way (fixtures/README.md)
    path = FIXTURES / "conlleval_ner.txt"
    gold = [e.tags for e in read_conll(path, tag_column=1)]
    pred = [e.tags for e in read_conll(path, tag_column=2)]
    overall, expected = conlleval_expected("conlleval_ner")
    rep = tagging_report(gold, pred, spans=span_f1(gold, pred, scheme="iob1"))
    assert sorted(rep["per_type"]) == sorted(expected) == ["LOC", "MISC", "ORG", "PER"]
    for kind, (p, r, f, found) in expected.items():
        t = rep["per_type"][kind]
        assert (round(t["precision"], 2), round(t["recall"], 2), round(t["f1"], 2),
                t["predicted"]) == (p, r, f, found), kind
    assert (round(rep["precision"], 2), round(rep["recall"], 2), round(rep["f1"], 2)) == overall
    assert sum(t["support"] for t in rep["per_type"].values()) == 141  # conlleval's "phrases"
    assert span_f1(gold, pred).table() == \
        (FIXTURES / "conlleval_ner.expected").read_text().rstrip("\n")


def test_per_type_scores_equal_conlleval_pl_output():
    # conlleval_input.expected is what conlleval.pl printed for the input (fixtures/README.md)
    path = FIXTURES / "conlleval_input.txt"
    gold = [e.tags for e in read_conll(path, tag_column=1)]
    pred = [e.tags for e in read_conll(path, tag_column=2)]
    expected = {}
    lines = (FIXTURES / "conlleval_input.expected").read_text().splitlines()
    pattern = r"\s*(\S+): precision:\s*([\d.]+)%; recall:\s*([\d.]+)%; FB1:\s*([\d.]+)\s+(\d+)"
    for line in lines[2:]:
        kind, p, r, f, found = re.fullmatch(pattern, line).groups()
        expected[kind] = (float(p), float(r), float(f), int(found))
    overall = re.search(r"precision:\s*([\d.]+)%; recall:\s*([\d.]+)%; FB1:\s*([\d.]+)", lines[1])
    rep = span_report(span_f1(gold, pred))
    assert sorted(rep["per_type"]) == sorted(expected) == ["NP", "NP-SBJ", "PP", "VP"]
    for kind, (p, r, f, found) in expected.items():
        t = rep["per_type"][kind]
        assert (round(t["precision"], 2), round(t["recall"], 2), round(t["f1"], 2)) == (p, r, f)
        assert t["predicted"] == found
    # support is the gold count: 119 phrases in all (conlleval's first line)
    assert sum(t["support"] for t in rep["per_type"].values()) == 119
    assert [round(float(x), 2) for x in overall.groups()] == [
        round(rep["precision"], 2), round(rep["recall"], 2), round(rep["f1"], 2)]
    assert rep["micro_f1"] == rep["f1"]
    assert rep["macro_f1"] == pytest.approx(sum(v[2] for v in expected.values()) / 4, abs=0.01)


def test_tagging_report_counts_tokens():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    pred = [["B-PER", "O", "O"], ["B-LOC"]]
    r = tagging_report(gold, pred, ["O", "B-PER", "I-PER", "B-LOC"], span_f1(gold, pred))
    assert r["per_class"]["I-PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["accuracy"] == 75.0
    # PER is wrong (too short), LOC right: P 1/2, R 1/2; per type PER 0, LOC 100
    assert r["per_type"]["PER"]["f1"] == 0.0 and r["per_type"]["LOC"]["f1"] == 100.0
    assert r["f1"] == 50.0 and r["micro_f1"] == 50.0 and r["macro_f1"] == 50.0


def test_epoch_lines_keep_the_tables_of_earlier_epochs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    h = [{"epoch": 1, "train_loss": 1.0}]
    path.write_text(epoch_lines(path, h, {"dev_per_class": {"a": {"f1": 1.0}}}))
    h.append({"epoch": 2, "train_loss": 0.5})
    path.write_text(epoch_lines(path, h, {"dev_per_class": {"a": {"f1": 2.0}}}))
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["dev_per_class"]["a"]["f1"] for r in rows] == [1.0, 2.0]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rnndsl.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


TABLE_KEYS = {"accuracy", "macro_f1", "micro_f1", "per_class", "confusion"}


def test_tagger_breakdowns_everywhere_and_test_apart_from_dev(tmp_path):
    spec = evalkit.ner_spec(tmp_path, epochs=2)
    final = run(spec, out=str(tmp_path / "r"), log=lambda s: None)
    for split in ("dev", "test"):
        assert {f"{split}_{k}" for k in TABLE_KEYS | {"per_type", "precision", "recall", "f1"}} \
            <= set(final)
        assert set(final[f"{split}_per_type"]) <= {"PER", "LOC", "ORG"}
        assert set(final[f"{split}_per_type"]["PER"]) >= {"precision", "recall", "f1", "support"}
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["test_confusion"] == final["test_confusion"]
    assert (tmp_path / "r" / "predictions.test.txt").exists()
    # the test numbers are the test file's: eval of the same file gives the same tables
    p = cli("eval", str(tmp_path / "r"), str(tmp_path / "test.txt"), "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert TABLE_KEYS | {"per_type", "precision", "recall", "f1"} <= set(res)
    assert res["per_type"] == final["test_per_type"]
    assert res["confusion"] == final["test_confusion"]
    gold_tokens = sum(1 for line in (tmp_path / "test.txt").read_text().splitlines() if line)
    assert sum(map(sum, res["confusion"]["matrix"])) == gold_tokens
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("dev_per_type" in r and "dev_confusion" in r for r in rows)
    assert not any(k.startswith("test_") for r in rows for k in r)  # test: never per epoch
    text = cli("eval", str(tmp_path / "r"), str(tmp_path / "test.txt"))
    assert "per class" in text.stdout and "precision:" in text.stdout


def test_classifier_breakdown_in_eval_json(tmp_path):
    spec = evalkit.classifier_spec(tmp_path, epochs=1)
    final = run(spec, out=str(tmp_path / "r"), log=lambda s: None)
    assert set(final["dev_per_class"]) == {"food", "sport", "tech"}
    assert sum(c["support"] for c in final["dev_per_class"].values()) == 30
    p = cli("eval", str(tmp_path / "r"), str(tmp_path / "cdev.txt"), "--json")
    res = json.loads(p.stdout)
    assert TABLE_KEYS <= set(res) and "per_type" not in res
    assert res["per_class"] == final["dev_per_class"]
    assert set(res["per_class"]["food"]) == {"precision", "recall", "f1", "support"}


def test_the_test_split_changes_nothing_in_training(tmp_path):
    with_test = run(evalkit.ner_spec(tmp_path, epochs=3), out=str(tmp_path / "a"),
                    log=lambda s: None)
    (tmp_path / "b").mkdir()
    without = run(evalkit.ner_spec(tmp_path / "b", epochs=3, test=False), out=str(tmp_path / "c"),
                  log=lambda s: None)
    assert not any(k.startswith("test_") for k in without)
    same = {k: v for k, v in with_test.items() if not k.startswith("test_")}
    assert same == {**without, "train_seconds": same["train_seconds"]}
