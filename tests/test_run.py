"""`rnndsl run`: interruption and resume, kills, NaN losses, corrupt checkpoints, determinism."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnndsl.errors import CheckpointError, TrainingError
from rnndsl.run import run
from rnndsl.train import checkpoint
from rnndsl.train.loop import Interrupted

SPEC = """
data toy = synthetic(task=first_token, n={n}, vocab=6, size={size}, seed=0)
model = embed(toy.words, d=8) |> lstm(d=8) |> last |> softmax(toy.labels)
train model on toy {{
  optimizer = {opt}
  epochs = {epochs}
  batch = 16
  seed = 3
  clip = 5
  {every}
}}
"""


def write_spec(tmp_path, n=5, size=120, epochs=3, opt="adam(lr=0.01)", every=0, name="toy.rnn"):
    p = tmp_path / name
    every = f"checkpoint_every = {every}" if every else ""
    p.write_text(SPEC.format(n=n, size=size, epochs=epochs, opt=opt, every=every))
    return p


def quiet(_msg):
    pass


def weights(run_dir, name="last"):
    arrays, _ = checkpoint.load(Path(run_dir) / "ckpt", name)
    return {k: v for k, v in arrays.items() if k.startswith("param::")}


def test_two_runs_with_the_same_seed_are_identical(tmp_path):
    spec = write_spec(tmp_path)
    m1 = run(spec, out=str(tmp_path / "a"), log=quiet)
    m2 = run(spec, out=str(tmp_path / "b"), log=quiet)
    assert m1 == {**m2, "train_seconds": m1["train_seconds"]}
    w1, w2 = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert w1.keys() == w2.keys()
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k])
    h1 = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().split("\n")
          if line]
    assert len(h1) == 3 and "dev_accuracy" in h1[0]
    for f in ("spec.rnn", "config.json", "vocab.json", "metrics.json", "curve.png",
              "predictions.dev.tsv", "ckpt/best.json", "ckpt/last.json"):
        assert (tmp_path / "a" / f).exists(), f


class InterruptAt:
    """A progress sink that sends this process SIGINT at a given global step."""

    def __init__(self, step):
        self.step, self.n = step, 0

    def start(self, *a):
        return 1

    def advance(self, *a):
        self.n += 1
        if self.n == self.step:
            os.kill(os.getpid(), signal.SIGINT)

    def stop(self):
        pass


def test_ctrl_c_leaves_a_checkpoint_and_resume_is_bit_for_bit(tmp_path):
    spec = write_spec(tmp_path, epochs=3)
    full = run(spec, out=str(tmp_path / "full"), log=quiet)
    with pytest.raises(Interrupted):
        run(spec, out=str(tmp_path / "cut"), log=quiet, progress=InterruptAt(11))
    _, meta = checkpoint.load(tmp_path / "cut" / "ckpt", "last")
    assert meta["global_step"] == 11  # the step that was running finished first
    resumed = run(None, resume=str(tmp_path / "cut"), log=quiet)
    w_full, w_cut = weights(tmp_path / "full"), weights(tmp_path / "cut")
    for k in w_full:
        np.testing.assert_array_equal(w_full[k], w_cut[k], err_msg=k)
    assert resumed["dev_accuracy"] == full["dev_accuracy"]


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    spec = write_spec(tmp_path, opt="sgd(lr=1e30)", every=1, epochs=2)
    with pytest.raises(TrainingError, match=r"epoch 1, step \d+") as e:
        run(spec, out=str(tmp_path / "r"), log=quiet)
    assert "'last' (after epoch" in str(e.value) and "intact" in str(e.value)
    arrays, meta = checkpoint.load(tmp_path / "r" / "ckpt", "last")
    assert all(np.isfinite(v).all() for k, v in arrays.items() if k.startswith("param::"))


def test_truncated_or_altered_checkpoints_are_refused(tmp_path):
    spec = write_spec(tmp_path, epochs=1)
    run(spec, out=str(tmp_path / "r"), log=quiet)
    ck = tmp_path / "r" / "ckpt"
    meta = json.loads((ck / "last.json").read_text())
    wfile = ck / meta["weights"]
    blob = wfile.read_bytes()
    wfile.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="checksum"):
        checkpoint.load(ck, "last")
    wfile.write_bytes(blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])
    with pytest.raises(CheckpointError, match="checksum"):
        checkpoint.load(ck, "last")
    (ck / "best.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load(ck, "best")


def test_checkpoints_never_unpickle(tmp_path):
    # an npz holding an object array (which would need pickle) is refused, not loaded
    arrays = {"param::x": np.array([{"a": 1}], dtype=object)}
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    import hashlib

    (tmp_path / "evil-00000000.npz").write_bytes(blob)
    (tmp_path / "evil.json").write_text(json.dumps({
        "format": checkpoint.FORMAT, "weights": "evil-00000000.npz",
        "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}))
    with pytest.raises(CheckpointError, match="unreadable"):
        checkpoint.load(tmp_path, "evil")


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "rnndsl.cli", *args], capture_output=True,
                          text=True, **kw)


def test_cli_eval_refuses_a_corrupt_checkpoint_without_traceback(tmp_path):
    spec = write_spec(tmp_path, epochs=1)
    run(spec, out=str(tmp_path / "r"), log=quiet)
    ck = tmp_path / "r" / "ckpt"
    meta = json.loads((ck / "best.json").read_text())
    (ck / meta["weights"]).write_bytes(b"garbage")
    p = cli("eval", str(tmp_path / "r"), "x.txt")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "checksum" in p.stderr


@pytest.mark.parametrize("key,value", [("seed", "x"), ("spec_path", None), ("epochs", 1e308),
                                       ("limit", []), ("seed", True)])
def test_an_edited_config_json_is_refused_with_its_key(tmp_path, key, value):
    spec = write_spec(tmp_path, epochs=1)
    run(spec, out=str(tmp_path / "r"), log=quiet)
    conf_path = tmp_path / "r" / "config.json"
    conf = json.loads(conf_path.read_text())
    conf[key] = value
    conf_path.write_text(json.dumps(conf))
    for args in (("run", "--resume", str(tmp_path / "r"), "--no-progress"),
                 ("predict", str(tmp_path / "r"), "-")):
        p = cli(*args, input="1 2 3\n", timeout=120)
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr and "internal error" not in p.stderr
        assert f"config.json: '{key}'" in p.stderr and "hint:" in p.stderr


@pytest.mark.parametrize("edit", [("state", None), ("state", {"epoch": "x"}),
                                  ("state", {"history": [1]}), ("optimizer", {"t": -3}),
                                  ("optimizer", []), ("state", {"lr": True})])
def test_an_edited_training_state_is_refused_on_resume(tmp_path, edit):
    spec = write_spec(tmp_path, epochs=1)
    run(spec, out=str(tmp_path / "r"), log=quiet)
    last = tmp_path / "r" / "ckpt" / "last.json"
    meta = json.loads(last.read_text())
    key, value = edit
    if isinstance(value, dict) and isinstance(meta[key], dict):
        meta[key] = {**meta[key], **value}
    else:
        meta[key] = value
    last.write_text(json.dumps(meta))
    p = cli("run", "--resume", str(tmp_path / "r"), "--no-progress", timeout=120)
    assert p.returncode == 2, p.stderr
    assert "error[CheckpointError]" in p.stderr and "last.json" in p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr


def _spawn(spec, out):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--out",
                             str(out), "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path, proc, timeout=60):
    t = time.time()
    while not path.exists():
        if proc.poll() is not None or time.time() - t > timeout:
            return False
        time.sleep(0.05)
    return True


def test_sigint_exits_130_with_a_loadable_checkpoint(tmp_path):
    spec = write_spec(tmp_path, size=4000, epochs=50)
    proc = _spawn(spec, tmp_path / "r")
    assert _wait_for(tmp_path / "r" / "config.json", proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    checkpoint.load(tmp_path / "r" / "ckpt", "last")


def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    spec = write_spec(tmp_path, size=2000, epochs=50, every=1)
    rng = np.random.default_rng(0)
    for i in range(4):
        out = tmp_path / f"r{i}"
        proc = _spawn(spec, out)
        assert _wait_for(out / "config.json", proc)
        time.sleep(float(rng.uniform(0.3, 2.0)))
        proc.kill()
        proc.wait()
        if (out / "ckpt" / "last.json").exists():
            checkpoint.load(out / "ckpt", "last")  # must not raise
        leftovers = list((out / "ckpt").glob("*.tmp")) if (out / "ckpt").exists() else []
        assert len(leftovers) <= 1  # at most the file being written at the kill


def test_bad_spec_exits_2_with_position_and_no_traceback(tmp_path):
    p = tmp_path / "bad.rnn"
    p.write_text("data toy = synthetic(n=5)\nmodel = embed(toy.words, d=8) |> lstn(d=8)\n")
    r = cli("run", str(p))
    assert r.returncode == 2
    assert "bad.rnn:2:" in r.stderr and "Traceback" not in r.stderr


def test_run_without_a_train_statement_says_where_and_what_to_add(tmp_path):
    p = tmp_path / "notrain.rnn"
    p.write_text("data toy = synthetic(task=first_token, n=4, vocab=6, size=40, seed=0)\n"
                 "model = embed(toy.words, d=8) |> lstm(d=8) |> last |> softmax(toy.labels)\n")
    assert cli("check", str(p)).returncode == 0  # a spec may only declare models
    r = cli("run", str(p))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "notrain.rnn:2:1: error[MissingTrain]" in r.stderr
    assert "train model on toy { epochs = 5 }" in r.stderr


def test_an_exploding_run_reports_it_without_numpy_warnings(tmp_path):
    p = write_spec(tmp_path, opt="sgd(lr=1e30)", epochs=1).read_text().replace("clip = 5", "")
    (tmp_path / "boom.rnn").write_text(p)
    r = cli("run", str(tmp_path / "boom.rnn"), "--out", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 1 and "error[TrainingError]" in r.stderr
    assert "RuntimeWarning" not in r.stderr and "Traceback" not in r.stderr


def test_help_works():
    r = cli("--help")
    assert r.returncode == 0 and "run" in r.stdout and "render" in r.stdout


CHAIN = """
data toy = synthetic(task=first_token, n=4, vocab=6, size=120, seed=0)
enc = embed(toy.words, d=8) |> bilstm(d=8) |> stack(2, skip=true) |> attention
model = enc |> softmax(toy.labels)
train model on toy {{ optimizer = adam(lr=0.01) epochs = 1 batch = 16 seed = 1
                     chain_thaw = true {extra} }}
"""


def test_chain_thaw_trains_new_layers_then_each_layer_then_all(tmp_path):
    src = tmp_path / "pre.rnn"
    # a pretraining model of its own name: its head is not the target model's head
    src.write_text(CHAIN.format(extra="").replace("chain_thaw = true", "")
                   .replace("model", "source_task"))
    run(src, out=str(tmp_path / "pre"), log=quiet)
    spec = tmp_path / "ct.rnn"
    spec.write_text(CHAIN.format(extra=f'pretrained = "{tmp_path / "pre"}"'))
    lines = []
    run(spec, out=str(tmp_path / "ct"), log=lines.append)
    steps = [s for s in lines if s.startswith("chain-thaw step")]
    # the head is new; embed, 2 bilstm layers and the attention are thawed one at a time
    assert steps[0].endswith("training the new layers")
    assert steps[-1].endswith("training all layers")
    assert len(steps) == 6
    pre, _ = checkpoint.load(tmp_path / "pre" / "ckpt", "best")
    s1, _ = checkpoint.load(tmp_path / "ct" / "stage1" / "ckpt", "best")
    for k in pre:  # step (a) changes only the new head; everything else keeps its pretrained value
        if k.startswith("param::") and ".4.attention." in k:
            np.testing.assert_array_equal(pre[k], s1[k])
    checkpoint.load(tmp_path / "ct" / "ckpt", "best")


@pytest.mark.parametrize("fmt", ["glove", "word2vec", "word2vec-bin"])
def test_pretrained_vectors_reach_the_embedding_and_train(tmp_path, fmt):
    """A spec naming a GloVe or word2vec file starts its embedding from those vectors."""
    rng = np.random.default_rng(0)
    words = ["A", "B"] + [f"d{k}" for k in range(6)]
    vecs = rng.standard_normal((len(words), 8)).astype(np.float32)
    path = tmp_path / f"vec.{fmt}"
    if fmt == "glove":
        path.write_text("".join(f"{w} {' '.join(f'{x:.6f}' for x in v)}\n"
                                for w, v in zip(words, vecs)))
    elif fmt == "word2vec":
        path.write_text(f"{len(words)} 8\n" + "".join(
            f"{w} {' '.join(f'{x:.6f}' for x in v)}\n" for w, v in zip(words, vecs)))
    else:
        path.write_bytes(f"{len(words)} 8\n".encode() + b"".join(
            w.encode() + b" " + v.astype("<f4").tobytes() + b"\n" for w, v in zip(words, vecs)))
    spec = tmp_path / "pre.rnn"
    spec.write_text(f"""
data toy = synthetic(task=first_token, n=4, vocab=6, size=80, seed=0)
model = embed(toy.words, d=8, pretrained="{path.name}", format={fmt}) |> lstm(d=8) |> last
        |> softmax(toy.labels)
train model on toy {{ epochs = 1 batch = 16 seed = 1 }}
""")
    from rnndsl import lang
    from rnndsl.run import prepare

    logs = []
    prep = prepare(lang.load(spec), log=logs.append)
    table = next(p for k, p in prep.net.named_parameters().items() if k.endswith("weight")
                 and "embed" in k).numpy()
    vocab = prep.data.vocabs["words"]
    for w, v in zip(words, vecs):
        np.testing.assert_allclose(table[vocab.index(w)], v, rtol=1e-5, atol=1e-6)
    assert any("cover" in s for s in logs)  # the coverage report
    final = run(spec, out=str(tmp_path / "r"), log=quiet)
    assert "dev_accuracy" in final


def test_command_line_overrides_pretrained_and_chain_thaw(tmp_path):
    src = tmp_path / "pre.rnn"
    src.write_text(CHAIN.format(extra="").replace("chain_thaw = true", "")
                   .replace("model", "source_task"))
    run(src, out=str(tmp_path / "pre"), log=quiet)
    spec = tmp_path / "ct.rnn"
    spec.write_text(CHAIN.format(extra=""))
    lines = []
    run(spec, out=str(tmp_path / "full"), log=lines.append, pretrained=str(tmp_path / "pre"),
        chain_thaw=False)
    assert not any(s.startswith("chain-thaw") for s in lines)
    assert any(s.startswith("pretrained weights from") for s in lines)
    with pytest.raises(CheckpointError, match="not a finished run"):
        run(spec, out=str(tmp_path / "x"), log=quiet, pretrained=str(tmp_path / "nope"))


def test_profile_reports_where_the_time_went(tmp_path):
    lines = []
    run(write_spec(tmp_path, epochs=1), out=str(tmp_path / "p"), log=lines.append, profile=True)
    report = next(s for s in lines if s.startswith("time spent"))
    for part in ("forward", "backward", "optimizer", "data", "evaluation"):
        assert part in report


@pytest.mark.parametrize("patience,expected", [(0, [1.0, 0.5, 0.25]), (2, [1.0, 1.0, 0.5])])
def test_plateau_schedule_halves_the_rate_after_epochs_without_improvement(tmp_path, patience,
                                                                            expected):
    # lr tiny: dev accuracy never improves after epoch 1, so every later epoch is a bad one
    spec = tmp_path / "p.rnn"
    spec.write_text(
        "data toy = synthetic(task=first_token, n=3, size=64)\n"
        "m = embed(toy.words, d=4) |> lstm(d=4) |> last |> softmax(toy.labels)\n"
        "train m on toy { optimizer = sgd(lr=1e-12); epochs = 4; batch = 16; seed = 1;\n"
        f"  schedule = plateau(factor=0.5, patience={patience}) }}\n")
    out = tmp_path / "run"
    run(spec, out=str(out), log=lambda s: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # the rate epochs 2-4 ran with: a decay after epoch k (its track) applies from epoch k + 1
    assert [round(r["lr"] / 1e-12, 6) for r in rows[1:]] == expected
