"""Peeking into the files a spec names (only the first line): vector sizes, column headers."""

from __future__ import annotations

import gzip

# ---------------------------------------------------------------------------------------------
# Peeking into files (only the first line): vector sizes and column headers


def _first_line(path: str, skip_blank: bool = True) -> str | None:
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as raw:
            for _ in range(1000):
                line = raw.readline(1 << 20)
                if not line:
                    return None
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
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
    header = len(parts) == 2 and all(p.isdigit() for p in parts)
    if fmt in ("word2vec", "word2vec-bin") or (fmt == "auto" and header):
        return int(parts[1]) if header else None
    return len(parts) - 1 if len(parts) > 1 else None
