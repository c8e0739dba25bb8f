"""Tiny data and specs for the run-directory tests: a char-encoder tagger, a CRF chunker, a
classifier with pretrained vectors, a word LM and a char LM, each trained for an epoch or two."""

from __future__ import annotations

import random
from pathlib import Path

DET = ["the", "a", "this"]
ADJ = ["brown", "quick", "lazy", "red"]
NOUN = ["fox", "dog", "team", "match", "cat"]
VERB = ["jumped", "won", "saw", "lost"]

SPECS = {
    "tagger": """
data ud = conllu(train="data/train.conllu", dev="data/dev.conllu", tags=upos)
words  = embed(ud.words, d=8)
chars  = embed(ud.chars, d=6) |> bilstm(d=5) |> last
tagger = concat(words, chars) |> bilstm(d=8) |> softmax(ud.tags)
train tagger on ud { optimizer = adam(lr=0.01); epochs = 2; batch = 8; seed = 1 }
""",
    "crf": """
data ch = conll(train="data/train.conll", dev="data/dev.conll", tag_column=2, scheme=bio)
tagger = embed(ch.words, d=8) |> bilstm(d=8) |> crf(ch.tags)
train tagger on ch { optimizer = adam(lr=0.01); epochs = 2; batch = 8; seed = 1 }
""",
    "classifier": """
data s = classification(train="data/train.txt", dev="data/dev.txt")
clf = embed(s.words, d=10, pretrained="data/vectors.txt") |> gru(d=8) |> mean |> softmax(s.labels)
train clf on s { optimizer = adam(lr=0.01); epochs = 2; batch = 8; seed = 1 }
""",
    "lm": """
data t = text(train="data/train.lm", dev="data/dev.lm")
lm = embed(t.words, d=8) |> lstm(d=12) |> softmax(t.next)
train lm on t { optimizer = adam(lr=0.01); epochs = 2; batch = 4; bptt = 6; seed = 1 }
""",
    "charlm": """
data t = text(train="data/train.lm", dev="data/dev.lm", tokens=chars)
lm = embed(t.words, d=8) |> lstm(d=16) |> softmax(t.next)
train lm on t { optimizer = adam(lr=0.01); epochs = 2; batch = 4; bptt = 10; seed = 1 }
""",
}


def sentences(n: int, seed: int) -> list[list[tuple[str, str, str]]]:
    """(word, UPOS, BIO chunk) triples of n little sentences."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = [(rng.choice(DET), "DET", "B-NP")]
        if rng.random() < 0.5:
            s.append((rng.choice(ADJ), "ADJ", "I-NP"))
        s.append((rng.choice(NOUN), "NOUN", "I-NP"))
        s.append((rng.choice(VERB), "VERB", "B-VP"))
        s += [(rng.choice(DET), "DET", "B-NP"), (rng.choice(NOUN), "NOUN", "I-NP")]
        out.append(s)
    return out


def write_data(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    vec_rng = random.Random(3)
    vocab = DET + ADJ + NOUN + VERB
    (folder / "vectors.txt").write_text("".join(
        w + " " + " ".join(f"{vec_rng.uniform(-1, 1):.4f}" for _ in range(10)) + "\n"
        for w in vocab[::2]))
    for split, n, seed in (("train", 40, 0), ("dev", 12, 1)):
        sents = sentences(n, seed)
        conllu = []
        for s in sents:
            for i, (w, t, _) in enumerate(s, 1):
                conllu.append(f"{i}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_")
            conllu.append("")
        (folder / f"{split}.conllu").write_text("\n".join(conllu) + "\n")
        conll = []
        for s in sents:
            conll += [f"{w} {t} {c}" for w, t, c in s] + [""]
        (folder / f"{split}.conll").write_text("\n".join(conll) + "\n")
        # label: does the sentence say "won"?
        cls = [f"{'pos' if any(w == 'won' for w, _, _ in s) else 'neg'}\t"
               + " ".join(w for w, _, _ in s) for s in sents]
        (folder / f"{split}.txt").write_text("\n".join(cls) + "\n")
        (folder / f"{split}.lm").write_text(
            "\n".join(" ".join(w for w, _, _ in s) for s in sents) + "\n")


def train_all(base: Path, kinds: tuple[str, ...] = tuple(SPECS)) -> dict[str, Path]:
    """Write the data and specs under base/ and train each spec; returns kind -> run dir."""
    from rnndsl.run import run

    write_data(base / "data")
    out = {}
    for kind in kinds:
        spec = base / f"{kind}.rnn"
        spec.write_text(SPECS[kind])
        run(spec, out=str(base / "runs" / kind), log=lambda s: None)
        out[kind] = base / "runs" / kind
    return out
