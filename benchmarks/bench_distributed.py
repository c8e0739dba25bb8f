"""Data-parallel scaling: W1 (2 x BiLSTM tagger) and W3 (2 x LSTM language model) training
throughput with 1 and 2 MPI ranks, one BLAS thread per rank, on this machine.

    python benchmarks/bench_distributed.py [--steps 20]

The global batch is the same for both (32 sentences of 25 tokens for W1, 20 x 20 for W3); each
rank computes its shard and the gradients are summed by one allreduce per step. Prints tokens/s
for 1 and 2 ranks and the scaling efficiency (speed-up / ranks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(workload: str, steps: int) -> None:
    import numpy as np

    sys.path.insert(0, HERE)
    from common import tagger_graph

    from rnndsl.data.dataset import Batch
    from rnndsl.nn.module import RunContext, SeqInfo, TokenValue
    from rnndsl.nn.network import Network
    from rnndsl.train.distributed import allreduce_grads, get_comm
    from rnndsl.train.optim import SGD, Adam, clip_grad_norm

    comm = get_comm()
    if workload == "W1":
        V, K, B, T = 20000, 17, 32, 25
        g = tagger_graph(V, 100, 128, 2, K)
        opt_cls, kw = Adam, {"lr": 1e-3}
    else:
        V, K, B, T = 10000, 10000, 20, 20
        g = tagger_graph(V, 200, 200, 2, K, bidirectional=False)
        opt_cls, kw = SGD, {"lr": 1.0}
    net = Network(g, {"d.words": V, "d.tags": K}, seed=0)
    opt = opt_cls(net.named_parameters(), **kw)
    lo, hi = comm.rank * B // comm.size, (comm.rank + 1) * B // comm.size
    rng = np.random.default_rng(0)
    ids = rng.integers(2, V, size=(T, B))[:, lo:hi]
    tags = rng.integers(0, K, size=(T, B))[:, lo:hi]
    info = SeqInfo(np.full(hi - lo, T), T, np)
    batch = Batch({"d.words": TokenValue(ids, info)}, tags, None, np.full(hi - lo, T),
                  [], T * (hi - lo), global_tokens=float(T * B), global_seqs=float(B))

    def step():
        ctx = RunContext(train=True, rng=np.random.default_rng(0))
        values = net.run(batch.inputs, ctx)
        head = net.head
        loss = head.scored_loss(values["head"], batch.targets, None, "sum")
        opt.zero_grad()
        (loss / batch.global_tokens).backward()
        allreduce_grads(comm, opt.params, np)
        clip_grad_norm(opt.params, 5.0)
        opt.step()

    step()
    comm.barrier()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    comm.barrier()
    if comm.is_root:
        print(f"{steps * B * T / (time.perf_counter() - t):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--worker", choices=["W1", "W3"])
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    print(f"data-parallel scaling, {args.steps} steps, 1 BLAS thread per rank")
    for w in ("W1", "W3"):
        rates = {}
        for n in (1, 2):
            cmd = [mpiexec, "-n", str(n), sys.executable, __file__, "--worker", w, "--steps",
                   str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rates[n] = float(out.stdout.strip().splitlines()[-1])
        eff = rates[2] / rates[1] / 2
        print(f"  {w}: 1 rank {rates[1]:,.0f} tok/s, 2 ranks {rates[2]:,.0f} tok/s, "
              f"speed-up {rates[2] / rates[1]:.2f}x, efficiency {eff:.0%}")


if __name__ == "__main__":
    main()
