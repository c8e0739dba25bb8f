"""Peeking into the files a spec names (only the first line): vector sizes, column headers."""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import limits
from ..errors import Span, did_you_mean
from . import catalogue as C
from . import syntax as S
from .flow import _arg_span

# ---------------------------------------------------------------------------------------------
# Peeking into files (only the first line): vector sizes and column headers


def _first_line(path: str, skip_blank: bool = True) -> str | None:
    if limits.not_regular(path) is not None:  # a FIFO would block here; the reader says why
        return None
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as raw:
            for i in range(1000):
                line = raw.readline(1 << 20)
                if not line:
                    return None
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                if i == 0:
                    text = text.removeprefix("\ufeff")  # the readers drop a BOM too
                if text.strip() or not skip_blank:
                    return text
    except (OSError, EOFError, ValueError):
        return None
    return None


def vector_dim(path: str, fmt: str) -> int | None:
    """The size of the vectors in a pretrained file, from its first line, or None.

    Only the size: which format the file is in (format=auto) is the data layer's decision
    (data.embeddings.sniff_format). Both word2vec forms, text and binary, start with the same
    ASCII header "COUNT DIM"; a GloVe file starts with a word and its numbers."""
    first = _first_line(path)
    if first is None:
        return None
    parts = first.split()
    header = len(parts) == 2 and all(p.isdigit() and len(p) <= 18 for p in parts)
    if fmt in ("word2vec", "word2vec-bin") or (fmt == "auto" and header):
        return int(parts[1]) if header else None
    return len(parts) - 1 if len(parts) > 1 else None


def data_files_fit(
    report: Callable[..., None],
    rd: C.ReaderDef,
    a: Mapping[str, Any],
    args: Sequence[S.Arg],
    span: Span,
) -> bool:
    """Look at the first line of a data statement's files for what its arguments promise
    (a column, a label per file); each problem goes to ``report(kind, message, span, hint)``."""
    ok = True
    if rd.name == "labelled_files":
        for split in ("train", "dev"):
            files = a[split]
            if files is not None and len(files) != len(a["labels"]):
                ok = False
                report(
                    "ShapeMismatch",
                    f"labelled_files: {split} has {len(files)} file(s) but labels has "
                    f"{len(a['labels'])}; give one label per file, in order",
                    _arg_span(args, split, span),
                )
    if rd.name == "classification" and a["format"] in ("tsv", "csv"):
        for split in ("train", "dev"):
            if a[split] is None:
                continue
            header = _first_line(a[split])
            if header is None:
                continue
            delim = "\t" if a["format"] == "tsv" else ","
            try:
                row = next(csv.reader(io.StringIO(header), delimiter=delim), [])
            except csv.Error:  # the reader reports the malformed line with its place
                continue
            columns = [c.strip() for c in row]
            for key in ("label_column", "text_column"):
                if a[key] not in columns:
                    ok = False
                    shown = os.path.basename(a[split])
                    report(
                        "MissingColumn",
                        f"classification: no column '{a[key]}' in the header of {shown} "
                        f"(columns: {', '.join(columns)})",
                        _arg_span(args, key, _arg_span(args, split, span)),
                        did_you_mean(a[key], columns),
                    )
    if rd.name == "conll":
        for split in ("train", "dev"):
            if a[split] is None:
                continue
            line = _first_line(a[split])
            if line is None:
                continue
            n = len(line.split())
            for key in ("word_column", "tag_column"):
                if not -n <= a[key] < n:
                    ok = False
                    shown = os.path.basename(a[split])
                    report(
                        "MissingColumn",
                        f"conll: {key}={a[key]}, but the lines of {shown} have {n} "
                        f"columns (0 to {n - 1}, or -1 to -{n} from the end)",
                        _arg_span(args, key, span),
                    )
    return ok
