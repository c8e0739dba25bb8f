"""Progress bars (loss, tokens/s, ETA) and result tables, through rich."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class Bars:
    """Progress of each epoch: steps done, loss, tokens/s, elapsed time and ETA.

    Three ways to show it, chosen from where the output goes (``enabled=None``):

    - a terminal (stderr is a TTY), or a Jupyter notebook with ipywidgets (the `notebook`
      extra): rich's live bar (in a notebook a widget in the cell's output);
    - anything else (a log file, a pipe, CI, a notebook without ipywidgets): one plain line per
      tenth of the epoch's steps,
      ``epoch 1/5: 120/1,200 steps (10%) | loss 1.2345 | 3,400 tok/s | 0:12 elapsed, eta 1:48``;
    - ``enabled=False`` (``--no-progress``): nothing.
    """

    LINES_PER_EPOCH = 10

    def __init__(self, out: Console | None = None, enabled: bool | None = None):
        self.console = out or console()
        if enabled is False:
            self.mode = "off"
        elif enabled is True or sys.stderr.isatty() or (self.console.is_jupyter
                                                         and _has_widgets()):
            self.mode = "bar"
        else:
            self.mode = "lines"
        self.enabled = self.mode != "off"
        self._progress: Progress | None = None
        self._line: dict[str, Any] | None = None

    def start(self, description: str, total: int, done: int = 0) -> Any:
        if self.mode == "lines":
            every = max(1, -(-total // self.LINES_PER_EPOCH))
            self._line = {"description": description, "total": total, "done": done,
                          "every": every, "t0": time.monotonic(), "start": done}
            return self._line
        if self.mode != "bar":
            return None
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]:,.0f} tok/s"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=True,
        )
        self._progress.start()
        return self._progress.add_task(description, total=total, completed=done, loss=0.0,
                                       rate=0.0)

    def advance(self, task: Any, loss: float, rate: float) -> None:
        if self.mode == "lines" and task is not None:
            task["done"] += 1
            done, total = task["done"], task["total"]
            if done % task["every"] == 0 or done == total:
                self.console.print(progress_line(task, loss, rate, time.monotonic()),
                                   markup=False, highlight=False)
            return
        if self._progress is not None and task is not None:
            self._progress.update(task, advance=1, loss=loss, rate=rate)

    def stop(self) -> None:
        self._line = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _has_widgets() -> bool:
    """rich draws a live bar in Jupyter through ipywidgets (the `notebook` extra)."""
    return importlib.util.find_spec("ipywidgets") is not None


def notebook_bars() -> Bars | None:
    """Progress bars for a run started from Python inside Jupyter; None elsewhere."""
    c = console()
    return Bars(c) if c.is_jupyter else None


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(task: Mapping[str, Any], loss: float, rate: float, now: float) -> str:
    """One plain progress line of the 'lines' mode."""
    done, total = task["done"], task["total"]
    elapsed = now - task["t0"]
    steps_here = done - task["start"]
    eta = elapsed / steps_here * (total - done) if steps_here else 0.0
    pct = 100 * done // max(total, 1)
    return (f"{task['description']}: {done:,}/{total:,} steps ({pct}%) | loss {loss:.4f} | "
            f"{rate:,.0f} tok/s | {_clock(elapsed)} elapsed, eta {_clock(eta)}")


def metrics_table(title: str, rows: Mapping[str, Any]) -> Table:
    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in rows.items():
        t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    return t


def rows_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, show_header=True, header_style="bold")
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[str(x) for x in r])
    return t


_TABLES = ("per_class", "confusion", "per_type")


def confusion_text(conf: Mapping[str, Any]) -> str:
    """A confusion matrix as aligned plain text, rows gold, columns predicted."""
    labels, matrix = conf["labels"], conf["matrix"]
    first = max([len("gold"), *map(len, labels)])
    width = max([*map(len, labels), *(len(str(c)) for row in matrix for c in row)]) + 1
    lines = [" " * first + "".join(f"{x:>{width}}" for x in labels)]
    lines += [f"{g:<{first}}" + "".join(f"{c:>{width}}" for c in row)
              for g, row in zip(labels, matrix)]
    return "\n".join(lines)


def print_metrics(out: Console, title: str, res: Mapping[str, Any]) -> None:
    """The numbers of ``res`` as one table, then for each split (``dev_``, ``test_`` or none)
    its per-class table, its confusion matrix and its per-type chunk scores in conlleval's
    layout."""
    from .breakdown import conlleval_lines

    out.print(metrics_table(title, {k: v for k, v in res.items() if not isinstance(v, Mapping)}))
    prefixes = sorted({k[: -len(t)] for k in res for t in _TABLES
                       if k.endswith(t) and isinstance(res[k], Mapping)})
    for pre in prefixes:
        split = pre.rstrip("_") or title
        per_class = res.get(f"{pre}per_class")
        if per_class:
            out.print(rows_table(
                f"{split}: per class", ["label", "precision", "recall", "f1", "support"],
                [[k, f"{v['precision']:.2f}", f"{v['recall']:.2f}", f"{v['f1']:.2f}",
                  v["support"]] for k, v in per_class.items()]))
        conf = res.get(f"{pre}confusion")
        text = confusion_text(conf) if conf else ""
        if text and max(map(len, text.splitlines())) <= out.width:
            out.print(f"{split}: confusion (rows gold, columns predicted)\n{text}",
                      markup=False, highlight=False)
        elif conf:
            out.print(f"{split}: the confusion matrix of {len(conf['labels'])} labels is wider "
                      "than this terminal: see --json or the run's report.html", markup=False)
        per_type = res.get(f"{pre}per_type")
        if per_type is not None:
            lines = [f"{split}: chunks by type (conlleval's layout; the last column counts the "
                     "predicted chunks)", *conlleval_lines(per_type)]
            out.print("\n".join(lines), markup=False, highlight=False)
