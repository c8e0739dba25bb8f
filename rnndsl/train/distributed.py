"""Synchronous data parallelism over MPI (mpi4py + an MPI from PyPI, e.g. the `mpich` wheel).

Every rank builds the same global batch order (the seed decides it), takes its shard of each
batch, computes gradients on its own tape, and the gradients are summed with one allreduce of a
flat float buffer per step; each rank then applies the same update. Losses are divided by the
global batch's count (tokens or sequences), so the global batch size and the learning rate mean
what they mean in a one-process run. Collectives wait at most ``timeout`` seconds: a rank that
died makes the others stop with a message instead of hanging.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..autodiff import backend as Bk
from ..autodiff.tensor import RowSparse
from ..errors import RnnError


class DistributedError(RnnError):
    """A collective operation did not complete: another rank died or hangs."""


class LocalComm:
    """One process: every collective is the identity."""

    rank, size = 0, 1

    def allreduce_(self, buf: np.ndarray) -> np.ndarray:
        return buf

    def allgatherv(self, local: np.ndarray) -> np.ndarray:
        return local

    def bcast_str(self, s: str) -> str:
        return s

    def barrier(self) -> None:
        pass

    @property
    def is_root(self) -> bool:
        return True


class MpiComm:
    """MPI.COMM_WORLD with time-limited collectives (non-blocking calls polled to a deadline)."""

    def __init__(self, timeout: float = 300.0):
        from mpi4py import MPI  # optional dependency

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = float(timeout)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def _wait(self, req: Any, what: str) -> None:
        """Wait for a non-blocking collective, at most ``timeout`` seconds.

        MPI progresses a non-blocking collective only inside Test(), so the first half second
        polls without sleeping; after that the polls back off to at most 10 ms apart.
        """
        start = time.monotonic()
        spin_until = start + 0.5
        deadline = start + self.timeout
        delay = 1e-4
        while not req.Test():
            now = time.monotonic()
            if now < spin_until:
                continue
            if now > deadline:
                msg = (f"rank {self.rank}: {what} did not complete within {self.timeout:.0f} s; "
                       "another rank has probably died. Stopping all ranks.")
                print(msg, file=sys.stderr, flush=True)
                self.comm.Abort(3)
                raise DistributedError(msg)
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def allreduce_(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` over all ranks, in place."""
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        self._wait(req, "a gradient allreduce")
        return buf

    def allgatherv(self, local: np.ndarray) -> np.ndarray:
        """Every rank's rows of ``local`` (any count per rank), concatenated in rank order."""
        local = np.ascontiguousarray(local)
        counts = np.zeros(self.size, dtype=np.int64)
        self._wait(self.comm.Iallgather(np.array([local.shape[0]], dtype=np.int64), counts),
                   "a row-count exchange")
        row = int(np.prod(local.shape[1:])) if local.ndim > 1 else 1
        out = np.empty((int(counts.sum()),) + local.shape[1:], dtype=local.dtype)
        sizes = counts * row
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._wait(self.comm.Iallgatherv(local, [out, (sizes, offsets)]),
                   "a row-sparse gradient exchange")
        return out

    def bcast_str(self, s: str) -> str:
        data = np.frombuffer(s.encode("utf-8"), dtype=np.uint8).copy() if self.is_root else None
        n = np.array([0 if data is None else data.size], dtype=np.int64)
        self._wait(self.comm.Ibcast(n, root=0), "a broadcast")
        if data is None:
            data = np.empty(int(n[0]), dtype=np.uint8)
        self._wait(self.comm.Ibcast(data, root=0), "a broadcast")
        return data.tobytes().decode("utf-8")

    def barrier(self) -> None:
        self._wait(self.comm.Ibarrier(), "a barrier")


def get_comm(timeout: float | None = None) -> LocalComm | MpiComm:
    """The MPI communicator when launched by mpiexec with more than one rank, else LocalComm."""
    if not any(int(os.environ.get(k, "1") or 1) > 1 for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")) \
            and "PMIX_RANK" not in os.environ:
        return LocalComm()
    try:
        comm = MpiComm(timeout or float(os.environ.get("RNNDSL_MPI_TIMEOUT", "300")))
    except ImportError as e:
        raise RnnError("launched under MPI but mpi4py is not installed",
                       hint="pip install 'rnndsl[mpi]' (mpi4py and the mpich wheel)") from e
    return comm if comm.size > 1 else LocalComm()


def allreduce_grads(comm: Any, params: Mapping[str, Any], xp: Any) -> None:
    """Sum every parameter's gradient over the ranks.

    Dense gradients travel in one flat allreduce. A row-sparse gradient (an embedding) travels
    as its rows: each rank's (row index, values) pairs are gathered by every rank, so only the
    rows a batch used are sent, and the optimizer's lazy row update is the same as in one process.
    """
    if comm.size == 1:
        return
    names = sorted(params)
    parts: list[np.ndarray] = []
    dense_names = []
    for k in names:
        p = params[k]
        g = p.raw_grad
        if isinstance(g, RowSparse) or (g is None and getattr(p, "sparse_grad", False)):
            sp = g.coalesce() if g is not None else None
            idx = np.zeros(0, np.int64) if sp is None else Bk.to_host(sp.indices).astype(np.int64)
            val = np.zeros((0,) + tuple(p.shape[1:]), dtype=p.dtype) if sp is None \
                else Bk.to_host(sp.values)
            rows, vals = comm.allgatherv(idx), comm.allgatherv(val)
            p._grad = RowSparse(xp.asarray(rows), xp.asarray(vals), tuple(p.shape))
            p._grad_owned = False
            continue
        arr = np.zeros(p.shape, dtype=p.dtype) if g is None else Bk.to_host(g)
        parts.append(arr.reshape(-1).astype(np.float64 if p.dtype == np.float64 else np.float32))
        dense_names.append(k)
    if not parts:
        return
    flat = np.concatenate(parts)
    comm.allreduce_(flat)
    off = 0
    for k in dense_names:
        p = params[k]
        n = int(np.prod(p.shape))
        p._grad = xp.asarray(flat[off:off + n].reshape(p.shape).astype(p.dtype))
        p._grad_owned = True
        off += n


def launch(argv: Sequence[str], workers: int) -> int:
    """Re-run this command under ``mpiexec -n workers`` (the local case of --workers N)."""
    here = os.path.dirname(sys.executable)
    mpiexec = os.path.join(here, "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = shutil.which("mpiexec") or ""
    if not mpiexec:
        raise RnnError("--workers needs mpiexec, which was not found",
                       hint="pip install 'rnndsl[mpi]' (mpi4py and the mpich wheel)")
    cmd = [mpiexec, "-n", str(workers), sys.executable, "-m", "rnndsl.cli", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    import subprocess

    return subprocess.call(cmd, env=env)
