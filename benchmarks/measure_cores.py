"""Why the second core idles: (M1) two threads of small recurrent GEMMs at one OpenBLAS thread,
(M2) where a W1 training step's time goes (wall vs process CPU vs main-thread CPU).

    python benchmarks/measure_cores.py [--products 2000] [--steps 20]

M1: each thread runs `products` (32x128)@(128x512) float32 products (one step's recurrent GEMM
of a 128-unit LSTM at batch 32) with OpenBLAS limited to one thread; the combined rate of two
threads against one thread alone. M2: today's W1 step (bench_speed.build_rnndsl) with two
OpenBLAS threads; process CPU / wall above 1 is the second core's share.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def openblas():
    import numpy as np

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                                  "libscipy_openblas*.so"))
    lib = ctypes.CDLL(libs[0])
    return lib.scipy_openblas_set_num_threads64_, lib.scipy_openblas_get_num_threads64_


def m1(products: int) -> None:
    import numpy as np

    set_threads, get_threads = openblas()
    get_threads.restype = ctypes.c_int
    before = get_threads()
    set_threads(1)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 128)).astype(np.float32)
    w = rng.standard_normal((128, 512)).astype(np.float32)

    def work(out):
        c = np.empty((32, 512), np.float32)
        for _ in range(products):
            np.matmul(a, w, out=c)
        out.append(c)

    work([])
    flop = 2 * 32 * 128 * 512 * products
    t = time.perf_counter()
    work([])
    one = flop / (time.perf_counter() - t) / 1e9
    ths = [threading.Thread(target=work, args=([],)) for _ in range(2)]
    t = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    two = 2 * flop / (time.perf_counter() - t) / 1e9
    set_threads(before)
    print(f"M1 (32x128)@(128x512) float32, OpenBLAS 1 thread, {products} products per thread: "
          f"one thread {one:.1f} GFLOP/s, two threads together {two:.1f} GFLOP/s "
          f"({two / one:.2f}x)")


def m2(steps: int) -> None:
    sys.path.insert(0, HERE)
    import bench_speed

    train, _ = bench_speed.build_rnndsl("W1", False)
    for _ in range(3):
        train()
    w0, p0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(steps):
        train()
    w, p, m = (time.perf_counter() - w0, time.process_time() - p0, time.thread_time() - m0)
    per = 1e3 / steps
    print(f"M2 W1 step, 2 threads: wall {w * per:.1f} ms, process CPU {p * per:.1f} ms, "
          f"main-thread CPU {m * per:.1f} ms, other threads {(p - m) * per:.1f} ms "
          f"(process CPU / wall {p / w:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--only", default="M1,M2")
    args = ap.parse_args()
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = "2"
    if "M1" in args.only:
        m1(args.products)
    if "M2" in args.only:
        m2(args.steps)


if __name__ == "__main__":
    main()
