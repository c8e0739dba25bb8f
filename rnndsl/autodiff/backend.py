"""Array backends: the one module that imports numpy and cupy.

A backend is an array namespace (``xp``) plus a few helpers that differ between NumPy and CuPy
(host transfer, scatter-add, random generators). Gradient code is written once against ``xp``;
it never branches on the backend.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy

from ..errors import BackendError

host = numpy  # host-side arrays for data readers and checkpoints

BACKEND_ENV = "RNNDSL_BACKEND"
MALLOC_ENV = "RNNDSL_MALLOC"  # "system" leaves the C allocator's settings alone


def tune_allocator() -> bool:
    """Let glibc keep freed large arrays for reuse instead of unmapping them.

    Every training step allocates the same large temporaries (a (20, 20, 10000) softmax is 16 MB);
    by default glibc serves blocks that size with mmap and returns them on free, so each step
    page-faults its memory in again (measured on W3: ~100k page faults per 10 steps, about 25% of
    the step time). Blocks up to 32 MB now come from the heap and freed memory is kept (peak RSS
    is unchanged: the same blocks are reused). Linux/glibc only; ``RNNDSL_MALLOC=system`` opts
    out. Returns whether the settings were applied. The `rnndsl` command calls it at start;
    importing rnndsl changes nothing.
    """
    if os.environ.get(MALLOC_ENV, "") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 32 << 20) == 1
    return bool(mallopt(m_trim_threshold, 1 << 30) == 1 and ok)


DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Backend:
    """An array namespace and the helpers that are not spelled the same in every namespace."""

    name: str
    xp: ModuleType

    def asarray(self, a: Any, dtype: Any = None) -> Any:
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
            import cupy  # optional dependency, imported on request only
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


def cuda_blas() -> ModuleType:
    """CuPy's thin cuBLAS bindings, for the GPU kernels that call cuBLAS directly
    (kernels/gpu.py); imported on request only."""
    from cupy_backends.cuda.libs import cublas  # optional dependency

    return cublas


def namespace_of(a: Any) -> ModuleType:
    """The array namespace an array belongs to (cupy for CuPy arrays, else numpy)."""
    if type(a) is numpy.ndarray:
        return numpy
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return numpy


def to_host(a: Any) -> numpy.ndarray:
    """Copy an array to a NumPy array (no copy when it already is one)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return numpy.asarray(a)


def is_array(a: Any) -> bool:
    return type(a) is numpy.ndarray or isinstance(a, numpy.ndarray) \
        or type(a).__module__.startswith("cupy")


def scatter_add(xp: ModuleType, target: Any, index: Any, values: Any) -> None:
    """target[index] += values, accumulating repeated indices (in place)."""
    if xp is numpy:
        numpy.add.at(target, index, values)
    else:
        import cupyx

        cupyx.scatter_add(target, index, values)


def scatter_add_rows(xp: ModuleType, target: Any, rows: Any, values: Any) -> None:
    """target[rows[i], :] += values[i, :] for a 2-D target, repeated rows accumulated.

    Sorting the rows and summing runs with ``add.reduceat`` is much faster in NumPy than
    ``add.at`` for the embedding-gradient case (many rows, repeated words).
    """
    if values.shape[0] == 0:
        return
    if xp is numpy:
        uniq, sums = sum_rows(rows, values)
        target[uniq] += sums
    else:
        scatter_add(xp, target, rows, values)


def sum_rows(rows: Any, values: Any) -> tuple[Any, Any]:
    """(unique rows, values summed per row) of host arrays rows (n,) and values (n, ...).

    One stable sort; the sums by the fused kernel for contiguous float32 values when Numba is
    there, else ``add.reduceat`` over the sorted runs.
    """
    order = numpy.argsort(rows, kind="stable")
    r = rows[order]
    new_run = numpy.empty(r.shape[0], dtype=bool)
    new_run[:1] = True
    numpy.not_equal(r[1:], r[:-1], out=new_run[1:])
    starts = numpy.flatnonzero(new_run)
    fused = fused_module("rnndsl.kernels.ops_cpu") \
        if values.dtype == numpy.float32 and values.flags.c_contiguous else None
    if fused is None:
        return r[starts], numpy.add.reduceat(values[order], starts, axis=0)
    out = numpy.zeros((starts.shape[0],) + values.shape[1:], dtype=values.dtype)
    run = numpy.cumsum(new_run) - 1
    fused.sum_runs(values.reshape(values.shape[0], -1), order, run,
                   out.reshape(out.shape[0], -1))
    return r[starts], out


def dtype_of(name: str | Any) -> Any:
    """numpy dtype for 'float32' / 'float64' (and pass through dtype objects)."""
    if isinstance(name, str) and name not in DTYPES:
        raise BackendError(f"unsupported dtype {name!r}", hint="use 'float32' or 'float64'")
    return numpy.dtype(name)


def host_rng(seed: Any) -> numpy.random.Generator:
    return numpy.random.default_rng(seed)


# --- optional fused host kernels (Numba) --------------------------------------------------------
FUSED_ENV = "RNNDSL_FUSED"  # "0" at start-up: the plain NumPy paths only
_fused_modules: dict[str, Any] = {}
_fused_on = os.environ.get(FUSED_ENV, "1") != "0"


def set_fused(on: bool) -> bool:
    """Switch the fused kernels on or off in a running process; returns the previous setting.
    (The switch is read once per kernel call; reading os.environ there cost 2 us per step.)"""
    global _fused_on
    before, _fused_on = _fused_on, bool(on)
    return before


def fused_module(name: str) -> Any:
    """An optional Numba kernel module, imported once; None when Numba is missing (the `fast`
    extra) or the kernels are off (RNNDSL_FUSED=0 at start-up, or set_fused(False))."""
    if not _fused_on:
        return None
    mod = _fused_modules.get(name, _fused_modules)
    if mod is _fused_modules:  # not tried yet
        try:
            mod = importlib.import_module(name)
        except ImportError:
            mod = None
        _fused_modules[name] = mod
    return mod


# --- threads for large elementwise work on the host ---------------------------------------------
THREADS_ENV = "RNNDSL_THREADS"
_POOL: Any = None
_POOL_SIZE = 0


def host_threads() -> int:
    """Threads for host elementwise work: RNNDSL_THREADS, else OPENBLAS/OMP_NUM_THREADS, else the
    cores this process may use."""
    for key in (THREADS_ENV, "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(key, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def row_blocks(n_rows: int, row_size: int, fn: Any, block: int = 16,
               min_elements: int = 1 << 20) -> None:
    """Call fn(lo, hi) over blocks of `block` rows, the blocks shared among host threads.

    NumPy runs one ufunc on one core and releases the GIL inside it, so a large elementwise
    job (the exp of a (400, 10000) softmax) split into row blocks runs on every core; blocks
    of a few rows also keep a chain of passes (max, subtract, exp, sum) inside the cache.
    Jobs under `min_elements` run inline: a thread hand-off costs more than it saves.
    """
    global _POOL, _POOL_SIZE
    starts = range(0, n_rows, block)
    threads = 1 if n_rows * row_size < min_elements or len(starts) < 2 else host_threads()
    if threads <= 1:
        for lo in starts:
            fn(lo, min(lo + block, n_rows))
        return
    starts = list(starts)
    if _POOL is None or _POOL_SIZE != threads:
        from concurrent.futures import ThreadPoolExecutor

        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL, _POOL_SIZE = ThreadPoolExecutor(threads, thread_name_prefix="rnndsl"), threads
    per = -(-len(starts) // threads)

    def run(chunk: list[int]) -> None:
        for lo in chunk:
            fn(lo, min(lo + block, n_rows))

    futures = [_POOL.submit(run, starts[k:k + per]) for k in range(per, len(starts), per)]
    run(starts[:per])  # this thread takes the first share
    for f in futures:
        f.result()
