"""Does the cost grow linearly? W1 training time as batch and length double, and the tape's
memory as the sequence grows.

    python benchmarks/bench_scaling.py [--threads 2]

Prints the time of one training step (median of 5) for batch x length = 32x25, 64x25, 32x50 and
64x50, each relative to 32x25 (linear: 2x, 2x, 4x), and the peak traced memory of a forward and
backward pass for lengths 25, 50, 100 and 200 with its slope per token.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(args.threads)
    import numpy as np

    sys.path.insert(0, HERE)
    from common import tagger_graph

    from rnndsl.nn.module import RunContext, SeqInfo, TokenValue
    from rnndsl.nn.network import Network
    from rnndsl.train.optim import Adam

    V, K = 20000, 17
    net = Network(tagger_graph(V, 100, 128, 2, K), {"d.words": V, "d.tags": K}, seed=0)
    opt = Adam(net.named_parameters(), lr=1e-3)
    rng = np.random.default_rng(0)

    def step(B: int, T: int, train: bool = True) -> None:
        ids = rng.integers(2, V, size=(T, B))
        tags = rng.integers(0, K, size=(T, B))
        info = SeqInfo(np.full(B, T), T, np)
        values = net.run({"words": TokenValue(ids, info)}, RunContext(train=True, rng=rng))
        head = net.head
        loss = head.scored_loss(values["head"], tags, None)
        opt.zero_grad()
        loss.backward()
        if train:
            opt.step()

    shapes = [(32, 25), (64, 25), (32, 50), (64, 50)]
    times = {}
    for B, T in shapes:
        step(B, T)
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            step(B, T)
            ts.append(time.perf_counter() - t)
        times[B, T] = statistics.median(ts)
    base = times[32, 25]
    print(f"W1 step time, {args.threads} threads (linear growth: tokens x)")
    for (B, T), t in times.items():
        print(f"  batch {B:3d} x length {T:3d}: {1000 * t:7.1f} ms  = {t / base:4.2f}x "
              f"for {B * T / (32 * 25):.0f}x the tokens")
    print("tape memory of one forward + backward (batch 32), traced peak:")
    peaks = []
    for T in (25, 50, 100, 200):
        tracemalloc.start()
        step(32, T, train=False)
        peaks.append((T, tracemalloc.get_traced_memory()[1] / 2**20))
        tracemalloc.stop()
    for T, mb in peaks:
        print(f"  length {T:3d}: {mb:7.1f} MiB")
    (t0, m0), (t1, m1) = peaks[0], peaks[-1]
    slope = (m1 - m0) / (t1 - t0)
    print(f"  slope {slope:.2f} MiB per time step; intercept {m0 - slope * t0:.1f} MiB "
          f"(linear when the middle points lie on the line: "
          + ", ".join(f"{T}: {m:.1f} vs {m0 + slope * (T - t0):.1f}" for T, m in peaks[1:-1])
          + ")")


if __name__ == "__main__":
    main()
