"""Training-step throughput of a 2-layer BiLSTM tagger: rnndsl vs PyTorch nn.LSTM, same run.

W1 shapes: vocabulary 20,000, embedding 100, 2 x BiLSTM(128 per direction), 17 tags, batch 32,
length 25, per-token softmax cross entropy, Adam. Rounds are interleaved; prints tokens/s
(min/median/max) for each system and the ratio rnndsl / PyTorch.

    python benchmarks/bench_layers.py [--rounds 7] [--steps 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=25)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch
    from common import gemm_peak_gflops, settle, summarize, tagger_graph

    from rnndsl.nn.module import RunContext, SeqInfo, TokenValue
    from rnndsl.nn.network import Network
    from rnndsl.train.optim import Adam

    torch.set_num_threads(args.threads)
    V, E, H, K, B, T = 20000, 100, 128, 17, args.batch, args.length
    rng = np.random.default_rng(0)
    ids = rng.integers(2, V, size=(B, T))
    tags = rng.integers(0, K, size=(B, T))

    net = Network(tagger_graph(V, E, H, 2, K), {"d.words": V, "d.tags": K}, seed=0)
    opt = Adam(net.named_parameters(), lr=1e-3)
    info = SeqInfo(np.full(B, T), T, np)
    ids_tm, tags_tm = np.ascontiguousarray(ids.T), np.ascontiguousarray(tags.T)

    def ours_step():
        ctx = RunContext(train=True, rng=np.random.default_rng(0))
        values = net.run({"words": TokenValue(ids_tm, info)}, ctx)
        head = net.head
        loss = head.scored_loss(values["head"], tags_tm, None)
        opt.zero_grad()
        loss.backward()
        opt.step()

    class TorchTagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, num_layers=2, bidirectional=True, batch_first=True)
            self.out = torch.nn.Linear(2 * H, K)

        def forward(self, x):
            return self.out(self.lstm(self.emb(x))[0])

    tnet = TorchTagger()
    topt = torch.optim.Adam(tnet.parameters(), lr=1e-3)
    tids, ttags = torch.tensor(ids), torch.tensor(tags)
    lossf = torch.nn.CrossEntropyLoss()

    def torch_step():
        topt.zero_grad()
        loss = lossf(tnet(tids).reshape(-1, K), ttags.reshape(-1))
        loss.backward()
        topt.step()

    def rate(fn) -> float:
        settle()  # the other system's threads idle first (see common.settle)
        t = time.perf_counter()
        for _ in range(args.steps):
            fn()
        return args.steps * B * T / (time.perf_counter() - t)

    for fn in (ours_step, torch_step):  # warm up
        fn()
        fn()
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(rate(ours_step))
        theirs.append(rate(torch_step))
    peak = gemm_peak_gflops()
    # forward+backward FLOPs per token: 3x the forward GEMMs of both layers and directions
    flops = 3 * 2 * (2 * (4 * H * (E + H)) + 2 * (4 * H * (2 * H + H))) + 3 * 2 * 2 * H * K
    ratios = [o / t for o, t in zip(ours, theirs)]
    print(f"W1 2xBiLSTM tagger training, batch {B}, length {T}, {args.threads} threads")
    print(f"  rnndsl   tokens/s: {summarize(ours)}  "
          f"({statistics.median(ours) * flops / 1e9 / peak:.0%} of GEMM peak {peak:.0f} GFLOP/s)")
    print(f"  pytorch  tokens/s: {summarize(theirs)}  "
          f"({statistics.median(theirs) * flops / 1e9 / peak:.0%} of GEMM peak)")
    print(f"  ratio rnndsl/pytorch: min {min(ratios):.2f} / median "
          f"{statistics.median(ratios):.2f} / max {max(ratios):.2f}")


if __name__ == "__main__":
    main()
