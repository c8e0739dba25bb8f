"""One settings path: the checked train and output blocks are what the trainer and the run
directory use, with the catalogue's defaults and no others."""

import dataclasses
import gzip
import json

import pytest

import rnndsl
from rnndsl import lang
from rnndsl.lang import catalogue as C
from rnndsl.lang.check import EvalConfig, OutputConfig, TrainConfig
from rnndsl.run import make_opt, prepare, run
from rnndsl.train.loop import Trainer, selection_metric

TOY = """
data toy = synthetic(task=first_token, n=4, vocab=6, size=48, seed=0)
model = embed(toy.words, d=4) |> lstm(d=4) |> last |> softmax(toy.labels)
train model on toy {{ epochs = 1; batch = 16{train} }}
{output}
"""


def toy(tmp_path, output="", train=""):
    p = tmp_path / "toy.rnn"
    p.write_text(TOY.format(output=output, train=train))
    return p


def quiet(_msg):
    pass


def test_the_train_config_has_exactly_the_catalogue_settings():
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert fields - {"model", "data", "span", "setting_spans"} == set(C.TRAIN_SETTINGS)
    assert {f.name for f in dataclasses.fields(OutputConfig)} - {"span"} == set(
        C.OUTPUT_SETTINGS)
    out = OutputConfig()
    for key, sd in C.OUTPUT_SETTINGS.items():
        assert getattr(out, key) == sd.default, key
    assert {f.name for f in dataclasses.fields(EvalConfig)} - {"model", "data", "span"} == set(
        C.EVAL_SETTINGS)
    assert EvalConfig("m", "d", ("accuracy",)).split == C.EVAL_SETTINGS["split"].default


def test_output_dir_predictions_and_plot_take_effect(tmp_path):
    spec = toy(tmp_path, 'output { dir = "runs/x"; predictions = false; plot = false }')
    run(spec, log=quiet)
    out = tmp_path / "runs" / "x"  # relative to the spec, not to the current folder
    assert (out / "metrics.json").exists() and (out / "ckpt" / "best.json").exists()
    assert not (out / "curve.png").exists()
    assert not list(out.glob("predictions*"))


def test_without_an_output_block_a_run_writes_the_plot_and_the_predictions(tmp_path):
    run(toy(tmp_path), out=str(tmp_path / "r"), log=quiet)
    assert (tmp_path / "r" / "curve.png").exists()
    assert (tmp_path / "r" / "predictions.dev.tsv").exists()


def test_out_on_the_command_line_wins_over_the_spec_dir(tmp_path):
    spec = toy(tmp_path, 'output { dir = "runs/x"; plot = false }')
    run(spec, out=str(tmp_path / "cli"), log=quiet)
    assert (tmp_path / "cli" / "metrics.json").exists()
    assert (tmp_path / "cli" / "predictions.dev.tsv").exists()
    assert not (tmp_path / "cli" / "curve.png").exists()
    assert not (tmp_path / "runs").exists()


def test_config_json_records_every_resolved_setting(tmp_path):
    run(toy(tmp_path, train="; clip = 2"), out=str(tmp_path / "r"), seed=5, log=quiet)
    conf = json.loads((tmp_path / "r" / "config.json").read_text())
    settings = conf["settings"]
    assert set(settings) == {"model", "data", *C.TRAIN_SETTINGS}
    assert settings["clip"] == 2.0 and settings["seed"] == 5 == conf["seed"]
    assert settings["optimizer"] == {"name": "adam", "args": {"lr": 1e-3, "beta1": 0.9,
                                                               "beta2": 0.999, "eps": 1e-8}}
    assert settings["bptt"] == C.TRAIN_SETTINGS["bptt"].default


def test_the_trainer_reads_the_checked_block_with_the_command_line_overrides(tmp_path):
    spec = lang.load(toy(tmp_path, train="; seed = 4"))
    prep = prepare(spec, epochs=2, log=quiet)
    assert prep.cfg == dataclasses.replace(spec.train, epochs=2)
    assert (prep.cfg.seed, prep.cfg.clip) == (4, None)  # the catalogue's default: no clipping
    assert selection_metric(prep.cfg, prep.data) == "accuracy"


def test_a_language_model_trains_with_the_catalogue_bptt(tmp_path):
    words = " ".join(f"w{i % 7}" for i in range(400))
    for split in ("train", "dev"):
        with gzip.open(tmp_path / f"{split}.txt.gz", "wt") as f:
            f.write(words + "\n")
    spec = tmp_path / "lm.rnn"
    body = ('data t = text(train="train.txt.gz", dev="dev.txt.gz")\n'
            "lm = embed(t.words, d=4) |> lstm(d=4) |> softmax(t.next)\n")
    for extra, want in (("", C.TRAIN_SETTINGS["bptt"].default), ("; bptt = 7", 7)):
        spec.write_text(body + f"train lm on t {{ batch = 2{extra} }}\n")
        prep = prepare(lang.load(spec), log=quiet)
        assert prep.cfg.bptt == want
        trainer = Trainer(prep.net, prep.data, make_opt(prep.cfg, prep.net), prep.cfg,
                          tmp_path, log=quiet)
        lengths = {int(b.lengths[0]) for b in trainer.epoch_batches(0)}
        assert max(lengths) == want, lengths


@pytest.mark.parametrize("setting", ["bptt = 20", "bptt = none"])
def test_bptt_on_a_classifier_or_none_is_an_error(tmp_path, setting):
    p = toy(tmp_path, train=f"; {setting}")
    kinds = [d.kind for d in lang.check_file(p)]
    assert kinds and set(kinds) == {"BadValue"}, kinds


def test_eval_every_evaluates_inside_epochs_and_changes_no_training(tmp_path):
    plain = run(toy(tmp_path, train=""), out=str(tmp_path / "a"), epochs=2, log=quiet)
    lines = []
    every = run(toy(tmp_path, train="; eval_every = 2"), out=str(tmp_path / "b"), epochs=2,
                log=lines.append)
    assert {k: v for k, v in plain.items() if k != "train_seconds"} == \
        {k: v for k, v in every.items() if k != "train_seconds"}
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    # 48 sequences in batches of 16: 3 steps an epoch; steps 2 and 4 of the run are inside an
    # epoch, step 6 ends one (its epoch line is the evaluation)
    assert [(r["epoch"], r.get("step")) for r in rows] == [(1, 2), (1, None), (2, 1), (2, None)]
    assert rows[2]["global_step"] == 4 and "dev_accuracy" in rows[2]
    before = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(before, [r for r in rows if "step" not in r]):
        assert {k: v for k, v in a.items() if k not in ("seconds", "tokens_per_s")} == \
            {k: v for k, v in b.items() if k not in ("seconds", "tokens_per_s")}
    assert any(s.startswith("epoch 2 step 1 |") for s in lines)


def test_eval_every_without_a_dev_set_is_an_error(tmp_path):
    (tmp_path / "train.tsv").write_text("label\tsentence\npos\ta b\nneg\tc d\n")
    p = tmp_path / "c.rnn"
    p.write_text('data c = classification(train="train.tsv", format=tsv)\n'
                 "m = embed(c.words, d=4) |> lstm(d=4) |> last |> softmax(c.labels)\n"
                 "train m on c { eval_every = 10 }\n")
    (d,) = lang.check_file(p)
    assert d.kind == "BadValue" and "eval_every" in d.message and d.span.line == 3


def test_predictions_for_a_language_model_is_an_error(tmp_path):
    (tmp_path / "t.txt").write_text("a b c a b\n")
    p = tmp_path / "lm.rnn"
    p.write_text('data t = text(train="t.txt", dev="t.txt")\n'
                 "lm = embed(t.words, d=4) |> lstm(d=4) |> softmax(t.next)\n"
                 "train lm on t { epochs = 1 }\n"
                 "output { plot = false; predictions = true }\n")
    (d,) = lang.check_file(p)
    assert d.kind == "BadValue" and "no predictions" in d.message and d.span.line == 4


def test_the_eval_statement_takes_effect_on_its_split_and_metrics(tmp_path):
    spec = toy(tmp_path, "eval model on toy { metrics = [loss]; split = train }")
    final = run(spec, out=str(tmp_path / "r"), log=quiet)
    assert set(k for k in final if k.startswith("eval_")) == {"eval_train_loss"}
    assert final["eval_train_loss"] > 0
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["eval_train_loss"] == final["eval_train_loss"]
    spec = toy(tmp_path, "eval model on toy { metrics = [accuracy] }")  # split = dev
    final = run(spec, out=str(tmp_path / "r2"), log=quiet)
    assert final["eval_dev_accuracy"] == final["dev_accuracy"]


def test_an_eval_statement_of_another_model_is_an_error(tmp_path):
    text = TOY.format(train="", output="") + "other = embed(toy.words, d=4) |> gru(d=4) |> last " \
        "|> softmax(toy.labels)\neval other on toy { metrics = [accuracy] }\n"
    (tmp_path / "two.rnn").write_text(text)
    diags = rnndsl.check(str(tmp_path / "two.rnn"))
    assert any("evaluates the model it trains" in d.message for d in diags), diags
