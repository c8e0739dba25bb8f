"""A data declaration read, encoded and cut into batches for the network.

``TaskData`` reads the train/dev files of one ``data`` statement with its reader, builds the
vocabularies (words, characters, tags or labels), and yields ``Batch`` objects whose inputs are
keyed like the IR's input nodes ("ewt.words", "ewt.chars") and whose targets fit the head.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from . import readers
from .batching import SpanIndex, TokenIds, bucket_batches, lm_segments, lm_stream
from .vocab import Vocab

PUNCT = set(string.punctuation) | {"--", "``", "''", "...", "-lrb-", "-rrb-", "…", "—", "–"}


def field_key(target: Any) -> tuple[str, str]:
    """('ewt', 'tags') from 'ewt.tags', ('ewt', 'tags') or an object with dataset/field."""
    if isinstance(target, str):
        ds, _, f = target.rpartition(".")
        return ds, f
    if isinstance(target, (tuple, list)):
        return str(target[0]), str(target[1])
    return str(target.dataset), str(target.field)


@dataclass
class Batch:
    """One batch of host arrays: inputs (TokenIds by field, a SpanIndex as "__spans__"),
    targets for the head, and which examples it holds. nn.batch.on_backend gives the same batch
    on the network's backend, its inputs wrapped as Network.run takes them."""

    inputs: dict[str, Any]
    targets: Any  # (T, B) per position, (B,) per sequence; int
    valid: Any  # (T, B) bool for per-position targets, else None
    lengths: np.ndarray
    indices: list[int]
    n_tokens: int
    inputs_mask: Any = None  # (T, B) bool: t < length[b]
    global_tokens: float = 0.0  # counts of the whole global batch, the divisors of a mean loss
    global_seqs: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def span_bounds(words: Sequence[str]) -> list[tuple[int, int]]:
    """Spans that end at punctuation (the punctuation closes its span); at least one span."""
    spans, start = [], 0
    for i, w in enumerate(words):
        if w in PUNCT or all(ch in string.punctuation for ch in w):
            spans.append((start, i + 1))
            start = i + 1
    if start < len(words):
        spans.append((start, len(words)))
    return spans or [(0, len(words))]


class TaskData:
    """Examples of one data statement, their vocabularies, and batching."""

    def __init__(self, name: str, reader: str, args: Mapping[str, Any],
                 vocabs: Mapping[str, Vocab] | None = None, read_train: bool = True,
                 limit: int | None = None):
        self.name = name
        self.reader = reader
        self.args = dict(args)
        self.kind = {"conllu": "tagging", "conll": "tagging", "text": "lm"}.get(reader,
                                                                               "classification")
        self.scheme = str(self.args.get("scheme", "none")) if reader == "conll" else "none"
        self.lowercase = bool(self.args.get("lowercase", False))
        # TweetEval's official metric ("macro_f1", or "f1" of label `positive`), from the
        # mapping.txt beside the last file read; None for other readers
        self.official_metric: str | None = None
        self.positive: str | None = None
        self.train: list[readers.Example] = []
        self.dev: list[readers.Example] = []
        self.test: list[readers.Example] = []  # scored once at the end, never for selection
        self.warnings: list[str] = []
        if read_train:
            self.train = self.subset(self.read_split("train"), limit)
            if self.args.get("dev") is not None or reader == "synthetic":
                self.dev = self.subset(self.read_split("dev"), limit)
            if self.args.get("test") is not None:
                self.test = self.subset(self.read_split("test"), limit)
        self.vocabs: dict[str, Vocab] = dict(vocabs) if vocabs else self.build_vocabs()
        if self.train and self.dev and self.kind != "lm":
            self.warnings += readers.check_labels(
                self.train, self.dev, "tags" if self.kind == "tagging" else "label")
        if self.train and self.test and self.kind != "lm":
            self.warnings += readers.check_labels(
                self.train, self.test, "tags" if self.kind == "tagging" else "label", "test")

    def subset(self, examples: list[readers.Example], limit: int | None
               ) -> list[readers.Example]:
        """``limit`` examples for a quick run: spread evenly over the file, in file order (files
        often come grouped by class, as rt-polarity's positives then negatives, and the first N
        would all share one label); a language model's text keeps its first N lines, which are
        one contiguous stretch."""
        if limit is None or limit >= len(examples):
            return examples
        if self.kind == "lm":
            return examples[:limit]
        n = len(examples)
        return [examples[k * n // limit] for k in range(limit)]

    # --- reading --------------------------------------------------------------------------------
    def read_split(self, split: str, path: Any = None) -> list[readers.Example]:
        a = self.args
        if self.reader == "synthetic":
            return synthetic_examples(a, split)
        src = path if path is not None else a.get(split)
        if src is None:
            raise DataError(f"data {self.name} has no {split} file")
        return self.read_file(src)

    def read_file(self, src: Any) -> list[readers.Example]:
        a = self.args
        enc = str(a.get("encoding", "utf-8"))
        if self.reader == "conllu":
            return readers.read_conllu(src, tags=str(a.get("tags", "upos")), encoding=enc)
        if self.reader == "conll":
            fc = a.get("feature_column")
            return readers.read_conll(src, word_column=int(a.get("word_column", 0)),
                                      tag_column=int(a.get("tag_column", -1)), encoding=enc,
                                      feature_column=None if fc is None else int(fc))
        if self.reader == "classification":
            return readers.read_classification(
                src, format=str(a.get("format", "lines")),
                label_column=str(a.get("label_column", "label")),
                text_column=str(a.get("text_column", "sentence")), encoding=enc,
                lowercase=self.lowercase)
        if self.reader == "tweeteval":
            from . import tweets  # noqa: PLC0415

            self.official_metric, self.positive = tweets.official_metric(
                tweets.read_mapping(tweets.mapping_path(src)))
            return tweets.read_tweeteval(src, tokenize=str(a.get("tokenize", "tweet")),
                                         lowercase=self.lowercase, encoding=enc)
        if self.reader == "labelled_files":
            paths = src if isinstance(src, (list, tuple)) else [src]
            return readers.read_labelled_files(list(paths), list(a.get("labels", [])),
                                               encoding=enc)
        if self.reader == "text":
            return readers.read_text(src, eos=a.get("eos", "<eos>"), encoding=enc,
                                     tokens=str(a.get("tokens", "words")))
        raise DataError(f"unknown reader {self.reader!r}")

    def raw_tokens(self, words: Sequence[str]) -> tuple[str, ...]:
        """Raw text (split on whitespace) tokenized as this data's reader tokenizes: TweetEval's
        tweet tokenizer re-splits it (the tokenizer never joins across spaces); else as is."""
        if self.reader == "tweeteval" and self.args.get("tokenize", "tweet") == "tweet":
            from .tweets import tokenize_tweet  # noqa: PLC0415

            return tokenize_tweet(" ".join(words), self.lowercase)
        return tuple(words)

    def build_vocabs(self) -> dict[str, Vocab]:
        if not self.train:
            raise DataError(f"data {self.name}: the training set is empty")
        words = [ex.words for ex in self.train]
        min_count = int(self.args.get("min_count", 1))
        specials = ("<pad>", "<unk>")
        v = {"words": Vocab.build(words, min_count=min_count, specials=specials,
                                  lowercase=self.lowercase),
             "chars": Vocab.build_chars(words, specials=specials)}
        if self.train[0].feats is not None:
            v["feats"] = Vocab.build([ex.feats or () for ex in self.train], specials=specials)
        if self.kind == "tagging":
            v["tags"] = Vocab.labels(ex.tags for ex in self.train)
        elif self.kind == "classification":
            v["labels"] = Vocab.labels(ex.label for ex in self.train)
        return v

    def sizes(self) -> dict[str, int]:
        out = {f"{self.name}.words": len(self.vocabs["words"]),
               f"{self.name}.chars": len(self.vocabs["chars"])}
        if "feats" in self.vocabs:
            out[f"{self.name}.feats"] = len(self.vocabs["feats"])
        if "tags" in self.vocabs:
            out[f"{self.name}.tags"] = len(self.vocabs["tags"])
        if "labels" in self.vocabs:
            out[f"{self.name}.labels"] = len(self.vocabs["labels"])
        if self.kind == "lm":
            out[f"{self.name}.next"] = len(self.vocabs["words"])
        return out

    def counts(self) -> dict[str, list[int]]:
        """Training count per id of each token field (0 for specials): frequency word dropout."""
        out = {}
        for key in ("words", "chars", "feats"):
            v = self.vocabs.get(key)
            if v is not None and v.counts is not None:
                out[f"{self.name}.{key}"] = [v.counts.get(t, 0) for t in v.tokens]
        return out

    def label_names(self) -> list[str]:
        key = "tags" if "tags" in self.vocabs else "labels" if "labels" in self.vocabs else "words"
        return self.vocabs[key].tokens

    # --- batching -------------------------------------------------------------------------------
    def batches(self, examples: Sequence[readers.Example], batch_size: int,
                rng: np.random.Generator | None, needs: set[str], rank: int = 0,
                size: int = 1, by_length: bool = False) -> list[Batch]:
        """Length-bucketed batches (shuffled with ``rng``; in order when rng is None, or with
        ``by_length`` longest first, for evaluation: each batch's ``indices`` say where its
        examples belong).

        With several ranks each global batch is cut into ``size`` shards and this rank gets its
        own; ``global_tokens`` / ``global_seqs`` still count the whole global batch, so a loss
        summed over the shard and divided by one of them averages over the global batch.
        """
        groups = bucket_batches([len(ex.words) for ex in examples], batch_size, rng,
                                by_length=by_length)
        out = []
        for g in groups:
            part = g if size == 1 else g[rank * len(g) // size:(rank + 1) * len(g) // size]
            b = self.make_batch(examples, part, needs) if part else None
            if b is None:
                b = Batch({}, None, None, np.zeros(0, np.int64), [], 0)
            b.global_tokens = float(sum(max(1, len(examples[i].words)) for i in g))
            b.global_seqs = float(len(g))
            out.append(b)
        return out

    def make_batch(self, examples: Sequence[readers.Example], idx: list[int],
                   needs: set[str]) -> Batch:
        """One batch of host arrays (nn.batch.on_backend puts it on the network's backend)."""
        # longest first: the recurrent steps then run on a shrinking prefix (packed sequences)
        idx = sorted(idx, key=lambda i: -len(examples[i].words))
        exs = [examples[i] for i in idx]
        lengths = np.array([max(1, len(ex.words)) for ex in exs], dtype=np.int64)
        T, B = int(lengths.max()), len(exs)
        wv = self.vocabs["words"]
        ids = np.zeros((T, B), dtype=np.int64)
        for b, ex in enumerate(exs):
            if ex.words:
                ids[: len(ex.words), b] = wv.encode(ex.words)
        words = TokenIds(ids, lengths)
        mask = np.arange(T)[:, None] < lengths[None, :]  # (T, B): t < length[b]
        inputs: dict[str, Any] = {f"{self.name}.words": words}
        if "chars" in needs:
            inputs[f"{self.name}.chars"] = self._chars(exs, words)
        if "feats" in needs:
            fv = self.vocabs["feats"]
            fid = np.zeros((T, B), dtype=np.int64)
            for b, ex in enumerate(exs):
                if ex.feats:
                    fid[: len(ex.feats), b] = fv.encode(ex.feats)
            inputs[f"{self.name}.feats"] = TokenIds(fid, lengths)
        if "spans" in needs:
            inputs["__spans__"] = self._spans(exs, B)
        targets, valid = None, None
        if self.kind == "tagging":
            tv = self.vocabs["tags"]
            tg = np.zeros((T, B), dtype=np.int64)
            for b, ex in enumerate(exs):
                if ex.tags:
                    tg[: len(ex.tags), b] = [tv.index(t) if t in tv else -1 for t in ex.tags]
            targets, valid = np.maximum(tg, 0), mask & (tg >= 0)
        elif self.kind == "classification":
            lv = self.vocabs["labels"]
            lab = np.array([lv.index(ex.label) if ex.label in lv else -1 for ex in exs])
            targets = np.maximum(lab, 0)
            valid = lab >= 0 if (lab < 0).any() else None
        return Batch(inputs, targets, valid, lengths, list(idx), int(lengths.sum()),
                     inputs_mask=mask)

    def _chars(self, exs: Sequence[readers.Example], outer: TokenIds) -> TokenIds:
        cv = self.vocabs["chars"]
        words, index = [], []
        B = outer.ids.shape[1]
        for b, ex in enumerate(exs):
            for t, w in enumerate(ex.words or ("",)):
                words.append(cv.encode(w) or [cv.unk_index or 0])
                index.append(t * B + b)
        order = sorted(range(len(words)), key=lambda i: -len(words[i]))  # longest first
        words = [words[i] for i in order]
        index = [index[i] for i in order]
        lens = np.array([len(c) for c in words], dtype=np.int64)
        Tc = int(lens.max())
        ids = np.zeros((Tc, len(words)), dtype=np.int64)
        for i, c in enumerate(words):
            ids[: len(c), i] = c
        return TokenIds(ids, lens, np.array(index, dtype=np.int64), outer)

    def _spans(self, exs: Sequence[readers.Example], B: int) -> SpanIndex:
        spans = [span_bounds(ex.words or ("",)) for ex in exs]
        n_spans = np.array([len(s) for s in spans], dtype=np.int64)
        L = max(e - s for sp in spans for s, e in sp)
        rows, lens, outer = [], [], []
        for b, sp in enumerate(spans):
            for k, (s, e) in enumerate(sp):
                r = [t * B + b for t in range(s, e)]
                rows.append(r + [r[0]] * (L - len(r)))
                lens.append(e - s)
                outer.append(k * B + b)
        # longest first, as for characters: the span encoder then runs packed
        order = np.argsort(-np.array(lens), kind="stable")
        index = np.array(rows, dtype=np.int64)[order].T  # (L, N)
        return SpanIndex(index, np.array(lens)[order], np.array(outer, dtype=np.int64)[order],
                         n_spans)

    # --- language models ------------------------------------------------------------------------
    def lm_ids(self, examples: Sequence[readers.Example]) -> np.ndarray:
        wv = self.vocabs["words"]
        return np.array([i for ex in examples for i in wv.encode(ex.words)], dtype=np.int64)

    def lm_batches(self, examples: Sequence[readers.Example], batch_size: int, bptt: int,
                   rank: int = 0, size: int = 1) -> list[Batch]:
        """Contiguous segments (Zaremba et al.): row b of segment k continues row b of k-1.

        With several ranks, each takes its own rows of every segment.
        """
        stream = lm_stream(self.lm_ids(examples), batch_size)
        lo, hi = rank * batch_size // size, (rank + 1) * batch_size // size
        stream = stream[lo:hi]
        out = []
        for inp, tgt in lm_segments(stream, bptt):
            L, B = inp.shape[1], inp.shape[0]
            words = TokenIds(np.ascontiguousarray(inp.T), np.full(B, L))
            out.append(Batch({f"{self.name}.words": words}, np.ascontiguousarray(tgt.T), None,
                             np.full(B, L), [], L * B, global_tokens=float(L * batch_size),
                             global_seqs=float(batch_size)))
        return out


def synthetic_examples(args: Mapping[str, Any], split: str) -> list[readers.Example]:
    """The long-dependency task: the label is the first token; n random distractors follow.

    Two classes (tokens 'A' and 'B'). first_token: ``vocab`` distractor types d0 ... d{vocab-1};
    first_symbol: the distractors are A and B too.
    """
    task = str(args.get("task", "first_token"))
    n = int(args.get("n", 20))
    vocab = int(args.get("vocab", 10))
    size = int(args.get("size", 2000))
    seed = int(args.get("seed", 0))
    if split == "dev":
        size = max(200, size // 5)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    out = []
    for i in range(size):
        first = "A" if rng.random() < 0.5 else "B"
        if task == "first_symbol":
            distractors = ["A" if k else "B" for k in rng.integers(0, 2, size=n)]
        else:
            distractors = [f"d{k}" for k in rng.integers(0, vocab, size=n)]
        out.append(readers.Example(tuple([first, *distractors]), label=first,
                                   source=f"<synthetic {split}>", line=i + 1))
    return out


__all__ = ["Batch", "TaskData", "field_key", "span_bounds", "synthetic_examples"]
