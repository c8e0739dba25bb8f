"""CRF training (forward algorithm + backward) and Viterbi decoding: rnndsl vs pytorch-crf.

Same shapes for both (batch 32, length 25, 17 and 45 tags, float32, no constraints), both with
the same number of CPU threads (torch.set_num_threads and NumPy's BLAS; 2 by default), timed in
interleaved rounds; prints median tokens/s and the ratio rnndsl / pytorch-crf (above 1: rnndsl
is faster). "full" batches have every sequence at length 25, "mixed" batches lengths drawn from
5..25 (padding masked). pytorch-crf is the ``torchcrf`` package (``pip install pytorch-crf``);
without it the benchmark says so and stops. ``--gpu`` runs rnndsl on CuPy and pytorch-crf on
CUDA instead, synchronising both before reading the clock.

    .venv/bin/python benchmarks/bench_crf.py [--rounds 9] [--reps 20] [--threads 2] [--gpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from common import settle


def make_batch(np: Any, rng: Any, b: int, t: int, k: int, mixed: bool) -> dict[str, Any]:
    lengths = rng.integers(5, t + 1, b) if mixed else np.full(b, t)
    lengths[0] = t
    mask = np.arange(t)[None, :] < lengths[:, None]
    return {
        "em": rng.standard_normal((b, t, k)).astype(np.float32),
        "tags": np.where(mask, rng.integers(0, k, (b, t)), 0),
        "mask": mask,
        "tokens": int(lengths.sum()),
    }


def timed(fn: Callable[[], Any], reps: int, sync: Callable[[], Any]) -> float:
    sync()
    settle()  # the other system's threads idle first (see common.settle)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - start) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description="CRF training and decoding: rnndsl vs pytorch-crf")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2, help="torch threads = BLAS threads")
    ap.add_argument("--gpu", action="store_true", help="CuPy vs torch on CUDA")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS (imported below)

    from rnndsl.autodiff import Tensor
    from rnndsl.autodiff.backend import get_backend, to_host
    from rnndsl.autodiff.backend import host as np
    from rnndsl.nn.crf import CRF

    try:
        import torch
        import torchcrf
    except ImportError as e:
        raise SystemExit(f"needs torch and pytorch-crf (pip install pytorch-crf): {e}") from e
    torch.set_num_threads(args.threads)
    backend = get_backend("cupy" if args.gpu else "numpy")
    xp = backend.xp
    device = "cuda" if args.gpu else "cpu"

    def sync() -> None:
        if args.gpu:
            xp.cuda.Device().synchronize()
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    print(
        f"torch {torch.__version__} on {device} ({torch.get_num_threads()} threads), pytorch-crf "
        f"{torchcrf.__version__}, numpy {np.__version__}, rnndsl backend {backend.name}"
    )
    print(
        f"{'tags':>4} {'batch':>5} {'task':>6} | {'rnndsl tok/s':>13} {'pytorch-crf tok/s':>17} "
        f"| {'ratio':>5}"
    )
    for k in (17, 45):
        for mixed in (False, True):
            d = make_batch(np, rng, 32, 25, k, mixed)
            ours = CRF(k, rng=np.random.default_rng(1), dtype="float32", backend=backend)
            ref = torchcrf.CRF(k, batch_first=True).to(device)
            with torch.no_grad():
                for name, p in (
                    ("trans", ref.transitions),
                    ("start", ref.start_transitions),
                    ("end", ref.end_transitions),
                ):
                    p.copy_(torch.from_numpy(to_host(ours.parameters()[name].data)))
            em, tags, mask = (xp.asarray(d[n]) for n in ("em", "tags", "mask"))
            em_t = torch.from_numpy(d["em"]).to(device).requires_grad_(True)
            tags_t = torch.from_numpy(d["tags"]).to(device)
            mask_t = torch.from_numpy(d["mask"]).to(device)

            def ours_train() -> None:
                x = Tensor(em, requires_grad=True)
                for p in ours.parameters().values():
                    p.zero_grad()
                ours.nll(x, tags, mask, reduction="sum").backward()

            def ref_train() -> None:
                em_t.grad = None
                ref.zero_grad()
                (-ref(em_t, tags_t, mask_t, reduction="sum")).backward()

            def ours_decode() -> Any:
                return ours.decode(em, mask)

            def ref_decode() -> Any:
                with torch.no_grad():
                    return ref.decode(em_t, mask_t)

            # the same numbers first: NLL to float32 precision, identical best paths
            nll = float(to_host(ours.nll(Tensor(em), tags, mask, reduction="sum").data))
            with torch.no_grad():
                ref_nll = -float(ref(em_t, tags_t, mask_t, reduction="sum"))
            assert abs(nll - ref_nll) <= 1e-4 * abs(ref_nll), (nll, ref_nll)
            assert ours_decode() == ref_decode()

            for task, pair in (
                ("train", (ours_train, ref_train)),
                ("decode", (ours_decode, ref_decode)),
            ):
                times: dict[int, list[float]] = {0: [], 1: []}
                for fn in pair:  # warm-up
                    timed(fn, 2, sync)
                for r in range(args.rounds):
                    order = (0, 1) if r % 2 == 0 else (1, 0)
                    for i in order:
                        times[i].append(timed(pair[i], args.reps, sync))
                tok = [d["tokens"] / statistics.median(times[i]) for i in (0, 1)]
                label = "mixed" if mixed else "full"
                print(
                    f"{k:>4} {label:>5} {task:>6} | {tok[0]:>13,.0f} {tok[1]:>17,.0f} "
                    f"| {tok[0] / tok[1]:>5.2f}"
                )


if __name__ == "__main__":
    main()
