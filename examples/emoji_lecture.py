"""The lecture's DeepMoji picture: the emoji model's top-5 emojis for its seven sentences.

    python examples/emoji_lecture.py RUN_DIR [-o examples/figures/deepmoji_emoji_top5.png]
        [--attention 1 --attention-out examples/figures/deepmoji_emoji_attention.png]

RUN_DIR is a run of specs/deepmoji_emoji.rnn. Each sentence goes through the run's own tweet
tokenizer; the probabilities are the softmax over TweetEval's 20 emojis. The bars are labelled
with the emoji names of TweetEval's mapping.txt (matplotlib draws no colour emoji font). Prints
the same as a Markdown table; with --attention K also draws the attention weights over the
K-th sentence (0-based).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rnndsl.autodiff import backend as Bk
from rnndsl.autodiff.tensor import no_grad
from rnndsl.data.readers import Example
from rnndsl.data.tweets import read_mapping
from rnndsl.nn.module import RunContext
from rnndsl.run import load_run

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "I love mom's cooking",
    "I love how you never reply back..",
    "I love cruising with my homies",
    "I love messing with yo mind!!",
    "I love you and now you're just gone..",
    "This is shit",
    "This is the shit",
]


def scores(run_dir: str) -> tuple[list[str], np.ndarray, list[tuple[str, ...]], list[np.ndarray]]:
    """Label names, probabilities (7, 20), the tokens and the attention weights per sentence."""
    prep, _ = load_run(run_dir, log=lambda s: None)
    data, net = prep.data, prep.net
    examples = [Example(data.raw_tokens(s.split()), source="<lecture>", line=i + 1)
                for i, s in enumerate(SENTENCES)]
    probs = np.zeros((len(examples), len(data.label_names())))
    attn: list[np.ndarray] = [np.zeros(0)] * len(examples)
    with no_grad():
        for b in data.batches(examples, 64, net.backend.xp, None, prep.needs):
            ctx = RunContext(train=False)
            values = net.run(b.inputs, ctx)
            p = Bk.to_host(net.head.probabilities(net.head.scores(values[net.output])))
            w = next(iter(ctx.attention.values()), None)
            w = None if w is None else Bk.to_host(getattr(w, "data", w)).T  # (T, B) -> (B, T)
            for j, i in enumerate(b.indices):
                probs[i] = p[j]
                if w is not None:
                    attn[i] = w[j, : len(examples[i].words)]
    return data.label_names(), probs, [ex.words for ex in examples], attn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("-o", "--out", default=str(ROOT / "examples/figures/deepmoji_emoji_top5.png"))
    ap.add_argument("--attention", type=int, default=None)
    ap.add_argument("--attention-out",
                    default=str(ROOT / "examples/figures/deepmoji_emoji_attention.png"))
    args = ap.parse_args()
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names, probs, tokens, attn = scores(args.run_dir)
    glyph = {m.name: m.emoji for m in read_mapping(ROOT / "specs/data/tweeteval/emoji/mapping.txt")}
    fig, axes = plt.subplots(len(SENTENCES), 1, figsize=(7.5, 1.25 * len(SENTENCES)))
    print("| sentence | top 5 emojis (probability) |\n|---|---|")
    for ax, sent, p in zip(axes, SENTENCES, probs):
        top = np.argsort(-p)[:5]
        ax.barh(range(5)[::-1], p[top], color="#b15928")
        ax.set_yticks(range(5)[::-1], [names[k].replace("_", " ") for k in top], fontsize=7)
        ax.set_xlim(0, max(0.5, float(p[top[0]]) * 1.1))
        ax.set_title(sent, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
        for y, k in zip(range(5)[::-1], top):
            ax.text(p[k], y, f" {p[k]:.2f}", va="center", fontsize=7)
        print(f"| {sent} | " + ", ".join(f"{glyph.get(names[k], '')} {names[k]} {p[k]:.2f}"
                                        for k in top) + " |")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"\nwrote {args.out}", file=sys.stderr)
    if args.attention is not None:
        k = args.attention
        w, toks = attn[k], tokens[k]
        fig, ax = plt.subplots(figsize=(0.8 * len(toks) + 1, 2.2))
        ax.bar(range(len(toks)), w, color="#b15928")
        ax.set_xticks(range(len(toks)), toks, fontsize=9)
        ax.set_ylabel("attention weight")
        ax.set_title(f"attention over \"{SENTENCES[k]}\"", fontsize=9)
        for i, a in enumerate(w):
            ax.text(i, a, f"{a:.2f}", ha="center", va="bottom", fontsize=7)
        fig.tight_layout()
        fig.savefig(args.attention_out, dpi=110)
        plt.close(fig)
        print("attention: " + ", ".join(f"{t} {a:.3f}" for t, a in zip(toks, w)))
        print(f"wrote {args.attention_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
