"""Spans, diagnostics and the one error hierarchy of rnndsl.

Every error a user can cause is an ``RnnError``; its class docstring is the long explanation.
A diagnostic renders as::

    specs/tagger.rnn:1:18: error[UnknownLayer]: unknown layer 'bilstn'
      1 | bilstm(d=128) |> bilstn(2) |> crf(tags)
        |                  ^^^^^^
      hint: did you mean 'bilstm'?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source text: 1-based line and column, end column exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    path: str = field(default="<spec>", compare=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    """One message about a spec or a data file, with its place and an optional hint."""

    kind: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    source: str | None = field(default=None, compare=False, repr=False)

    def sort_key(self) -> tuple:
        s = self.span
        return (s.path, s.line, s.column, self.kind) if s else ("", 0, 0, self.kind)

    def format(self, source: str | None = None) -> str:
        source = source if source is not None else self.source
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}{self.severity}[{self.kind}]: {self.message}"]
        if self.span and source is not None:
            lines = source_lines(source)
            if 1 <= self.span.line <= len(lines):
                text = _shown(lines[self.span.line - 1])
                num = str(self.span.line)
                pad = " " * len(num)
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_column - self.span.column)
                else:
                    width = max(1, len(text) - self.span.column + 1)
                column = self.span.column
                if len(text) > _SHOWN_WIDTH:  # a window around the caret, not a megabyte line
                    start = max(0, column - 1 - _SHOWN_WIDTH // 4)
                    text = ("..." if start else "") + text[start : start + _SHOWN_WIDTH] + "..."
                    column -= start - (3 if start else 0)
                    width = min(width, _SHOWN_WIDTH - (column - 1) + 3)
                out.append(f"  {num} | {text}")
                out.append(f"  {pad} | {' ' * (column - 1)}{'^' * max(1, width)}")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


def normalize_source(text: str) -> str:
    """A spec's text as the parser reads it: no byte-order mark, every line end ``\\n``."""
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def source_lines(text: str) -> list[str]:
    """The lines of a spec as the parser counts them: split at ``\\n`` only (``splitlines``
    would also split at form feeds, U+2028 and friends, and show the wrong line)."""
    return text.split("\n")


_SHOWN_WIDTH = 120  # characters of a long source line shown under a message


def _shown(line: str) -> str:
    """A source line for the terminal: tabs and other control characters become one space each,
    so the caret below stays in its column."""
    return "".join(c if c.isprintable() else " " for c in line)


def format_diagnostics(diags: Iterable[Diagnostic], source: str | None = None) -> str:
    return "\n".join(d.format(source) for d in diags)


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint from close matches, or None."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=3, cutoff=0.6)
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean one of " + ", ".join(f"'{c}'" for c in close) + "?"


class RnnError(Exception):
    """Base class of every error rnndsl raises for a user's input or environment."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, span: Span | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.span = span

    def format(self) -> str:
        kind = type(self).__name__
        where = f"{self.span}: " if self.span else ""
        text = f"{where}error[{kind}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class BackendError(RnnError):
    """The requested array backend (numpy or cupy) or dtype cannot be used here."""


class ShapeError(RnnError, ValueError):
    """Arrays handed to a network or an op have shapes that do not fit together."""

    exit_code = 2


class SpecError(RnnError):
    """A spec has errors; ``.diagnostics`` lists every one, sorted by position."""

    exit_code = 2

    def __init__(self, diagnostics: Sequence[Diagnostic], source: str | None = None):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        self.source = source
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(
            first.message if first else "invalid spec",
            span=first.span if first else None,
            hint=first.hint if first else None,
        )

    def format(self) -> str:
        return format_diagnostics(self.diagnostics, self.source)

    def __str__(self) -> str:
        return self.format()


class DataError(RnnError):
    """A data file is missing, unreadable or malformed (the message names file:line)."""

    exit_code = 2


class CheckpointError(RnnError):
    """A checkpoint or run directory is missing, truncated, altered or from another model."""

    exit_code = 2


class TrainingError(RnnError):
    """Training cannot go on (a NaN or infinite loss, say); the last good checkpoint is kept."""

    exit_code = 1


class TorchStateError(RnnError):
    """PyTorch weights do not fit this network (names, shapes, or a cell PyTorch lacks)."""

    exit_code = 2


class RenderError(RnnError):
    """A picture cannot be drawn as asked (no input sentence, an unknown format, a model part
    the unrolled view does not draw yet); the message says what to change."""

    exit_code = 2


class ExportError(RnnError):
    """A trained network cannot be written as asked (ONNX: a layer ONNX's operators do not
    express, or the optional `onnx` package is missing); the message says which and why."""

    exit_code = 2


class GraphvizMissing(RnnError):
    """Graphviz's ``dot`` program is not installed, so only the DOT text could be written."""

    exit_code = 1
