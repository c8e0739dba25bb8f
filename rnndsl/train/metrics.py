"""Evaluation metrics: accuracy, chunk (span) F1 with conlleval semantics, perplexity.

`span_f1` reproduces conlleval.pl (CoNLL-2000 shared task, Erik Tjong Kim Sang, version
2004-01-26) line by line: the tag `B-NP` splits at its first hyphen into prefix `B` and type `NP`
(a tag without a hyphen is its own prefix with type ""); `endOfChunk` and `startOfChunk` decide,
from the previous and the current (prefix, type), whether a chunk ended or started between two
words; a gold and a predicted chunk count as correct when they start together with the same type
and end together. Sentences are separated as conlleval separates them at a blank line: by a step
with both tags `O` that is not counted as a token.

conlleval.pl's rules, mirrored in `_END` / `_START` and `_end_of_chunk` / `_start_of_chunk`:

    endOfChunk:   (B,B) (B,O) (I,B) (I,O) (E,E) (E,I) (E,O);
                  any prev other than O and "." whose type differs from the current type;
                  prev "[" or "]" (bracket chunks have length 1).
    startOfChunk: (B,B) (I,B) (O,B) (O,I) (E,E) (E,I) (O,E);
                  any current tag other than O and "." whose type differs from the previous type;
                  current "[" or "]".

So an I-X after O, or after a chunk of another type, starts a chunk (an I- without B- is a
chunk); a type change ends a chunk; B-X B-X are two chunks; E-X closes a chunk (IOE schemes).
This covers IOB1, IOB2 ("bio") and IOE1/IOE2, which is why "bio" and "iob1" decode the same.
conlleval.pl has no S- rules and no (E,B) rule; scheme="iobes" adds those of the widely used
IOBES variant of conlleval.pl: end after S- always and before B-/S-; start at B- and S- after
anything, and at I-/E- after S-. On tags without E- and S- all schemes agree.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError

_END = frozenset(
    {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
)
_START = frozenset(
    {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
)
_IOBES_END = _END | {
    ("B", "S"), ("I", "S"), ("E", "S"), ("E", "B"),
    ("S", "E"), ("S", "I"), ("S", "O"), ("S", "S"), ("S", "B"),
}  # fmt: skip
_IOBES_START = _START | {
    ("S", "B"), ("E", "B"), ("B", "S"), ("I", "S"), ("O", "S"),
    ("S", "S"), ("E", "S"), ("S", "I"), ("S", "E"),
}  # fmt: skip
_SCHEMES = {
    "bio": (_END, _START),
    "iob1": (_END, _START),
    "iobes": (_IOBES_END, _IOBES_START),
}


def _rules(scheme: str) -> tuple[frozenset, frozenset]:
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme={scheme!r} is not one of {', '.join(map(repr, _SCHEMES))}")
    return _SCHEMES[scheme]


def _split(tag: str) -> tuple[str, str]:
    """Prefix and type of a tag, as conlleval's /^([^-]*)-(.*)$/ splits it."""
    prefix, hyphen, kind = tag.partition("-")
    if not hyphen:
        return tag, ""
    # conlleval's `$type ? $type : ""`: Perl reads the type "0" as false
    return prefix, "" if kind == "0" else kind


def _end_of_chunk(prev: str, tag: str, prev_type: str, kind: str, rules: frozenset) -> bool:
    """conlleval's endOfChunk: did a chunk end between the previous and the current word?"""
    return (
        (prev, tag) in rules
        or (prev != "O" and prev != "." and prev_type != kind)
        or prev in ("[", "]")
    )


def _start_of_chunk(prev: str, tag: str, prev_type: str, kind: str, rules: frozenset) -> bool:
    """conlleval's startOfChunk: did a chunk start between the previous and the current word?"""
    return (
        (prev, tag) in rules
        or (tag != "O" and tag != "." and prev_type != kind)
        or tag in ("[", "]")
    )


def spans(tags: Sequence[str], scheme: str = "bio") -> list[tuple[str, int, int]]:
    """The chunks of one tag sequence as (type, start, end), end exclusive, in conlleval's sense."""
    end_rules, start_rules = _rules(scheme)
    out: list[tuple[str, int, int]] = []
    open_at: int | None = None
    open_type = ""
    prev, prev_type = "O", ""
    for i, tag in enumerate([*tags, "O"]):  # the trailing O is the sentence boundary
        cur, kind = _split(tag)
        if open_at is not None and _end_of_chunk(prev, cur, prev_type, kind, end_rules):
            out.append((open_type, open_at, i))
            open_at = None
        if _start_of_chunk(prev, cur, prev_type, kind, start_rules):
            if open_at is not None:  # a start without an end: only bracket tags get here
                out.append((open_type, open_at, i))
            open_at, open_type = i, kind
        prev, prev_type = cur, kind
    if open_at is not None:  # a chunk the boundary does not end (type "" tags)
        out.append((open_type, open_at, len(tags)))
    return out


@dataclass(frozen=True)
class TypeScores:
    """Precision, recall and F1 (percent, as conlleval prints them) for one chunk type."""

    precision: float
    recall: float
    f1: float
    found_gold: int
    found_pred: int
    correct: int


@dataclass(frozen=True)
class SpanScores:
    """conlleval's numbers: overall and per-type precision / recall / FB1 in percent."""

    precision: float
    recall: float
    f1: float
    found_gold: int
    found_pred: int
    correct: int
    accuracy: float
    n_tokens: int
    correct_tags: int
    per_type: dict[str, TypeScores]

    def table(self) -> str:
        """The report in conlleval.pl's layout."""
        lines = [
            f"processed {self.n_tokens} tokens with {self.found_gold} phrases; "
            f"found: {self.found_pred} phrases; correct: {self.correct}."
        ]
        if self.n_tokens > 0:
            lines.append(
                f"accuracy: {self.accuracy:6.2f}%; precision: {self.precision:6.2f}%; "
                f"recall: {self.recall:6.2f}%; FB1: {self.f1:6.2f}"
            )
        for kind in sorted(self.per_type):
            s = self.per_type[kind]
            lines.append(
                f"{kind:>17}: precision: {s.precision:6.2f}%; recall: {s.recall:6.2f}%; "
                f"FB1: {s.f1:6.2f}  {s.found_pred}"
            )
        return "\n".join(lines)


def _prf(correct: int, found_pred: int, found_gold: int) -> tuple[float, float, float]:
    """Precision, recall, F1 in percent, 0 where undefined (as conlleval)."""
    p = 100 * correct / found_pred if found_pred > 0 else 0.0
    r = 100 * correct / found_gold if found_gold > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


class _Conlleval:
    """The state of conlleval.pl's main loop; `step` is one input line."""

    def __init__(self, scheme: str):
        self.end_rules, self.start_rules = _rules(scheme)
        self.in_correct = False
        self.last_correct, self.last_correct_type = "O", ""
        self.last_guessed, self.last_guessed_type = "O", ""
        self.correct_chunk: Counter[str] = Counter()
        self.found_correct: Counter[str] = Counter()
        self.found_guessed: Counter[str] = Counter()
        self.correct_tags = self.tokens = 0

    def step(self, gold: str, pred: str, is_token: bool = True) -> None:
        """Process one word (or, with is_token=False, a sentence boundary)."""
        correct, correct_type = _split(gold)
        guessed, guessed_type = _split(pred)
        lc, lct = self.last_correct, self.last_correct_type
        lg, lgt = self.last_guessed, self.last_guessed_type
        if self.in_correct:
            end_c = _end_of_chunk(lc, correct, lct, correct_type, self.end_rules)
            end_g = _end_of_chunk(lg, guessed, lgt, guessed_type, self.end_rules)
            if end_c and end_g and lgt == lct:
                self.in_correct = False
                self.correct_chunk[lct] += 1
            elif end_c != end_g or guessed_type != correct_type:
                self.in_correct = False
        start_c = _start_of_chunk(lc, correct, lct, correct_type, self.start_rules)
        start_g = _start_of_chunk(lg, guessed, lgt, guessed_type, self.start_rules)
        if start_c and start_g and guessed_type == correct_type:
            self.in_correct = True
        if start_c:
            self.found_correct[correct_type] += 1
        if start_g:
            self.found_guessed[guessed_type] += 1
        if is_token:
            if correct == guessed and guessed_type == correct_type:
                self.correct_tags += 1
            self.tokens += 1
        self.last_correct, self.last_correct_type = correct, correct_type
        self.last_guessed, self.last_guessed_type = guessed, guessed_type

    def finish(self) -> SpanScores:
        """The end-of-file step and the final numbers."""
        if self.in_correct:
            self.correct_chunk[self.last_correct_type] += 1
            self.in_correct = False
        correct = sum(self.correct_chunk.values())
        found_gold = sum(self.found_correct.values())
        found_pred = sum(self.found_guessed.values())
        p, r, f = _prf(correct, found_pred, found_gold)
        per_type = {}
        for kind in sorted(set(self.found_correct) | set(self.found_guessed)):
            c, fp, fg = self.correct_chunk[kind], self.found_guessed[kind], self.found_correct[kind]
            per_type[kind] = TypeScores(*_prf(c, fp, fg), found_gold=fg, found_pred=fp, correct=c)
        acc = 100 * self.correct_tags / self.tokens if self.tokens else 0.0
        return SpanScores(
            precision=p,
            recall=r,
            f1=f,
            found_gold=found_gold,
            found_pred=found_pred,
            correct=correct,
            accuracy=acc,
            n_tokens=self.tokens,
            correct_tags=self.correct_tags,
            per_type=per_type,
        )


def span_f1(
    gold_seqs: Sequence[Sequence[str]], pred_seqs: Sequence[Sequence[str]], scheme: str = "bio"
) -> SpanScores:
    """Chunk precision / recall / F1 and tag accuracy (percent), exactly as conlleval.pl has them.

    Each pair of sequences is one sentence; a boundary (both tags O) follows every sentence.
    """
    if len(gold_seqs) != len(pred_seqs):
        raise ShapeError(f"{len(gold_seqs)} gold sequences but {len(pred_seqs)} predicted")
    state = _Conlleval(scheme)
    for k, (gold, pred) in enumerate(zip(gold_seqs, pred_seqs)):
        if len(gold) != len(pred):
            raise ShapeError(f"sequence {k}: {len(gold)} gold tags but {len(pred)} predicted")
        for g, p in zip(gold, pred):
            state.step(g, p)
        state.step("O", "O", is_token=False)
    return state.finish()


def _is_label(x: object) -> bool:
    return isinstance(x, (str, bytes)) or np.ndim(x) == 0


def accuracy(pred_seqs: Sequence, gold_seqs: Sequence) -> float:
    """The fraction (0..1) of equal items: tokens over sequences, or labels if items are scalars."""
    if len(pred_seqs) != len(gold_seqs):
        raise ShapeError(f"{len(pred_seqs)} predictions but {len(gold_seqs)} gold items")
    hits = total = 0
    for k, (p, g) in enumerate(zip(pred_seqs, gold_seqs)):
        if _is_label(p) and _is_label(g):
            hits += bool(p == g)
            total += 1
            continue
        if _is_label(p) or _is_label(g) or len(p) != len(g):
            n_p = 1 if _is_label(p) else len(p)
            n_g = 1 if _is_label(g) else len(g)
            raise ShapeError(f"item {k}: {n_p} predicted tokens but {n_g} gold tokens")
        hits += sum(bool(a == b) for a, b in zip(p, g))
        total += len(g)
    if total == 0:
        raise ShapeError("accuracy of zero tokens is undefined")
    return hits / total


def perplexity(total_nll: float, n_tokens: int) -> float:
    """exp(total negative log-likelihood in nats / number of predicted tokens)."""
    if n_tokens < 1:
        raise ShapeError(f"perplexity needs at least one token, got n_tokens={n_tokens}")
    try:
        return math.exp(total_nll / n_tokens)
    except OverflowError:
        return math.inf


__all__ = ["SpanScores", "TypeScores", "accuracy", "perplexity", "span_f1", "spans"]
