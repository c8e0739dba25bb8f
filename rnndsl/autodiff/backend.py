"""Array backends: the one module that imports numpy and cupy.

A backend is an array namespace (``xp``) plus a few helpers that differ between NumPy and CuPy
(host transfer, scatter-add, random generators). Gradient code is written once against ``xp``;
it never branches on the backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy

from ..errors import BackendError

host = numpy  # host-side arrays for data readers and checkpoints

BACKEND_ENV = "RNNDSL_BACKEND"
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """An array namespace and the helpers that are not spelled the same in every namespace."""

    name: str
    xp: ModuleType

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        if self.name == "cupy" and isinstance(a, numpy.ndarray):
            return self.xp.asarray(a, dtype=dtype)
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a: Any) -> numpy.ndarray:
        return to_host(a)

    def rng(self, seed: Any) -> Any:
        """A random generator on this backend, seeded by an int or a sequence of ints."""
        if self.name == "cupy":
            s = numpy.random.SeedSequence(seed).generate_state(1)[0]
            return self.xp.random.default_rng(int(s))
        return numpy.random.default_rng(seed)


def get_backend(name: str | None = None) -> Backend:
    """Return the backend called ``name``, or the one named by $RNNDSL_BACKEND, else NumPy."""
    name = (name or os.environ.get(BACKEND_ENV) or "numpy").lower()
    if name == "numpy":
        return Backend("numpy", numpy)
    if name == "cupy":
        try:
            import cupy  # noqa: PLC0415 - optional dependency, imported on request only
        except ImportError as e:
            raise BackendError(
                "the cupy backend was asked for but CuPy is not installed",
                hint="install the GPU extra: pip install 'rnndsl[gpu]' (needs an NVIDIA GPU)",
            ) from e
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDA raises its own error types
            raise BackendError(
                f"CuPy is installed but no GPU is usable: {e}",
                hint="use --backend numpy, or run on a machine with an NVIDIA GPU",
            ) from e
        return Backend("cupy", cupy)
    raise BackendError(f"unknown backend {name!r}", hint="choose 'numpy' or 'cupy'")


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        get_backend("cupy")
    except BackendError:
        return False
    return True


def namespace_of(a: Any) -> ModuleType:
    """The array namespace an array belongs to (cupy for CuPy arrays, else numpy)."""
    if type(a).__module__.startswith("cupy"):
        import cupy  # noqa: PLC0415

        return cupy
    return numpy


def to_host(a: Any) -> numpy.ndarray:
    """Copy an array to a NumPy array (no copy when it already is one)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return numpy.asarray(a)


def is_array(a: Any) -> bool:
    return isinstance(a, numpy.ndarray) or type(a).__module__.startswith("cupy")


def scatter_add(xp: ModuleType, target: Any, index: Any, values: Any) -> None:
    """target[index] += values, accumulating repeated indices (in place)."""
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, index, values)


def scatter_add_rows(xp: ModuleType, target: Any, rows: Any, values: Any) -> None:
    """target[rows[i], :] += values[i, :] for a 2-D target, repeated rows accumulated.

    Sorting the rows and summing runs with ``add.reduceat`` is much faster in NumPy than
    ``add.at`` for the embedding-gradient case (many rows, repeated words).
    """
    if values.shape[0] == 0:
        return
    if xp is numpy:
        order = numpy.argsort(rows, kind="stable")
        r = rows[order]
        starts = numpy.flatnonzero(numpy.r_[True, r[1:] != r[:-1]])
        sums = numpy.add.reduceat(values[order], starts, axis=0)
        target[r[starts]] += sums
    else:
        scatter_add(xp, target, rows, values)


def dtype_of(name: str | Any) -> Any:
    """numpy dtype for 'float32' / 'float64' (and pass through dtype objects)."""
    if isinstance(name, str):
        if name not in DTYPES:
            raise BackendError(f"unsupported dtype {name!r}", hint="use 'float32' or 'float64'")
        return numpy.dtype(name)
    return numpy.dtype(name)


def host_rng(seed: Any) -> numpy.random.Generator:
    return numpy.random.default_rng(seed)
