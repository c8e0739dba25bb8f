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

# spec, extra `rnndsl run` flags, the metric, the published reference; "@name" in the flags is
# the run directory of an earlier row (DeepMoji: pretrain once, then three ways to fine-tune)
ROWS = [
    ("pos_tagger", ["--epochs", "14"], "dev_accuracy",
     "UPOS 94.6-95.2 (Plank et al. 2016, word+char BiLSTM, UD 1.2)"),
    ("chunking_bilstm_crf", [], "dev_f1", "F1 94.46 test (Huang et al. 2015, BiLSTM-CRF)"),
    ("sentiment_sst2", [], "dev_accuracy", "87.5 test (Tai et al. 2015, BiLSTM, GloVe)"),
    ("rt_polarity", [], "dev_accuracy", "76.1 (Kim 2014, CNN-rand, 10-fold CV)"),
    ("hierarchical_sst2", [], "dev_accuracy", "the flat BiLSTM row below (Li et al. 2015)"),
    ("flat_sst2", [], "dev_accuracy", "the same data and training as hierarchical_sst2"),
    ("deepmoji_pretrain_ewt", [], "dev_accuracy", "source task for DeepMoji (UPOS, EWT)"),
    ("deepmoji_sst2", ["--no-chain-thaw"], "dev_accuracy", "DeepMoji from scratch"),
    ("deepmoji_sst2", ["--pretrained", "@deepmoji_pretrain_ewt", "--no-chain-thaw"],
     "dev_accuracy", "DeepMoji, pretrained encoder, full fine-tuning"),
    ("deepmoji_sst2", ["--pretrained", "@deepmoji_pretrain_ewt"], "dev_accuracy",
     "DeepMoji, pretrained encoder, chain-thaw (Felbo et al. 2017)"),
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
        pretrained = None
        if "--pretrained" in flags:
            pretrained = str(out / flags[flags.index("--pretrained") + 1].lstrip("@"))
        chain_thaw = False if "--no-chain-thaw" in flags else None
        tag = "-".join([name, *(f.lstrip("-@") for f in flags if f.startswith("--"))])
        t = time.time()
        final = run(spec, out=str(out / tag if flags and name.startswith("deepmoji_sst2")
                                  else out / name), epochs=epochs, log=print,
                    pretrained=pretrained, chain_thaw=chain_thaw)
        minutes = (time.time() - t) / 60
        cmd = " ".join(["rnndsl run", f"specs/{name}.rnn",
                        *(f"runs/{f[1:]}" if f.startswith("@") else f for f in flags)])
        lines.append(f"| {name} | {metric[4:]} {final[metric]:.2f} | {ref} | "
                     f"{minutes:.0f} min | `{cmd}` |")
        print(lines[-1], flush=True)
    head = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.node()} "
            f"({os.cpu_count()} cores, {platform.processor() or platform.machine()}).\n\n")
    (out / "results.md").write_text(head + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
