"""Pretrained word vectors: word2vec (text and C binary) and GloVe loaders, and the matrix builder.

The loaders only parse numbers; they never run code or unpickle. Each returns
`(words: list[str], vectors: float32 array (N, D))`. `build_matrix` lays the vectors out in a
Vocab's order and reports how much of the vocabulary they cover.
"""

from __future__ import annotations

import gzip
import mmap
import re
import zlib
from dataclasses import dataclass

import numpy as np

from .. import limits
from ..errors import DataError
from .readers import PathLike, iter_lines, open_binary
from .vocab import Vocab

_HEADER = re.compile(r"\s*(\d{1,18})\s+(\d{1,18})\s*")  # int() refuses 4,300+ digits
_FORMATS = ("auto", "word2vec", "word2vec-bin", "glove")


# ---------------------------------------------------------------------------------------------
# text formats


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _parse_row(path: PathLike, n: int, parts: list[str], dim: int) -> tuple[str, np.ndarray]:
    """Split one text line's fields into its word and its `dim` numbers."""
    if len(parts) < dim + 1:
        raise DataError(
            f"{path}:{n}: expected a word and {dim} numbers, found {len(parts) - 1} numbers",
            hint="every vector in a file has the same dimension",
        )
    k = len(parts) - dim  # a few GloVe entries are words with spaces (". . .")
    if k > 1 and any(_is_number(p) for p in parts[1:k]):
        raise DataError(
            f"{path}:{n}: expected a word and {dim} numbers, found {len(parts) - 1} numbers",
            hint="every vector in a file has the same dimension",
        )
    try:
        row = np.array(parts[k:], dtype=np.float32)
    except ValueError:
        j = next(j for j in range(k, len(parts)) if not _is_number(parts[j]))
        raise DataError(f"{path}:{n}: field {j + 1} {parts[j][:30]!r} is not a number") from None
    if not np.isfinite(row).all():
        raise DataError(f"{path}:{n}: the vector for {' '.join(parts[:k])!r} is not finite")
    return " ".join(parts[:k]), row


def _check_dim(path: PathLike, n: int, dim: int) -> None:
    """A vector dimension within ``limits.MAX_VECTOR_DIM``, before anything is allocated."""
    if dim > limits.MAX_VECTOR_DIM:
        raise DataError(
            f"{path}:{n}: "
            + limits.over("the vector dimension", dim, limits.MAX_VECTOR_DIM, "MAX_VECTOR_DIM"),
            hint="is this a vector file? (word2vec, GloVe: a few hundred numbers a word)",
        )


def _read_text_vectors(path: PathLike, encoding: str, header: bool) -> tuple[list[str], np.ndarray]:
    """Shared reader for word2vec text (header `N D`) and GloVe (no header)."""
    words: list[str] = []
    rows: list[np.ndarray] = []
    expected = dim = 0
    for n, line in iter_lines(path, encoding):
        if header and n == 1:
            m = _HEADER.fullmatch(line)
            if not m:
                raise DataError(
                    f"{path}:1: expected a header 'COUNT DIM' (two integers), found {line[:40]!r}",
                    hint="a GloVe file has no header: use format='glove'",
                )
            expected, dim = int(m.group(1)), int(m.group(2))
            _check_dim(path, 1, dim)
            continue
        body = line.rstrip(" ")
        if not body.strip():
            continue
        parts = body.split(" ")
        if not dim:
            dim = len(parts) - 1
            if dim < 1:
                raise DataError(f"{path}:{n}: a word with no numbers: {body[:40]!r}")
            _check_dim(path, n, dim)
        word, row = _parse_row(path, n, parts, dim)
        words.append(word)
        rows.append(row)
    if header and not dim:
        raise DataError(f"{path}: empty file, expected a header 'COUNT DIM'")
    if header and len(words) != expected:
        raise DataError(
            f"{path}: the header announces {expected} vectors, the file has {len(words)}",
            hint="the file may be truncated",
        )
    if not words:
        raise DataError(f"{path}: no vectors in the file")
    return words, np.stack(rows)


def load_word2vec_text(path: PathLike, encoding: str = "utf-8") -> tuple[list[str], np.ndarray]:
    """Load word2vec text vectors: a header `N D`, then `word v1 ... vD` per line."""
    return _read_text_vectors(path, encoding, header=True)


def load_glove(path: PathLike, encoding: str = "utf-8") -> tuple[list[str], np.ndarray]:
    """Load GloVe text vectors: `word v1 ... vD` per line, no header."""
    return _read_text_vectors(path, encoding, header=False)


# ---------------------------------------------------------------------------------------------
# the word2vec C binary format


def load_word2vec_binary(
    path: PathLike, encoding: str = "utf-8", unicode_errors: str = "strict"
) -> tuple[list[str], np.ndarray]:
    """Load word2vec's C binary format.

    Layout: an ASCII header `N D\\n`; then per entry the word's bytes, a space, D little-endian
    float32, and an optional `\\n`. Newlines before a word are skipped, as word2vec's reader does.
    """
    data: bytes | mmap.mmap
    with open_binary(path) as f:
        if isinstance(f, gzip.GzipFile):
            try:
                data = f.read(limits.max_data_bytes() + 1)
                if len(data) > limits.max_data_bytes():
                    raise DataError(f"{path}: " + limits.over(
                        "the size of the file (bytes, decompressed)", len(data),
                        limits.max_data_bytes(), "max_data_bytes", "RNNDSL_MAX_DATA_BYTES"))
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
        else:
            try:  # a mapping keeps multi-GB files (GoogleNews) out of memory
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                data = b""
    try:
        return _parse_binary(path, data, encoding, unicode_errors)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _parse_binary(
    path: PathLike, data: bytes | mmap.mmap, encoding: str, unicode_errors: str
) -> tuple[list[str], np.ndarray]:
    """Parse the bytes of a word2vec binary file."""
    end = data.find(b"\n")
    head = bytes(data[: end if end >= 0 else 60])
    m = _HEADER.fullmatch(head.decode("ascii", "replace"))
    if end < 0 or not m:
        raise DataError(
            f"{path}:1: expected a header 'COUNT DIM' (two integers), found {head[:40]!r}",
            hint="is this a text file? use format='word2vec' or 'glove'",
        )
    count, dim = int(m.group(1)), int(m.group(2))
    if dim < 1:
        raise DataError(f"{path}:1: dimension {dim} in the header")
    _check_dim(path, 1, dim)
    width = 4 * dim
    if count * (width + 2) > len(data) - end - 1:  # each entry: a word, ' ', D floats
        raise DataError(
            f"{path}:1: the header announces {count:,} vectors of {dim:,} numbers "
            f"(at least {count * (width + 2):,} bytes), but the file has {len(data):,} bytes",
            hint="the file is truncated, or its header is wrong",
        )
    words: list[str] = []
    vectors = np.empty((count, dim), dtype=np.float32)
    pos = end + 1
    for i in range(count):
        while pos < len(data) and data[pos : pos + 1] == b"\n":
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + width > len(data):
            raise DataError(
                f"{path}: entry {i + 1} of {count} (byte {pos}): the file ends inside it",
                hint="the file is truncated, or its header is wrong",
            )
        raw = bytes(data[pos:space])
        if not raw:
            raise DataError(f"{path}: entry {i + 1} of {count} (byte {pos}): empty word")
        try:
            words.append(raw.decode(encoding, unicode_errors))
        except UnicodeDecodeError:
            raise DataError(
                f"{path}: entry {i + 1} of {count} (byte {pos}): the word is not {encoding}",
                hint='pass unicode_errors="replace" to keep going',
            ) from None
        vectors[i] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        pos = space + 1 + width
    if bytes(data[pos:]).strip():
        raise DataError(
            f"{path}: data after the {count} entries the header announces (byte {pos})",
            hint="the header's count or dimension is wrong",
        )
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        raise DataError(f"{path}: entry {bad[0] + 1} ({words[bad[0]]!r}) has a non-finite value")
    return words, vectors


# ---------------------------------------------------------------------------------------------
# format detection


def sniff_format(path: PathLike) -> str:
    """Guess 'word2vec', 'word2vec-bin' or 'glove' from the first lines of a vector file."""
    with open_binary(path) as f:
        try:
            head = f.read(1 << 16)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    first, _, rest = head.partition(b"\n")
    m = _HEADER.fullmatch(first.decode("ascii", "replace"))
    if not m:
        return "glove"
    dim = int(m.group(2))
    second = rest.split(b"\n", 1)[0]
    try:
        parts = second.decode("utf-8").rstrip(" \r").split(" ")
    except UnicodeDecodeError:
        return "word2vec-bin"
    if len(parts) >= dim + 1 and all(_is_number(p) for p in parts[-dim:]):
        return "word2vec"
    return "word2vec-bin"


def load_vectors(
    path: PathLike, format: str = "auto", encoding: str = "utf-8"
) -> tuple[list[str], np.ndarray]:
    """Load pretrained vectors in any supported format; "auto" looks at the file's first lines.

    Auto-detection: a first line of two integers is a word2vec header; the format is text when
    the next line reads as a word and D numbers, binary otherwise. No header means GloVe.
    """
    if format not in _FORMATS:
        raise ValueError(f"format={format!r} is not one of {', '.join(map(repr, _FORMATS))}")
    if format == "auto":
        format = sniff_format(path)
    if format == "word2vec":
        return load_word2vec_text(path, encoding)
    if format == "word2vec-bin":
        return load_word2vec_binary(path, encoding)
    return load_glove(path, encoding)


# ---------------------------------------------------------------------------------------------
# the embedding matrix


@dataclass(frozen=True)
class CoverageReport:
    """How much of a vocabulary pretrained vectors cover (specials are not counted)."""

    found: int
    total: int
    coverage: float
    token_coverage: float | None = None
    by_lowercase: int = 0
    missing: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = (
            f"pretrained vectors cover {self.found:,} of {self.total:,} word types "
            f"({100 * self.coverage:.1f}%)"
        )
        if self.token_coverage is not None:
            text += f" and {100 * self.token_coverage:.1f}% of tokens"
        if self.by_lowercase:
            text += f"; {self.by_lowercase:,} found by lower case"
        return text


def build_matrix(
    vocab: Vocab,
    words: list[str],
    vectors: np.ndarray,
    dim: int,
    rng: np.random.Generator,
    lowercase_fallback: bool = True,
    counts: dict[str, int] | None = None,
    source: str = "",
) -> tuple[np.ndarray, CoverageReport]:
    """An embedding matrix (len(vocab), dim) float32 from pretrained vectors (N, dim).

    Every row is first drawn from uniform(-0.1, 0.1) with `rng` (so the random rows do not
    depend on coverage); rows of words found in `words` are then replaced by their vectors and
    the `<pad>` row is zeroed. Lookup: the exact word; then, with `lowercase_fallback`, the
    lower-cased word, then a case-insensitive match (the file's first, usually most frequent,
    casing). The first of duplicate words in the file wins. Token coverage uses `counts`, or the
    Vocab's own counts when it has them.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise ValueError(f"vectors of shape {vectors.shape} do not fit {len(words)} words")
    if vectors.shape[1] != dim:
        where = f"{source}: " if source else ""
        raise DataError(
            f"{where}pretrained vectors have dimension {vectors.shape[1]}, "
            f"but the embedding asks for {dim}",
            hint=f"set the embedding size to {vectors.shape[1]}, or use vectors of dimension {dim}",
        )
    exact: dict[str, int] = {}
    folded: dict[str, int] = {}
    for i, w in enumerate(words):
        exact.setdefault(w, i)
        if lowercase_fallback:
            folded.setdefault(w.lower(), i)
    matrix = rng.uniform(-0.1, 0.1, size=(len(vocab), dim)).astype(np.float32)
    counts = counts if counts is not None else vocab.counts
    n_special = len(vocab.specials)
    found = by_lower = 0
    hit_tokens = all_tokens = 0
    missing: list[str] = []
    for i, tok in enumerate(vocab.tokens):
        j = exact.get(tok)
        if j is None and lowercase_fallback:
            j = exact.get(tok.lower())
            if j is None:
                j = folded.get(tok.lower())
            if j is not None and i >= n_special:
                by_lower += 1
        if j is not None:
            matrix[i] = vectors[j]
        if i < n_special:
            continue
        c = counts.get(tok, 0) if counts is not None else 0
        all_tokens += c
        if j is not None:
            found += 1
            hit_tokens += c
        elif len(missing) < 10:
            missing.append(tok)
    if vocab.pad_index is not None:
        matrix[vocab.pad_index] = 0.0
    total = len(vocab) - n_special
    report = CoverageReport(
        found=found,
        total=total,
        coverage=found / total if total else 0.0,
        token_coverage=(hit_tokens / all_tokens) if counts is not None and all_tokens else None,
        by_lowercase=by_lower,
        missing=tuple(missing),
    )
    return matrix, report


__all__ = [
    "CoverageReport",
    "build_matrix",
    "load_glove",
    "load_vectors",
    "load_word2vec_binary",
    "load_word2vec_text",
    "sniff_format",
]
