"""Rendering speed: a network unrolled over a 200-token input at the layer level, and the
pictures that used to hang Graphviz.

    python benchmarks/bench_render.py [--tokens 200] [--pipeline "..."] [--svg] [--cases-only]

Prints, for inputs of 50, 100 and 200 tokens (up to --tokens), drawn without folding: the time
of the tape (forward + backward with retain_graph), of the picture graph, of the DOT text, and
with --svg of Graphviz's layout and SVG, plus the node and edge counts (they grow linearly).
Then (needs Graphviz) the whole time to SVG of the budget cases: the cell level of
specs/deepmoji_sst2.rnn over 8 words (over 500 s inside dot before the edge budgets), the op
level of a 30-word S-RNN drawn unfolded (over 100 s), and the POS tagger with its character
chains at each level, with the notes each picture printed. No assertions: this measures, the
tests check.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import rnndsl
import rnndsl.render as R

WORDS = "the brown fox jumped over the lazy dog".split()
ROOT = Path(__file__).resolve().parents[1]
THIRTY = " ".join((WORDS * 4)[:30])

# (what, spec or pipeline, sentence, options of rnndsl.render.unrolled)
CASES = [
    (
        "deepmoji_sst2, cell, 8 words",
        "specs/deepmoji_sst2.rnn",
        " ".join(WORDS[:8]),
        {"level": "cell"},
    ),
    (
        "deepmoji_sst2, cell, 8 words, grad",
        "specs/deepmoji_sst2.rnn",
        " ".join(WORDS[:8]),
        {"level": "cell", "grad": True},
    ),
    ("S-RNN, op, 30 words, unfolded", "srnn(d=8) |> last", THIRTY, {"level": "op", "steps": 30}),
    (
        "S-RNN, op, 30 words, grad, unfolded",
        "srnn(d=8) |> last",
        THIRTY,
        {"level": "op", "steps": 30, "grad": True},
    ),
    (
        "pos_tagger, layer, 7 words, grad",
        "specs/pos_tagger.rnn",
        "the brown fox jumped , the dog",
        {"grad": True},
    ),
    (
        "pos_tagger, cell, 7 words, grad",
        "specs/pos_tagger.rnn",
        "the brown fox jumped , the dog",
        {"level": "cell", "grad": True},
    ),
    (
        "pos_tagger, cell, 7 words, expand 2",
        "specs/pos_tagger.rnn",
        "the brown fox jumped , the dog",
        {"level": "cell", "grad": True, "expand": [2]},
    ),
    (
        "pos_tagger, op, 7 words, grad",
        "specs/pos_tagger.rnn",
        "the brown fox jumped , the dog",
        {"level": "op", "grad": True},
    ),
    ("pos_tagger, layer, 30 words, grad", "specs/pos_tagger.rnn", THIRTY, {"grad": True}),
]


def budget_cases() -> None:
    """Each case from the spec to SVG: load (data, network) apart, then trace + graph + dot."""
    if not shutil.which("dot"):
        print("(no Graphviz: the budget cases need dot)")
        return
    print(f"\n{'case':<38} {'nodes':>6} {'edges':>6} {'load s':>7} {'draw s':>7} {'svg s':>7}")
    for name, what, words, options in CASES:
        spec = str(ROOT / what) if what.endswith(".rnn") else what
        t0 = time.perf_counter()
        target = R.load_target(spec)
        t1 = time.perf_counter()
        pic = R.unrolled(target.net, words, data=target.data, **options)
        t2 = time.perf_counter()
        pic.svg()
        t3 = time.perf_counter()
        G = pic.graph
        print(
            f"{name:<38} {G.number_of_nodes():>6} {G.number_of_edges():>6} {t1 - t0:>7.2f} "
            f"{t2 - t1:>7.2f} {t3 - t2:>7.2f}",
            flush=True,
        )
        for note in pic.notes:
            if "vocabulary" not in note:
                print(f"    note: {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--pipeline", default="bilstm(d=32) |> stack(2) |> softmax(10)")
    ap.add_argument("--svg", action="store_true", help="also lay out and draw with Graphviz")
    ap.add_argument("--cases-only", action="store_true", help="only the budget cases")
    args = ap.parse_args()
    if args.cases_only:
        budget_cases()
        return
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
    budget_cases()


if __name__ == "__main__":
    main()
