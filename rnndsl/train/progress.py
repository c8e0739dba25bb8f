"""Progress bars (loss, tokens/s, ETA) and result tables, through rich."""

from __future__ import annotations

import sys
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
    """One progress bar per epoch: steps done, loss, tokens/s, elapsed and ETA."""

    def __init__(self, out: Console | None = None, enabled: bool | None = None):
        self.console = out or console()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Progress | None = None

    def start(self, description: str, total: int, done: int = 0) -> Any:
        if not self.enabled:
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
        if self._progress is not None and task is not None:
            self._progress.update(task, advance=1, loss=loss, rate=rate)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


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
