"""Rendering speed: a network unrolled over a 200-token input at the layer level.

    python benchmarks/bench_render.py [--tokens 200] [--pipeline "..."] [--svg]

Prints, for inputs of 50, 100 and 200 tokens (up to --tokens), drawn without folding: the time
of the tape (forward + backward with retain_graph), of the picture graph, of the DOT text, and
with --svg of Graphviz's layout and SVG, plus the node and edge counts (they grow linearly). No
assertions: this measures, the tests check.
"""

from __future__ import annotations

import argparse
import shutil
import time

import rnndsl
import rnndsl.render as R

WORDS = "the brown fox jumped over the lazy dog".split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--pipeline", default="bilstm(d=32) |> stack(2) |> softmax(10)")
    ap.add_argument("--svg", action="store_true", help="also lay out and draw with Graphviz")
    args = ap.parse_args()
    net = rnndsl.compile(args.pipeline, input_dim=16, seed=0)
    print(f"{args.pipeline}, layer level, gradients on, no folding")
    print(
        f"{'tokens':>6} {'nodes':>6} {'edges':>6} {'tape s':>8} {'graph s':>8} {'dot s':>8}"
        + (f" {'svg s':>8}" if args.svg else "")
    )
    sizes = sorted({n for n in (50, 100, args.tokens) if n <= args.tokens})
    for n in sizes:
        words = (WORDS * (n // len(WORDS) + 1))[:n]
        t0 = time.perf_counter()
        tr = R.trace(net, words, grad=True)
        t1 = time.perf_counter()
        G = R.graph_of_trace(tr, "layer", steps=n)
        t2 = time.perf_counter()
        dg = R.to_graphviz(G)
        dg.source  # noqa: B018 - building the DOT text is what is timed
        t3 = time.perf_counter()
        row = (
            f"{n:>6} {G.number_of_nodes():>6} {G.number_of_edges():>6} {t1 - t0:>8.3f} "
            f"{t2 - t1:>8.3f} {t3 - t2:>8.3f}"
        )
        if args.svg and shutil.which("dot"):
            dg.pipe(format="svg", quiet=True)
            row += f" {time.perf_counter() - t3:>8.3f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
