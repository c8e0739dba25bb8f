"""The layer op against PyTorch: the recurrent core alone, W1 against a sparse-gradient PyTorch,
and a BiGRU tagger.

    python benchmarks/bench_layer_op.py [--rounds 5] [--steps 5] [--threads 2] [--only core,w1s,gru]

core  the recurrent core: a 2-layer BiLSTM, batch 32, length 25, input 100, hidden 128, forward
      and backward of sum(seed * y), no embedding, head or optimizer; vs torch.nn.LSTM. Printed
      for the layer op (the default) and for the per-step tape (RNNDSL_LAYER_OP=0).
w1s   W1 (bench_speed.py) against PyTorch with a sparse embedding gradient and SparseAdam for
      the embedding (Adam for the rest), the like-for-like optimizer; beside it the dense-Adam
      PyTorch of bench_speed.py.
gru   a BiGRU tagger training step (W1's sizes, GRU reset-after cells) vs torch.nn.GRU.

Rounds alternate between the systems (common.settle before each); each line prints tokens/s
min / median / max, the ratio rnndsl / PyTorch per round (min / median / max), and each
system's share of the float32 GEMM peak measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
B, T, E, H, V, K = 32, 25, 100, 128, 20000, 17


def core_flops_per_token(d_in: int = E, layers: int = 2) -> int:
    flops = 0
    for _ in range(layers):
        flops += 2 * 2 * 4 * H * (d_in + H)  # two directions, input and recurrent products
        d_in = 2 * H
    return 3 * flops  # forward + two products backward


def tagger_flops_per_token(gates: int) -> int:
    flops, d_in = 0, E
    for _ in range(2):
        flops += 2 * 2 * gates * H * (d_in + H)
        d_in = 2 * H
    return 3 * (flops + 2 * d_in * K)


def build_core_rnndsl(layer_op: bool):
    import numpy as np

    from rnndsl.autodiff import backend as Bk
    from rnndsl.autodiff.tensor import Tensor
    from rnndsl.nn.cells import Cell
    from rnndsl.nn.layers import Init, Recurrent
    from rnndsl.nn.module import RunContext, SeqInfo, SeqValue

    init = Init(np.random.default_rng(0), Bk.get_backend("numpy"), np.dtype("float32"))
    layers = [Recurrent("l0", Cell("lstm"), E, H, True, init),
              Recurrent("l1", Cell("lstm"), 2 * H, H, True, init)]
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((T, B, E)).astype(np.float32))
    seed = Tensor(rng.standard_normal((T, B, 2 * H)).astype(np.float32))
    info = SeqInfo(np.full(B, T), T, np)
    flag = "1" if layer_op else "0"

    def step():
        os.environ["RNNDSL_LAYER_OP"] = flag
        for m in layers:
            for p in m.params.values():
                p.zero_grad()
        ctx = RunContext(train=True, rng=rng)
        v = SeqValue(x, info)
        for m in layers:
            v = m.forward(v, ctx)
        (v.data * seed).sum().backward()
        for m in layers:
            for p in m.params.values():
                p.raw_grad  # noqa: B018 - the deferred weight GEMMs run inside the step

    return step


def build_core_torch():
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(E, H, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, E)
    seed = torch.randn(T, B, 2 * H)

    def step():
        lstm.zero_grad()
        y, _ = lstm(x)
        y.backward(seed)

    return step


def build_sparse_torch():
    """W1 in PyTorch with a sparse embedding gradient and SparseAdam for it."""
    import torch

    sys.path.insert(0, HERE)
    import bench_speed

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E, sparse=True)
            self.rnn = torch.nn.LSTM(E, H, num_layers=2, bidirectional=True, batch_first=True)
            self.out = torch.nn.Linear(2 * H, K)

        def forward(self, x):
            return self.out(self.rnn(self.emb(x))[0])

    net = TorchNet()
    dense = [p for n, p in net.named_parameters() if not n.startswith("emb.")]
    opt_s = torch.optim.SparseAdam(list(net.emb.parameters()), lr=1e-3)
    opt_d = torch.optim.Adam(dense, lr=1e-3)
    ids, tags = bench_speed.batch("W1")
    tids, ttags = torch.tensor(ids), torch.tensor(tags)
    lossf = torch.nn.CrossEntropyLoss()

    def train():
        opt_s.zero_grad()
        opt_d.zero_grad()
        loss = lossf(net(tids).reshape(-1, K), ttags.reshape(-1))
        loss.backward()
        opt_s.step()
        opt_d.step()

    return train


def build_gru_rnndsl():
    import numpy as np

    sys.path.insert(0, HERE)
    import bench_speed
    from common import tagger_graph

    from rnndsl.nn.module import RunContext, SeqInfo, TokenValue
    from rnndsl.nn.network import Network
    from rnndsl.train.optim import Adam

    g = tagger_graph(V, E, H, 2, K, cell="gru")
    for n in g.nodes:
        if g.nodes[n]["kind"] == "rnn":
            g.nodes[n]["params"]["reset"] = "after"  # nn.GRU's form
    net = Network(g, {"d.words": V, "d.tags": K}, seed=0)
    ids, tags = bench_speed.batch("W1")
    ids_tm, tags_tm = ids.T.copy(), tags.T.copy()
    info = SeqInfo(np.full(B, T), T, np)
    valid = np.ones((T, B), dtype=bool)
    opt = Adam(net.named_parameters(), lr=1e-3)

    def train():
        ctx = RunContext(train=True, rng=np.random.default_rng(0))
        values = net.run({"words": TokenValue(ids_tm, info)}, ctx)
        loss = net.head.scored_loss(values["head"], tags_tm, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return train


def build_gru_torch():
    import torch

    sys.path.insert(0, HERE)
    import bench_speed

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            self.rnn = torch.nn.GRU(E, H, num_layers=2, bidirectional=True, batch_first=True)
            self.out = torch.nn.Linear(2 * H, K)

        def forward(self, x):
            return self.out(self.rnn(self.emb(x))[0])

    net = TorchNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ids, tags = bench_speed.batch("W1")
    tids, ttags = torch.tensor(ids), torch.tensor(tags)
    lossf = torch.nn.CrossEntropyLoss()

    def train():
        opt.zero_grad()
        lossf(net(tids).reshape(-1, K), ttags.reshape(-1)).backward()
        opt.step()

    return train


def rounds(fns: list, n_rounds: int, steps: int) -> list[list[float]]:
    """tokens/s of each function per round, the functions interleaved within every round."""
    sys.path.insert(0, HERE)
    from common import settle

    for f in fns:
        f()
        f()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(n_rounds):
        for f, r in zip(fns, out):
            settle()
            t = time.perf_counter()
            for _ in range(steps):
                f()
            r.append(steps * B * T / (time.perf_counter() - t))
    return out


def line(name: str, ours: list[float], theirs: list[float], flops: int, peak: float) -> str:
    rs = [a / b for a, b in zip(ours, theirs)]

    def f(xs):
        return f"{min(xs):,.0f} / {statistics.median(xs):,.0f} / {max(xs):,.0f} tok/s"

    share = (f"GEMM peak share rnndsl {statistics.median(ours) * flops / 1e9 / peak:.0%}, "
             f"pytorch {statistics.median(theirs) * flops / 1e9 / peak:.0%}")
    return (f"{name}  rnndsl {f(ours)} | pytorch {f(theirs)} | ratio rnndsl/pytorch min "
            f"{min(rs):.2f} / median {statistics.median(rs):.2f} / max {max(rs):.2f} | {share}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="core,w1s,gru")
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    import bench_speed

    bench_speed.setup_threads(args.threads)
    import torch
    from common import gemm_peak_gflops

    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    peak = gemm_peak_gflops()
    print(f"rnndsl layer op vs PyTorch {torch.__version__}, CPU, {args.threads} threads; "
          f"float32 GEMM peak (NumPy) {peak:.0f} GFLOP/s; {time.strftime('%Y-%m-%d')}")
    if "core" in only:
        op, per_step, theirs = rounds([build_core_rnndsl(True), build_core_rnndsl(False),
                                       build_core_torch()], args.rounds, args.steps)
        flops = core_flops_per_token()
        print(line("core 2xBiLSTM fwd+bwd, layer op ", op, theirs, flops, peak))
        print(line("core 2xBiLSTM fwd+bwd, per step ", per_step, theirs, flops, peak))
    if "w1s" in only:
        ours, _ = bench_speed.build_rnndsl("W1", False)
        dense, _ = bench_speed.build_torch("W1", False)
        ra, rs, rd = rounds([ours, build_sparse_torch(), dense], args.rounds, args.steps)
        flops = bench_speed.flops_per_token("W1")
        print(line("W1 vs SparseAdam PyTorch         ", ra, rs, flops, peak))
        print(line("W1 vs dense-Adam PyTorch         ", ra, rd, flops, peak))
    if "gru" in only:
        ra, rb = rounds([build_gru_rnndsl(), build_gru_torch()], args.rounds, args.steps)
        print(line("BiGRU tagger training            ", ra, rb, tagger_flops_per_token(3), peak))


if __name__ == "__main__":
    main()
