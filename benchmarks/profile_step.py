"""Where one rnndsl training step's host time goes: cProfile over a few steps of a workload.

    python benchmarks/profile_step.py [W1|W2|W3] [--steps 20] [--gpu] [--top 30]

On a GPU the host time is the story (kernel launches are asynchronous): the printout shows
which Python functions and CuPy calls a step spends it in. rnndsl only; imports no torch.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", nargs="?", default="W1")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    import bench_speed

    train, _ = bench_speed.build_rnndsl(args.workload, args.gpu)
    for _ in range(3):
        train()
    t = time.perf_counter()
    for _ in range(args.steps):
        train()
    per_step = (time.perf_counter() - t) / args.steps
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.steps):
        train()
    prof.disable()
    print(f"{args.workload} {'GPU' if args.gpu else 'CPU'}: {per_step * 1e3:.1f} ms per step "
          f"unprofiled, {args.steps} profiled steps below")
    stats = pstats.Stats(prof).strip_dirs()
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
