"""Tiny datasets and specs written into a test's folder: a NER-style BIO tagger (train, dev,
test) and a 3-class classifier, seeded, small enough to train in a second."""

from __future__ import annotations

import random
from pathlib import Path

NAMES = {"PER": ["john", "mary", "ann smith", "bob"], "LOC": ["paris", "new york", "rome"],
         "ORG": ["acme corp", "un", "ibm"]}
FILLER = ["the", "met", "in", "visited", "said", "a", "man", "from", "today", "and"]


def ner_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sent: list[tuple[str, str]] = []
        for _ in range(rng.randint(2, 6)):
            if rng.random() < 0.4:
                kind = rng.choice(sorted(NAMES))
                for i, w in enumerate(rng.choice(NAMES[kind]).split()):
                    sent.append((w, f"{'B' if i == 0 else 'I'}-{kind}"))
            else:
                sent.append((rng.choice(FILLER), "O"))
        out.append(sent)
    return out


def write_conll(path: Path, sents: list[list[tuple[str, str]]]) -> Path:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sents))
    return path


CHAR_MODEL = ("w = embed(ner.words, d=8)\nc = embed(ner.chars, d=4) |> bilstm(d=4) |> last\n"
              "tagger = concat(w, c) |> bilstm(d=8) |> softmax(ner.tags)")


def ner_spec(tmp: Path, n_train: int = 60, epochs: int = 2, head: str = "softmax",
             extra_data: str = "", test: bool = True, model: str = "") -> Path:
    write_conll(tmp / "train.txt", ner_sentences(n_train, 1))
    write_conll(tmp / "dev.txt", ner_sentences(20, 2))
    write_conll(tmp / "test.txt", ner_sentences(20, 3))
    t = ', test="test.txt"' if test else ""
    spec = tmp / "ner.rnn"
    spec.write_text(
        f'data ner = conll(train="train.txt", dev="dev.txt"{t}, scheme=bio{extra_data})\n'
        + (model + "\n" if model else
           f"tagger = embed(ner.words, d=8) |> bilstm(d=8) |> {head}(ner.tags)\n")
        + f"train tagger on ner {{ optimizer = adam(lr=0.02); epochs = {epochs}; batch = 8; "
        "seed = 1 }\n")
    return spec


TOPICS = {"sport": ["goal", "match", "team", "score"], "food": ["pizza", "bread", "soup"],
          "tech": ["laptop", "code", "chip", "phone"]}


def classification_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        label = rng.choice(sorted(TOPICS))
        words = [rng.choice(TOPICS[label]) if rng.random() < 0.5 else rng.choice(FILLER)
                 for _ in range(rng.randint(3, 7))]
        lines.append(f"{label} {' '.join(words)}")
    return lines


def classifier_spec(tmp: Path, n_train: int = 90, epochs: int = 2, test: bool = True) -> Path:
    (tmp / "ctrain.txt").write_text("\n".join(classification_lines(n_train, 1)) + "\n")
    (tmp / "cdev.txt").write_text("\n".join(classification_lines(30, 2)) + "\n")
    (tmp / "ctest.txt").write_text("\n".join(classification_lines(30, 3)) + "\n")
    t = ', test="ctest.txt"' if test else ""
    spec = tmp / "topic.rnn"
    spec.write_text(
        f'data topic = classification(train="ctrain.txt", dev="cdev.txt"{t}, format=lines)\n'
        "clf = embed(topic.words, d=8) |> bigru(d=8) |> mean |> softmax(topic.labels)\n"
        f"train clf on topic {{ optimizer = adam(lr=0.02); epochs = {epochs}; batch = 8; "
        "seed = 1 }\n")
    return spec
