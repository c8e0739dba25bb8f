"""Shared pieces of the benchmarks: timing rounds, GEMM peak, and the W1 model in both systems."""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace as NS

import networkx as nx
import numpy as np

from rnndsl.autodiff.backend import tune_allocator

tune_allocator()  # as the `rnndsl` command does at start: the figures measure that set-up


def gemm_peak_gflops(n: int = 1024, reps: int = 5, dtype=np.float32, gpu: bool = False) -> float:
    """The float32 GEMM rate the ratios are read against: NumPy's on this machine, or CuPy's
    (n = 4096) on the GPU."""
    xp, sync = np, (lambda: None)
    if gpu:
        import cupy as xp  # optional

        n, sync = 4096, xp.cuda.Device().synchronize
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n)).astype(dtype))
    b = a.copy()
    a @ b
    sync()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


SETTLE_S = 0.3


def settle(seconds: float = SETTLE_S) -> None:
    """Let the other system's worker threads go idle before a timed round.

    After a call OpenBLAS's worker threads spin for about 0.1 s before they sleep (and OpenMP's
    for a while too); a round of the other system started at once shares the cores with them.
    Measured on W1: PyTorch's first step right after an rnndsl step took 141 ms, 70 ms after a
    pause of 0.1 s or more; rnndsl's after PyTorch 92 ms, 72 ms. A user runs one system at a
    time, so every timed round starts after this pause.
    """
    time.sleep(seconds)


def summarize(xs: list[float]) -> str:
    return f"min {min(xs):,.0f} / median {statistics.median(xs):,.0f} / max {max(xs):,.0f}"


def tagger_graph(vocab: int, emb: int, hidden: int, layers: int, tags: int,
                 cell: str = "lstm", bidirectional: bool = True,
                 head: str = "softmax") -> nx.DiGraph:
    """The IR of embed -> {bi}lstm x layers -> softmax/crf over tags, for benchmarks."""
    g = nx.DiGraph()
    g.add_node("words", kind="input", params={"dataset": "d", "field": "words"},
               out_type=NS(dim=0, depth=1))
    g.add_node("embed", kind="embed", params={"source": "d.words", "d": emb},
               out_type=NS(dim=emb, depth=1))
    g.add_edge("words", "embed", order=0)
    prev, d = "embed", emb
    for k in range(layers):
        n = f"rnn{k}"
        out = hidden * (2 if bidirectional else 1)
        g.add_node(n, kind="rnn", params={"cell": cell, "d": hidden,
                                          "bidirectional": bidirectional},
                   in_types=[NS(dim=d, depth=1)], out_type=NS(dim=out, depth=1))
        g.add_edge(prev, n, order=0)
        prev, d = n, out
    g.add_node("head", kind=head, params={"target": "d.tags"}, in_types=[NS(dim=d, depth=1)],
               out_type=NS(dim=tags, depth=1))
    g.add_edge(prev, "head", order=0)
    g.graph["output"] = "head"
    return g
