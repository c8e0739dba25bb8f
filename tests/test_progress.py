"""Progress where there is no terminal: plain lines per tenth of an epoch into the log, a live
bar in a terminal or a Jupyter notebook, nothing with --no-progress."""

from __future__ import annotations

import io
import re
import subprocess
import sys

from rich.console import Console

from rnndsl.train.progress import Bars, notebook_bars, progress_line


def test_lines_when_stderr_is_not_a_tty():
    assert not sys.stderr.isatty()  # pytest captures it
    buf = io.StringIO()
    bars = Bars(Console(file=buf, width=200))
    assert bars.mode == "lines"
    task = bars.start("epoch 1/3", total=25)
    for k in range(25):
        bars.advance(task, loss=1.0 / (k + 1), rate=1234.0)
    bars.stop()
    lines = buf.getvalue().splitlines()
    # every ceil(25 / 10) = 3 steps, and the last one
    assert [int(re.match(r"epoch 1/3: (\d+)/25 steps", x).group(1)) for x in lines] == \
        [3, 6, 9, 12, 15, 18, 21, 24, 25]
    assert re.fullmatch(r"epoch 1/3: 25/25 steps \(100%\) \| loss 0\.0400 \| 1,234 tok/s \| "
                        r"0:\d\d elapsed, eta 0:00", lines[-1]), lines[-1]


def test_a_resumed_epoch_counts_from_where_it_was():
    buf = io.StringIO()
    bars = Bars(Console(file=buf, width=200))
    task = bars.start("epoch 2/2", total=10, done=7)
    for _ in range(3):
        bars.advance(task, loss=0.5, rate=10.0)
    assert [x.split(" steps")[0] for x in buf.getvalue().splitlines()] == [
        "epoch 2/2: 8/10", "epoch 2/2: 9/10", "epoch 2/2: 10/10"]


def test_progress_line_eta():
    task = {"description": "epoch 1/1", "done": 30, "total": 120, "t0": 100.0, "start": 0}
    assert progress_line(task, 2.5, 99.6, now=112.0) == (
        "epoch 1/1: 30/120 steps (25%) | loss 2.5000 | 100 tok/s | 0:12 elapsed, eta 0:36")


def test_off_bar_and_notebook_modes():
    assert Bars(Console(file=io.StringIO()), enabled=False).mode == "off"
    assert Bars(Console(file=io.StringIO()), enabled=False).start("e", 10) is None
    import importlib.util

    widgets = importlib.util.find_spec("ipywidgets") is not None
    # in Jupyter: rich's widget when ipywidgets is there, else the plain lines in the cell
    assert Bars(Console(file=io.StringIO(), force_jupyter=True)).mode == (
        "bar" if widgets else "lines")
    assert notebook_bars() is None  # not in Jupyter here


def test_run_writes_progress_lines_to_a_log(tmp_path):
    from test_run import write_spec

    spec = write_spec(tmp_path, epochs=1, size=64)
    with open(tmp_path / "log.txt", "w") as log:
        p = subprocess.run([sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--out",
                            str(tmp_path / "r")], stdout=log, stderr=subprocess.STDOUT)
    assert p.returncode == 0
    text = (tmp_path / "log.txt").read_text()
    # 64 examples in batches of 16: 4 steps, a line each (ceil(4 / 10) = 1)
    assert [m for m in re.findall(r"epoch 1/1: (\d)/4 steps", text)] == ["1", "2", "3", "4"]
    p = subprocess.run([sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--out",
                        str(tmp_path / "r2"), "--no-progress"], capture_output=True, text=True)
    assert "steps (" not in p.stdout + p.stderr
