"""Packaged word vectors: a named set (GloVe 6B 50d from the `glove` extra) loaded row by row.

A packaged set is a folder (the package's ``ROOT``) holding a ``.npy`` matrix with one row per
word and a Parquet index whose column lists the words in row order. The matrix is memory-mapped
(``np.load(mmap_mode="r", allow_pickle=False)``) and only the rows a vocabulary can use are
copied out, so loading GloVe for a 20,000-word vocabulary reads about 4 MB of the 80 MB matrix
(``benchmarks/bench_glove.py`` measures it). Nothing is unpickled and no code is run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

PathLike = str | os.PathLike


def package_root(module: str, name: str, install: str) -> Path:
    """The ``ROOT`` folder of the package that ships a vector set, or a DataError saying how to
    install it."""
    if importlib.util.find_spec(module) is None:
        raise DataError(
            f"the pretrained vectors '{name}' need the Python package '{module}', "
            "which is not installed",
            hint=f"install it: {install}",
        )
    mod = importlib.import_module(module)
    root = getattr(mod, "ROOT", None)
    if root is None:
        raise DataError(f"the package '{module}' has no ROOT folder (an unexpected version?)")
    return Path(root)


def _pyarrow() -> Any:
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional (the glove extra)
        import pyarrow.compute as pc  # noqa: PLC0415
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise DataError(
            "reading a packaged vector set's word index needs pyarrow, which is not installed",
            hint="install it: pip install pyarrow",
        ) from None
    return pa, pc, pq


def read_index(path: Path, column: str) -> Any:
    """The words of a Parquet index file, in row order, as one Arrow string array (400,000
    words stay out of Python's heap until the vocabulary's few are picked)."""
    pa, _, pq = _pyarrow()
    if not path.is_file():
        raise DataError(f"{path}: no such file", hint="is the vector package complete?")
    try:
        table = pq.read_table(path, columns=[column])
    except KeyError:
        raise DataError(f"{path}: no column '{column}' in the word index") from None
    except Exception as e:  # pyarrow raises its own ArrowInvalid / OSError for a broken file
        raise DataError(f"{path}: cannot read the word index ({e})") from None
    words = table.column(column).combine_chunks()
    if not pa.types.is_string(words.type) and not pa.types.is_large_string(words.type):
        raise DataError(f"{path}: column '{column}' holds {words.type}, expected words")
    if words.null_count:
        raise DataError(f"{path}: column '{column}' has {words.null_count} empty (null) rows")
    return words


def open_matrix(path: Path, rows: int) -> np.ndarray:
    """The vector matrix memory-mapped read-only; its shape is checked against the index."""
    if not path.is_file():
        raise DataError(f"{path}: no such file", hint="is the vector package complete?")
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy matrix ({e})") from None
    if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.dtype.kind != "f":
        raise DataError(
            f"{path}: a {matrix.dtype} array of shape {matrix.shape}, expected a float matrix "
            f"with one row for each of the {rows:,} words of the index"
        )
    return matrix


def wanted_rows(words: Any, vocabulary: Iterable[str], lowercase_fallback: bool = True
                ) -> np.ndarray:
    """The indices (ascending) of the rows `build_matrix` can use for these vocabulary tokens:
    the exact word and, with the lower-case fallback, every row whose lower case matches.
    ``words`` is an Arrow string array (`read_index`) or a list of str."""
    pa, pc, _ = _pyarrow()
    arr = words if isinstance(words, pa.Array) else pa.array(list(words), pa.string())
    exact = sorted(set(vocabulary))
    mask = pc.is_in(arr, value_set=pa.array(exact, pa.string()))
    if lowercase_fallback:
        folded = sorted({w.lower() for w in exact})
        mask = pc.or_(mask, pc.is_in(pc.utf8_lower(arr), value_set=pa.array(folded, pa.string())))
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).astype(np.int64)


def load_packaged(name: str, module: str, install: str, vectors: str, index: str, column: str,
                  vocabulary: Iterable[str], root: PathLike | None = None,
                  lowercase_fallback: bool = True) -> tuple[list[str], np.ndarray]:
    """The vectors of a packaged set for the words of a vocabulary: `(words, vectors (n, D))`.

    Only the rows `build_matrix` could use are read (in file order, so its "first match wins"
    rule sees the same order as in the whole file). ``root`` replaces the package's folder
    (tests use a tiny folder of the same layout).
    """
    folder = Path(root) if root is not None else package_root(module, name, install)
    words = read_index(folder / index, column)
    matrix = open_matrix(folder / vectors, len(words))
    rows = wanted_rows(words, vocabulary, lowercase_fallback)
    out = np.ascontiguousarray(matrix[rows], dtype=np.float32)
    picked = words.take(rows).to_pylist()
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        raise DataError(f"{folder / vectors}: the vector of {picked[bad[0]]!r} "
                        f"(row {rows[bad[0]]}) is not finite")
    return picked, out


def load_named(vectors_def: Any, vocabulary: Iterable[str], root: PathLike | None = None
               ) -> tuple[list[str], np.ndarray]:
    """`load_packaged` for an entry of the catalogue's ``PRETRAINED_VECTORS`` table."""
    d = vectors_def
    return load_packaged(d.name, d.module, d.install, d.vectors, d.index, d.column, vocabulary,
                         root=root)


__all__ = ["load_named", "load_packaged", "open_matrix", "package_root", "read_index",
           "wanted_rows"]
