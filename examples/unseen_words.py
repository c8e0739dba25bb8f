"""Accuracy of a trained tagger on all dev tokens and on dev words unseen in train, beside the
baseline "most frequent tag of the word in train, NOUN for unknown words" (the lecture's
char-level word acceptor, example 1).

    python examples/unseen_words.py RUN_DIR        # e.g. a run of specs/char_pos_acceptor.rnn
"""

from __future__ import annotations

import sys
from collections import Counter

from rnndsl.autodiff import no_grad
from rnndsl.nn.batch import on_backend
from rnndsl.nn.module import RunContext
from rnndsl.run import load_run
from rnndsl.train.loop import predict_batch


def main(run_dir: str) -> None:
    prep, _ = load_run(run_dir, log=lambda s: None)
    data, net = prep.data, prep.net
    train, dev = data.read_split("train"), data.read_split("dev")
    counts: dict[str, Counter] = {}
    for ex in train:
        for w, t in zip(ex.words, ex.tags):
            counts.setdefault(w, Counter())[t] += 1
    names = data.vocabs["tags"].tokens
    preds: list = [None] * len(dev)
    with no_grad():
        for b in data.batches(dev, 64, None, prep.needs):
            paths, _, _, _ = predict_batch(net, on_backend(b, net.backend.xp), RunContext())
            for j, i in enumerate(b.indices):
                preds[i] = paths[j]
    tally = {"all": [0, 0, 0], "unseen": [0, 0, 0]}  # model right, baseline right, tokens
    for ex, path in zip(dev, preds):
        for w, gold, k in zip(ex.words, ex.tags, path):
            base = counts[w].most_common(1)[0][0] if w in counts else "NOUN"
            for key in ("all", "unseen") if w not in counts else ("all",):
                tally[key][0] += names[k] == gold
                tally[key][1] += base == gold
                tally[key][2] += 1
    for key, (m, b, n) in tally.items():
        print(f"{key:7s} tokens: model {100 * m / n:.2f}  baseline {100 * b / n:.2f}  ({n:,})")


if __name__ == "__main__":
    main(sys.argv[1])
