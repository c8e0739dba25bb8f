"""Metrics broken down by class and by chunk type: what `run`, `eval` and metrics.json report.

For labels (a classifier's labels, or a tagger's tags counted token by token):

- ``per_class``: label -> ``precision``, ``recall``, ``f1`` (percent) and ``support`` (how
  often the label is gold), for every label that is gold or predicted at least once;
- ``confusion``: ``labels`` (the vocabulary's order, then labels only dev has) and ``matrix``,
  rows gold, columns predicted, counts;
- ``macro_f1``: the unweighted mean of the per-class F1 (as scikit-learn's average="macro");
- ``micro_f1``: F1 of the pooled counts, which for one label per item equals the accuracy.

For span tagging (a tag scheme other than none) the same per-token tables are there, and beside
conlleval's overall ``precision``, ``recall``, ``f1`` there is ``per_type``: chunk type ->
``precision``, ``recall``, ``f1``, ``support`` (gold chunks of the type) and ``predicted``
(predicted chunks, the last column of conlleval's table). Then ``macro_f1`` is the mean F1 over
the chunk types and ``micro_f1`` the chunk F1 itself (conlleval's FB1). Precision of a class
never predicted is 0, as conlleval has it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ShapeError
from .metrics import SpanScores, _prf


def _labels_in_order(known: Sequence[str], *seen: Sequence[str]) -> list[str]:
    """The labels that occur in ``seen``: those of ``known`` in its order, then the rest sorted."""
    present = set()
    for s in seen:
        present.update(s)
    extra = sorted(present - set(known))
    return [x for x in known if x in present] + extra


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def class_report(gold: Sequence[str], pred: Sequence[str],
                 known: Sequence[str] = ()) -> dict[str, Any]:
    """accuracy, macro_f1, micro_f1, per_class and confusion of paired labels (percent)."""
    if len(gold) != len(pred):
        raise ShapeError(f"{len(gold)} gold labels but {len(pred)} predicted")
    if not gold:
        raise ShapeError("a breakdown of zero labels is undefined")
    labels = _labels_in_order(known, gold, pred)
    at = {x: i for i, x in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        matrix[at[g]][at[p]] += 1
    per_class: dict[str, dict[str, Any]] = {}
    for i, x in enumerate(labels):
        correct = matrix[i][i]
        support = sum(matrix[i])
        predicted = sum(row[i] for row in matrix)
        p, r, f = _prf(correct, predicted, support)
        per_class[x] = {"precision": p, "recall": r, "f1": f, "support": support}
    hits = sum(matrix[i][i] for i in range(len(labels)))
    _, _, micro = _prf(hits, len(gold), len(gold))
    return {
        "accuracy": 100.0 * hits / len(gold),
        # over the classes in the gold labels or the predictions, as scikit-learn's macro
        "macro_f1": _mean([c["f1"] for i, c in enumerate(per_class.values())
                           if c["support"] or sum(row[i] for row in matrix)]),
        "micro_f1": micro,
        "per_class": per_class,
        "confusion": {"labels": labels, "matrix": matrix},
    }


def span_report(scores: SpanScores) -> dict[str, Any]:
    """per_type, macro_f1 (mean over types) and micro_f1 (chunk F1) from conlleval's numbers."""
    per_type = {
        kind: {"precision": s.precision, "recall": s.recall, "f1": s.f1,
               "support": s.found_gold, "predicted": s.found_pred}
        for kind, s in sorted(scores.per_type.items())
    }
    macro = sum(t["f1"] for t in per_type.values()) / len(per_type) if per_type else 0.0
    return {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1,
            "macro_f1": macro, "micro_f1": scores.f1, "per_type": per_type}


def tagging_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                   known: Sequence[str] = (), spans: SpanScores | None = None) -> dict[str, Any]:
    """The per-token breakdown of a tagger; with conlleval's scores, the chunk breakdown too."""
    flat_g = [t for s in gold for t in s]
    flat_p = [t for s in pred for t in s]
    out = class_report(flat_g, flat_p, known)
    if spans is not None:
        out.update(span_report(spans))
    return out


def is_breakdown(key: str, value: Any) -> bool:
    """Whether a metric is a table (per_class, confusion, per_type) rather than a number."""
    return isinstance(value, Mapping)


def conlleval_lines(per_type: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The per-type lines of conlleval.pl's report from a ``per_type`` table."""
    return [f"{kind:>17}: precision: {s['precision']:6.2f}%; recall: {s['recall']:6.2f}%; "
            f"FB1: {s['f1']:6.2f}  {s['predicted']}" for kind, s in per_type.items()]


def epoch_lines(path: Path, history: Sequence[Mapping[str, Any]],
                tables: Mapping[str, Any] | None) -> str:
    """metrics.jsonl: one line per evaluation in ``history`` (each finished epoch with its dev
    tables; an ``eval_every`` line, which has a ``step``, without them).

    The tables of the last finished epoch are ``tables`` (None: kept like the others); those of
    earlier epochs are kept from the file as it stands (so a resumed run's earlier epochs keep
    theirs)."""
    earlier: dict[int, dict] = {}
    try:
        for line in Path(path).read_text("utf-8").splitlines():
            row = json.loads(line)
            if isinstance(row, dict) and type(row.get("epoch")) is int and "step" not in row:
                earlier[row["epoch"]] = {k: v for k, v in row.items() if is_breakdown(k, v)}
    except (OSError, ValueError):
        earlier = {}
    epochs = [k for k, record in enumerate(history) if "step" not in record]
    rows = []
    for k, record in enumerate(history):
        if "step" in record:
            extra = {}
        elif tables is not None and k == epochs[-1]:
            extra = dict(tables)
        else:
            extra = earlier.get(record.get("epoch"), {})
        rows.append(json.dumps({**record, **extra}) + "\n")
    return "".join(rows)


__all__ = ["class_report", "conlleval_lines", "epoch_lines", "is_breakdown", "span_report",
           "tagging_report"]
