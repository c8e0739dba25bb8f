"""rnndsl against PyTorch (the reference only), workload by workload, measured side by side.

    python benchmarks/bench_speed.py [--rounds 5] [--threads 2] [--only W1,W3] [--gpu]

W1  tagger training step: vocab 20,000, embedding 100, 2 x BiLSTM 128 per direction, 17 tags,
    per-token softmax cross entropy, Adam; batch 32 x length 25.
W2  the same with a CRF output layer (PyTorch side: pytorch-crf), plus Viterbi decoding.
W3  language-model training step (Zaremba et al. small): vocab 10,000, 2 x LSTM 200, unroll 20,
    batch 20, full softmax, SGD.
W4  inference latency of one 20-token sentence through a 1-layer BiLSTM tagger.
W5  peak resident memory (RSS) of W1 and W3 training, each system in its own process.

Rounds alternate between the systems; each prints tokens/s (or ms) min / median / max and the
ratio rnndsl / PyTorch per round (min / median / max), and each system's share of the float32
GEMM peak measured in the same run. --gpu runs both on the GPU (CuPy vs CUDA PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def setup_threads(n: int) -> None:
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[k] = str(n)


def sizes(workload: str):
    """(V, E, H, K, B, T, layers, bidirectional, head) of a workload."""
    if workload in ("W1", "W2"):
        dims = (20000, 100, 128, 17, 32, 25, 2, True)
    elif workload == "W3":
        dims = (10000, 200, 200, 10000, 20, 20, 2, False)
    else:
        dims = (20000, 100, 128, 17, 1, 20, 1, True)
    return (*dims, "crf" if workload == "W2" else "softmax")


def batch(workload: str):
    import numpy as np

    V, E, H, K, B, T, layers, bi, head = sizes(workload)
    rng = np.random.default_rng(0)
    return rng.integers(2, V, size=(B, T)), rng.integers(0, K, size=(B, T))


def flops_per_token(workload: str) -> int:
    V, E, H, K, B, T, layers, bi, head = sizes(workload)
    flops, d_in = 0, E
    for _ in range(layers):
        flops += (2 if bi else 1) * 2 * 4 * H * (d_in + H)
        d_in = H * (2 if bi else 1)
    return 3 * (flops + 2 * d_in * K)  # forward + two products backward


def build_rnndsl(workload: str, gpu: bool):
    """(train step, decode) of rnndsl; imports no torch."""
    import numpy as np

    sys.path.insert(0, HERE)
    from common import tagger_graph

    from rnndsl.autodiff import no_grad
    from rnndsl.nn.module import RunContext, SeqInfo, TokenValue
    from rnndsl.nn.network import Network
    from rnndsl.train.optim import SGD, Adam

    V, E, H, K, B, T, layers, bi, head = sizes(workload)
    g = tagger_graph(V, E, H, layers, K, bidirectional=bi, head=head)
    net = Network(g, {"d.words": V, "d.tags": K}, seed=0, backend="cupy" if gpu else "numpy")
    xp = net.backend.xp
    ids, tags = batch(workload)
    ids_tm, tags_tm = xp.asarray(ids.T.copy()), xp.asarray(tags.T.copy())
    info = SeqInfo(np.full(B, T), T, xp)
    valid = xp.ones((T, B), dtype=bool)
    opt = SGD(net.named_parameters(), lr=1.0) if workload == "W3" else \
        Adam(net.named_parameters(), lr=1e-3)

    def sync():
        if gpu:
            xp.cuda.Device().synchronize()

    def train():
        ctx = RunContext(train=True, rng=np.random.default_rng(0))
        values = net.run({"words": TokenValue(ids_tm, info)}, ctx)
        h = net.head
        loss = h.scored_loss(values["head"], tags_tm, valid)  # as the training loop
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()

    def decode():
        with no_grad():
            values = net.run({"words": TokenValue(ids_tm, info)}, RunContext())
            h = net.head
            s = h.scores(values["head"])
            out = h.decode(s, valid) if head == "crf" else h.predict(s)
        sync()
        return out

    return train, decode


def build_torch(workload: str, gpu: bool):
    """(train step, decode) of PyTorch (pytorch-crf for W2); imports no rnndsl."""
    import torch

    V, E, H, K, B, T, layers, bi, head = sizes(workload)
    dev = "cuda" if gpu else "cpu"
    if gpu:  # float32 products on both sides: cuDNN would otherwise use TF32 on Ampere and later
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def sync():
        if gpu:
            torch.cuda.synchronize()

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            self.rnn = torch.nn.LSTM(E, H, num_layers=layers, bidirectional=bi,
                                     batch_first=True)
            self.out = torch.nn.Linear(H * (2 if bi else 1), K)

        def forward(self, x):
            return self.out(self.rnn(self.emb(x))[0])

    tnet = TorchNet().to(dev)
    topt = torch.optim.SGD(tnet.parameters(), lr=1.0) if workload == "W3" else \
        torch.optim.Adam(tnet.parameters(), lr=1e-3)
    ids, tags = batch(workload)
    tids, ttags = torch.tensor(ids, device=dev), torch.tensor(tags, device=dev)
    crf = None
    if head == "crf":
        from torchcrf import CRF  # pytorch-crf

        crf = CRF(K, batch_first=True).to(dev)
        topt.add_param_group({"params": crf.parameters()})
    lossf = torch.nn.CrossEntropyLoss()

    def train():
        topt.zero_grad()
        scores = tnet(tids)
        if crf is not None:
            loss = -crf(scores, ttags, reduction="mean")
        else:
            loss = lossf(scores.reshape(-1, K), ttags.reshape(-1))
        loss.backward()
        topt.step()
        sync()

    def decode():
        with torch.no_grad():
            scores = tnet(tids)
            out = crf.decode(scores) if crf is not None else scores.argmax(-1)
        sync()
        return out

    return train, decode


def build(workload: str, gpu: bool):
    """(ours_train, torch_train, ours_decode, torch_decode, tokens per step, FLOPs per token)."""
    ours_train, ours_decode = build_rnndsl(workload, gpu)
    torch_train, torch_decode = build_torch(workload, gpu)
    V, E, H, K, B, T, layers, bi, head = sizes(workload)
    return ours_train, torch_train, ours_decode, torch_decode, B * T, flops_per_token(workload)


def rounds(fa, fb, n_rounds: int, steps: int, tokens: int):
    from common import settle

    fa(), fb(), fa(), fb()
    ra, rb = [], []
    for _ in range(n_rounds):
        for f, r in ((fa, ra), (fb, rb)):
            settle()  # the other system's threads idle first (see common.settle)
            t = time.perf_counter()
            for _ in range(steps):
                f()
            r.append(steps * tokens / (time.perf_counter() - t))
    return ra, rb


def fmt(xs: list[float], unit: str = "tok/s") -> str:
    if unit == "ms":
        return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f} {unit}"
    return f"{min(xs):,.0f} / {statistics.median(xs):,.0f} / {max(xs):,.0f} {unit}"


def ratio_line(ra: list[float], rb: list[float], invert: bool = False) -> str:
    rs = [(b / a if invert else a / b) for a, b in zip(ra, rb)]
    return f"ratio rnndsl/pytorch min {min(rs):.2f} / median {statistics.median(rs):.2f} / " \
           f"max {max(rs):.2f}"


def peak_rss(workload: str, system: str, threads: int) -> float:
    """Peak RSS (MiB) of a fresh process doing 5 training steps of one system, as a user runs
    it: the rnndsl process never imports torch, the PyTorch process never imports rnndsl.

    VmHWM of the process itself: ru_maxrss would carry over the parent's size across exec.
    """
    fn = "build_rnndsl" if system == "rnndsl" else "build_torch"
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench_speed as b; "
            f"f = b.{fn}({workload!r}, False)[0]; [f() for _ in range(5)]; "
            "print([l.split()[1] for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')][0])")
    env = {**os.environ}
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="W1,W2,W3,W4,W5")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    setup_threads(args.threads)
    import torch

    sys.path.insert(0, HERE)
    from common import gemm_peak_gflops

    torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    peak = gemm_peak_gflops(gpu=args.gpu)
    where = "GPU (CuPy vs CUDA PyTorch)" if args.gpu else f"CPU, {args.threads} threads"
    print(f"rnndsl vs PyTorch {torch.__version__}, {where}; float32 GEMM peak "
          f"({'CuPy' if args.gpu else 'NumPy'}) "
          f"{peak:.0f} GFLOP/s; {time.strftime('%Y-%m-%d')}")
    results: dict = {"peak_gflops": peak, "threads": args.threads, "gpu": args.gpu}
    for w in ("W1", "W2", "W3"):
        if w not in only:
            continue
        if w == "W2":
            try:
                import torchcrf  # noqa: F401
            except ImportError:
                print("W2: skipped (pip install pytorch-crf for the PyTorch side)")
                continue
        ot, tt, od, td, tokens, flops = build(w, args.gpu)
        ra, rb = rounds(ot, tt, args.rounds, args.steps, tokens)
        share = (f"GEMM peak share rnndsl {statistics.median(ra) * flops / 1e9 / peak:.0%}, "
                 f"pytorch {statistics.median(rb) * flops / 1e9 / peak:.0%}")
        print(f"{w} training  rnndsl {fmt(ra)} | pytorch {fmt(rb)} | {ratio_line(ra, rb)} | "
              f"{share}")
        results[w] = {"rnndsl": ra, "pytorch": rb}
        if w == "W2":
            da, db = rounds(od, td, args.rounds, args.steps, tokens)
            print(f"W2 Viterbi  rnndsl {fmt(da)} | pytorch {fmt(db)} | {ratio_line(da, db)}")
            results["W2_decode"] = {"rnndsl": da, "pytorch": db}
    if "W4" in only:
        _, _, od, td, tokens, _ = build("W4", args.gpu)
        ra, rb = rounds(od, td, args.rounds, 20, 1)  # sentences per second
        ms_a = [1000 / r for r in ra]
        ms_b = [1000 / r for r in rb]
        print(f"W4 latency  rnndsl {fmt(ms_a, 'ms')} | pytorch {fmt(ms_b, 'ms')} | "
              f"{ratio_line(ms_a, ms_b, invert=True)} (higher = rnndsl faster)")
        results["W4_ms"] = {"rnndsl": ms_a, "pytorch": ms_b}
    if "W5" in only and not args.gpu:
        for w in ("W1", "W3"):
            a = peak_rss(w, "rnndsl", args.threads)
            b = peak_rss(w, "pytorch", args.threads)
            print(f"W5 peak RSS {w}: rnndsl {a:,.0f} MiB | pytorch {b:,.0f} MiB | "
                  f"ratio {a / b:.2f}")
            results[f"W5_{w}"] = {"rnndsl": a, "pytorch": b}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
