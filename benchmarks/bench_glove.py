"""Loading GloVe 6B 50d by name for a 20,000-word vocabulary: seconds and peak memory.

    .venv/bin/python benchmarks/bench_glove.py [--words 20000]

The vocabulary is the most frequent word types of SST-2's phrase-level train file and UD EWT's
train file (lower-cased, with their counts, so the token coverage is of that text), topped up
with numbered made-up words if they have fewer. The loader
memory-maps the 400,000 x 50 matrix and copies out the vocabulary's rows only, so the peak
memory is the word index (an Arrow string array) and the rows, not the 80 MB matrix. Printed:
wall seconds of `load_named` + `build_matrix`, the peak of Python allocations of a second
load (tracemalloc, NumPy's included; Arrow's own buffers are not traced) and the growth of the
process's peak resident set (which also counts the pages of the mapped file that were touched).
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

from rnndsl.data import Vocab, build_matrix, read_classification, read_conllu
from rnndsl.data.pretrained import load_named
from rnndsl.lang.catalogue import PRETRAINED_VECTORS

DATA = Path(__file__).resolve().parents[1] / "specs" / "data"


def vocabulary(n: int) -> Vocab:
    sents = [[w.lower() for w in ex.words]
             for ex in read_classification(DATA / "sst2" / "glue_train.tsv.gz", format="tsv")]
    sents += [[w.lower() for w in ex.words] for ex in read_conllu(DATA / "ewt" / "train.conllu.gz")]
    types = len({w for s in sents for w in s})
    if types < n:  # top up with made-up words, seen once
        sents.append([f"madeupword{i}" for i in range(n - types)])
    return Vocab.build(sents, max_size=n, specials=("<pad>", "<unk>"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=20_000)
    args = ap.parse_args()
    vocab = vocabulary(args.words)
    glove = PRETRAINED_VECTORS["glove-6b-50d"]
    import pyarrow.parquet  # noqa: F401 - the import (about 0.3 s) is not the loader's work

    def load() -> tuple[np.ndarray, object]:
        words, vecs = load_named(glove, vocab.tokens)
        return build_matrix(vocab, words, vecs, glove.dim, np.random.default_rng(0))

    gc.collect()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    matrix, report = load()
    secs = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()  # a second load under tracemalloc (which slows Python down) for the peak
    load()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"vocabulary: {len(vocab):,} types; {report}")
    print(f"matrix {matrix.shape} {matrix.dtype}: {matrix.nbytes / 2**20:.1f} MiB "
          f"(the whole GloVe matrix: {glove.count * glove.dim * 4 / 2**20:.1f} MiB)")
    print(f"load + build: {secs:.2f} s; peak Python allocations {peak / 2**20:.1f} MiB; "
          f"peak RSS grew by {(rss1 - rss0) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
