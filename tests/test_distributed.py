"""Data-parallel training over MPI: 2 ranks reach the weights of 1 rank; a dead rank stops all."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnndsl.train import checkpoint

BIN = Path(sys.executable).parent
MPIEXEC = str(BIN / "mpiexec") if (BIN / "mpiexec").exists() else shutil.which("mpiexec")

pytestmark = pytest.mark.skipif(
    MPIEXEC is None or __import__("importlib").util.find_spec("mpi4py") is None,
    reason="MPI is not installed (pip install 'rnndsl[mpi]')")

SPEC = """
data toy = synthetic(task=first_token, n=4, vocab=6, size={size}, seed=0)
model = embed(toy.words, d=8) |> bilstm(d=6) |> last |> mlp(d=8) |> softmax(toy.labels)
train model on toy {{ optimizer = adam(lr=0.01) epochs = {epochs} batch = 10 seed = 4 clip = 5 }}
"""

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300, **kw)


def test_two_ranks_reach_the_weights_of_one_rank(tmp_path):
    spec = tmp_path / "toy.rnn"
    spec.write_text(SPEC.format(size=95, epochs=2))  # 95: the last batch does not split evenly
    one = _run([sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--out",
                str(tmp_path / "one"), "--no-progress"])
    assert one.returncode == 0, one.stderr
    two = _run([MPIEXEC, "-n", "2", sys.executable, "-m", "rnndsl.cli", "run", str(spec),
                "--out", str(tmp_path / "two"), "--no-progress"])
    assert two.returncode == 0, two.stderr + two.stdout
    a, _ = checkpoint.load(tmp_path / "one" / "ckpt", "last")
    b, meta = checkpoint.load(tmp_path / "two" / "ckpt", "last")
    assert meta["global_step"] == 20
    params = [k for k in a if k.startswith("param::")]
    assert params and set(params) == {k for k in b if k.startswith("param::")}
    for k in params:
        np.testing.assert_allclose(a[k], b[k], rtol=2e-4, atol=2e-5, err_msg=k)
    assert "2 ranks" in two.stdout


def test_workers_flag_launches_the_local_case(tmp_path):
    spec = tmp_path / "toy.rnn"
    spec.write_text(SPEC.format(size=40, epochs=1))
    r = _run([sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--workers", "2", "--out",
              str(tmp_path / "w"), "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert "2 ranks" in r.stdout
    checkpoint.load(tmp_path / "w" / "ckpt", "best")


def _rank_pids(marker):
    pids = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and b"rnndsl.cli" in cmd:
            for item in env.split(b"\0"):
                if item.startswith(b"PMI_RANK="):
                    pids[int(item[9:])] = int(d.name)
    return pids


def test_a_dead_rank_stops_the_run_with_a_message(tmp_path):
    spec = tmp_path / "dies.rnn"
    spec.write_text(SPEC.format(size=3000, epochs=100))
    env = {**ENV, "RNNDSL_MPI_TIMEOUT": "15"}
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "rnndsl.cli", "run",
                             str(spec), "--out", str(tmp_path / "r"), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.time()
    while time.time() - t0 < 60 and len(_rank_pids("dies.rnn")) < 2:
        time.sleep(0.2)
    while time.time() - t0 < 90 and not (tmp_path / "r" / "config.json").exists():
        time.sleep(0.2)
    time.sleep(2.0)
    pids = _rank_pids("dies.rnn")
    assert 1 in pids, "rank 1 not found"
    os.kill(pids[1], signal.SIGKILL)
    killed = time.time()
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the surviving rank hung after its peer died")
    assert time.time() - killed < 60
    assert proc.returncode != 0
    text = (out + err).lower()
    assert "rank" in text or "terminat" in text  # our timeout message, or mpiexec's report


def test_predict_and_eval_spread_over_ranks_keep_input_order(tmp_path):
    spec = tmp_path / "toy.rnn"
    spec.write_text(SPEC.format(size=60, epochs=1))
    r = _run([sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--out", str(tmp_path / "r"),
              "--no-progress"])
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(1)
    lines = [" ".join(["A" if rng.random() < 0.5 else "B"] + [f"d{k}" for k in
                       rng.integers(0, 6, size=int(rng.integers(1, 8)))]) for _ in range(150)]
    text = tmp_path / "in.txt"
    text.write_text("\n".join(lines) + "\n")  # 150 sentences: 3 batches of 64 over 2 ranks
    one = _run([sys.executable, "-m", "rnndsl.cli", "predict", str(tmp_path / "r"), str(text),
                "--confidence"])
    two = _run([MPIEXEC, "-n", "2", sys.executable, "-m", "rnndsl.cli", "predict",
                str(tmp_path / "r"), str(text), "--confidence"])
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert one.stdout == two.stdout
    assert [ln.split("\t")[-1] for ln in two.stdout.splitlines()] == lines
