"""Run directories that validate themselves, one writer per directory, SIGTERM, a full disk,
NaN: issue 23's cases, each with the message it must give."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_run import _spawn, _wait_for, quiet, write_spec

from rnndsl import rundir
from rnndsl.cli import main
from rnndsl.errors import CheckpointError, SpecError, TrainingError
from rnndsl.run import load_run, run
from rnndsl.train import checkpoint, lock


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished 2-epoch run, copied for each test that edits it."""
    base = tmp_path_factory.mktemp("trained")
    spec = write_spec(base, epochs=2, size=80)
    run(spec, out=str(base / "r"), log=quiet)
    return base


@pytest.fixture
def run_dir(trained, tmp_path):
    shutil.copy(trained / "toy.rnn", tmp_path / "toy.rnn")
    shutil.copytree(trained / "r", tmp_path / "r")
    conf = json.loads((tmp_path / "r" / "config.json").read_text())
    conf["spec_path"] = str(tmp_path / "toy.rnn")
    (tmp_path / "r" / "config.json").write_text(json.dumps(conf))
    resign(tmp_path / "r")
    return tmp_path / "r"


def resign(run_dir: Path) -> None:
    """Record the digests of the run's files again, as a person who edits one on purpose would,
    so that the checks behind the manifest's (rundir.py) are reached."""
    rundir.write_manifest(run_dir)


def rewrite_weights(run_dir: Path, name: str, edit) -> None:
    """Change a checkpoint's arrays with ``edit(dict)`` and record the new digest, as a person
    who edits the file on purpose would (so the checksum alone does not catch it)."""
    ck = run_dir / "ckpt"
    arrays, meta = checkpoint.load(ck, name)
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    (ck / meta["weights"]).write_bytes(blob)
    meta.update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    (ck / f"{name}.json").write_text(json.dumps(meta))


def first_param(arrays):
    return next(k for k in arrays if k.startswith("param::"))


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda a: a.update({first_param(a): a[first_param(a)][:-1]}), r"has shape \(.*model's"),
        (lambda a: a.update({first_param(a): a[first_param(a)].astype(np.int64)}), "dtype int64"),
        (lambda a: a.update({first_param(a): a[first_param(a)].astype(np.complex64)}),
         "dtype complex64"),
        (lambda a: a.update({"param::extra.W": np.zeros(3, np.float32)}), "'extra.W'"),
        (lambda a: a.update({"junk": np.zeros(3, np.float32)}), "unknown array 'junk'"),
        (lambda a: a[first_param(a)].__setitem__((0,), np.nan), "NaN or infinite"),
        (lambda a: a.pop(first_param(a)), "no weights for"),
    ],
)
def test_weights_are_checked_against_the_spec(run_dir, edit, words):
    rewrite_weights(run_dir, "best", edit)
    with pytest.raises(CheckpointError, match=words):
        load_run(run_dir, log=quiet)


def test_an_edited_d_in_the_runs_spec_names_the_parameter_and_both_shapes(run_dir):
    spec = run_dir / "spec.rnn"
    spec.write_text(spec.read_text().replace("lstm(d=8)", "lstm(d=9)"))
    resign(run_dir)
    with pytest.raises(CheckpointError, match=r"'model\.\S+' has shape \(\d+, \d+\).* is \("):
        load_run(run_dir, log=quiet)


@pytest.mark.parametrize(
    "file, text, words",
    [
        ("vocab.json", "[]", "expected a JSON object"),
        ("vocab.json", "[" * 10000 + "]" * 10000, "MAX_JSON_DEPTH"),
        ("config.json", '{"a":' * 5000 + "1" + "}" * 5000, "MAX_JSON_DEPTH"),
        ("ckpt/best.json", "[" * 100000, "MAX_JSON_DEPTH"),
    ],
)
def test_json_files_schema_and_depth(run_dir, file, text, words):
    (run_dir / file).write_text(text)
    resign(run_dir)
    with pytest.raises(CheckpointError, match=words):
        load_run(run_dir, log=quiet)


def test_weights_named_as_a_fifo_or_a_path_are_refused(run_dir):
    ck = run_dir / "ckpt"
    meta = json.loads((ck / "best.json").read_text())
    os.mkfifo(ck / "fifo.npz")
    for weights, words in (("fifo.npz", "FIFO"), ("../config.json", "name of a file")):
        (ck / "best.json").write_text(json.dumps({**meta, "weights": weights}))
        with pytest.raises(CheckpointError, match=words):
            checkpoint.load(ck, "best")


def edit_last(run_dir: Path, change) -> None:
    path = run_dir / "ckpt" / "last.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda m: m.__setitem__("state", {}), "no field 'epoch'"),
        (lambda m: m["state"].__setitem__("epoch", -1), "'epoch' is -1"),
        (lambda m: m["state"].__setitem__("step", 1000000), "step 1000000"),
        (lambda m: m["optimizer"].__setitem__("t", 10**30), "optimizer state"),
        (lambda m: m["optimizer"].__setitem__("t", 10**6), "step count"),
    ],
)
def test_inconsistent_training_state_is_refused_on_resume(run_dir, change, words):
    edit_last(run_dir, change)
    with pytest.raises(CheckpointError, match=words):
        run(None, resume=str(run_dir), log=quiet, epochs=3)


def test_missing_optimizer_moments_are_refused(run_dir):
    rewrite_weights(run_dir, "last", lambda a: [a.pop(k) for k in list(a) if k.startswith("opt")])
    with pytest.raises(CheckpointError, match="none of its moments"):
        run(None, resume=str(run_dir), log=quiet, epochs=3)


def test_the_runs_spec_copy_is_checked_as_that_file(run_dir):
    spec = run_dir / "spec.rnn"
    spec.write_text(spec.read_text().replace("lstm(d=8)", "lstmm(d=8)"))
    resign(run_dir)
    with pytest.raises(SpecError) as e:
        run(None, resume=str(run_dir), log=quiet, epochs=3)
    assert e.value.diagnostics[0].span.path == str(spec)
    spec.write_bytes(b"\xff\xfe bad")
    resign(run_dir)
    with pytest.raises(CheckpointError, match="not UTF-8"):
        run(None, resume=str(run_dir), log=quiet, epochs=3)
    spec.unlink()
    resign(run_dir)
    with pytest.raises(CheckpointError, match="no such file"):
        run(None, resume=str(run_dir), log=quiet, epochs=3)


def test_resume_with_another_spec_is_refused(run_dir, tmp_path):
    other = write_spec(tmp_path, epochs=2, size=80, n=6, name="other.rnn")
    with pytest.raises(CheckpointError, match="is not the spec"):
        run(str(other), resume=str(run_dir), log=quiet, epochs=3)
    # the same spec, given again, is fine
    run(str(tmp_path / "toy.rnn"), resume=str(run_dir), log=quiet, epochs=3)


# -- one writer per directory ------------------------------------------------------------------


def test_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken_over(tmp_path):
    spec = write_spec(tmp_path, epochs=1, size=40)
    out = tmp_path / "r"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = lock._start_time(holder.pid)
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "start": start}))
        busy = f"in use by another rnndsl run \\(pid {holder.pid}"
        with pytest.raises(CheckpointError, match=busy):
            run(spec, out=str(out), log=quiet)
        # the same pid with another start time: the pid was reused, the lock is stale
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "start": (start or 0) + 1}))
        run(spec, out=str(out), log=quiet)
    finally:
        holder.kill()
        holder.wait()
    (out / ".lock").write_text(json.dumps({"pid": holder.pid, "start": start}))  # dead now
    assert main(["run", str(spec), "--out", str(out), "--no-progress"]) == 0
    assert not (out / ".lock").exists()  # released at the end


# -- signals, a full disk, NaN ---------------------------------------------------------------


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    spec = write_spec(tmp_path, size=4000, epochs=50)
    proc = _spawn(spec, tmp_path / "r")
    assert _wait_for(tmp_path / "r" / "config.json", proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in out + err and "--resume" in err
    assert "Traceback" not in err
    checkpoint.load(tmp_path / "r" / "ckpt", "last")


def test_full_disk_names_the_path_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, epochs=3, size=80)
    real = checkpoint.atomic_write_bytes
    calls = {"n": 0}

    def writer(path, data):
        if Path(path).suffix == ".npz" and "last" in Path(path).name:
            calls["n"] += 1
            if calls["n"] == 2:  # the second epoch's checkpoint
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", writer)
    with pytest.raises(TrainingError) as e:
        run(spec, out=str(tmp_path / "r"), log=quiet)
    text = str(e.value)
    assert "the disk is full" in text and str(tmp_path / "r" / "ckpt") in text
    assert "intact" in text and "after epoch 1" in text
    _, meta = checkpoint.load(tmp_path / "r" / "ckpt", "last")
    assert meta["epoch"] == 1
    # metrics are written after the checkpoints they describe: epoch 2 is not listed
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1]
    assert not list((tmp_path / "r" / "ckpt").glob(".*.tmp"))


def test_stale_temporary_files_are_removed_on_the_next_save(run_dir):
    ck = run_dir / "ckpt"
    (ck / ".last-00000010.npz.abc123.tmp").write_bytes(b"x" * 1000)
    (run_dir / ".metrics.jsonl.xyz.tmp").write_bytes(b"x")
    run(None, resume=str(run_dir), log=quiet, epochs=3)
    assert not list(ck.glob(".*.tmp")) and not list(run_dir.glob(".*.tmp"))


def test_nan_in_the_first_epoch_says_nothing_was_kept(tmp_path):
    spec = write_spec(tmp_path, opt="sgd(lr=1e30)", epochs=2)
    with pytest.raises(TrainingError, match="no checkpoint was written before this"):
        run(spec, out=str(tmp_path / "r"), log=quiet)


def test_a_nan_dev_loss_is_never_the_best_epoch():
    from rnndsl.train.loop import Trainer, TrainState

    t = Trainer.__new__(Trainer)
    t.state, t.s = TrainState(), type("S", (), {"early_stop": None, "schedule": None})()
    t.metric = "accuracy"
    assert t.track({"accuracy": 0.5, "loss": float("nan")}) is False
    assert t.track({"accuracy": float("nan")}) is False
    assert t.track({"accuracy": 0.5, "loss": 1.0}) is True


def test_json_depth_skips_strings_and_a_half_written_lock_is_stale(tmp_path):
    assert checkpoint.max_depth(b'{"a": ["[[[[", {"b": "\\"{{{"}]}') == 3
    (tmp_path / ".lock").write_text('{"pid": 12')  # a run killed while it wrote its lock
    assert lock.acquire(tmp_path) == tmp_path / ".lock"
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    lock.release(tmp_path)
    assert not (tmp_path / ".lock").exists()
