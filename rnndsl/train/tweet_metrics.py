"""F1 of sentence labels as TweetEval reports it: macro-averaged F1, and the F1 of one class.

Kept apart from metrics.py (accuracy, span F1, perplexity): a small, separate function that
`evaluate` calls for every sentence-classification task.
"""

from __future__ import annotations

from collections.abc import Sequence

from .breakdown import class_report


def f1_of(label: str, pred: Sequence[str], gold: Sequence[str]) -> float:
    """The F1 (percent) of one class: 2PR / (P + R); 0 when the class is never predicted or
    never gold (as scikit-learn's f1_score with zero_division=0)."""
    tp = sum(p == label and g == label for p, g in zip(pred, gold))
    n_pred = sum(p == label for p in pred)
    n_gold = sum(g == label for g in gold)
    if tp == 0:
        return 0.0
    precision, recall = tp / n_pred, tp / n_gold
    return 100.0 * 2 * precision * recall / (precision + recall)


def class_f1(pred: Sequence[str], gold: Sequence[str], positive: str | None = None
             ) -> dict[str, float]:
    """{"macro_f1": mean F1 over the classes} and, with `positive`, {"f1": F1 of that class}.

    The classes are those in the gold labels or the predictions, as TweetEval's scikit-learn
    `f1_score(average="macro")` takes them.
    """
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} gold labels")
    out = {"macro_f1": class_report(list(gold), list(pred))["macro_f1"] if gold else 0.0}
    if positive is not None:
        out["f1"] = f1_of(positive, pred, gold)
    return out


__all__ = ["class_f1", "f1_of"]
