"""Train the lecture's models and write the README's results table (dev figures, measured here).

    python examples/results_table.py [--only pos_tagger,chunking_bilstm_crf] [--out runs/results]

Each row trains one spec with `rnndsl run` (the exact command is printed in the table), reads
its final dev metric, and writes OUT/results.md with the date, the machine and the times.
Takes hours on 2 cores for all rows; --only picks some.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from rnndsl.run import run

ROOT = Path(__file__).resolve().parent.parent

# spec, extra `rnndsl run` flags, the metric, the published reference
ROWS = [
    ("pos_tagger", ["--epochs", "20"], "dev_accuracy",
     "UPOS 94.6-95.2 (Plank et al. 2016, word+char BiLSTM, UD 1.2)"),
    ("chunking_bilstm_crf", [], "dev_f1", "F1 94.46 test (Huang et al. 2015, BiLSTM-CRF)"),
    ("sentiment_sst2", [], "dev_accuracy", "87.5 test (Tai et al. 2015, BiLSTM, GloVe)"),
    ("rt_polarity", [], "dev_accuracy", "76.1 (Kim 2014, CNN-rand, 10-fold CV)"),
    ("hierarchical_sst2", [], "dev_accuracy", "flat BiLSTM row above (Li et al. 2015)"),
    ("char_pos_acceptor", [], "dev_accuracy", "86.1 (most frequent tag per word, dev)"),
    ("language_model_ptb", [], "dev_perplexity", "120.7 valid (Zaremba et al. 2014, small)"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="runs/results")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| model | dev | reference | training time | command |", "|---|---|---|---|---|"]
    for name, flags, metric, ref in ROWS:
        if only and name not in only:
            continue
        spec = ROOT / "specs" / f"{name}.rnn"
        epochs = int(flags[flags.index("--epochs") + 1]) if "--epochs" in flags else None
        t = time.time()
        final = run(spec, out=str(out / name), epochs=epochs, log=print)
        minutes = (time.time() - t) / 60
        cmd = " ".join(["rnndsl run", f"specs/{name}.rnn", *flags])
        lines.append(f"| {name} | {metric[4:]} {final[metric]:.2f} | {ref} | "
                     f"{minutes:.0f} min | `{cmd}` |")
        print(lines[-1], flush=True)
    head = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.node()} "
            f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}).\n\n")
    (out / "results.md").write_text(head + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
