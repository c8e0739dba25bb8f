"""Evaluation: a network's predictions and metrics on a list of examples (dev, test, a file),
gathered in input order across MPI ranks; accuracy and the per-class and per-type breakdowns,
span F1 with a tag scheme, perplexity for a language model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.tensor import Tensor, no_grad
from ..data.dataset import Batch, TaskData
from ..lang import TrainConfig
from ..nn.batch import on_backend
from ..nn.heads import CRFHead
from ..nn.module import RunContext, VecValue
from ..nn.network import Network
from . import breakdown, checkpoint, metrics
from .distributed import LocalComm
from .tweet_metrics import f1_of


def head_loss(net: Network, values: dict, batch: Batch, reduction: str) -> Tensor:
    """The batch's loss; a mean divides the shard's sum by the global batch's count."""
    head = net.head
    out = values[net.output]
    total = head.scored_loss(out, batch.targets, _valid_for(head, batch), reduction="sum")
    if reduction == "sum":
        return total
    if reduction == "sequence":  # summed over each sequence's positions, averaged over sequences
        return total / max(batch.global_seqs, 1.0)
    per_sequence = isinstance(head, CRFHead) or isinstance(out, VecValue)
    n = batch.global_seqs if per_sequence else batch.global_tokens
    return total / max(n, 1.0)


EVAL_BATCH = 64  # sequences per evaluation batch (no gradients, so larger than training's)


def _valid_for(head: Any, batch: Batch) -> Any:
    """The positions a head scores: a CRF scores whole sequences (every position up to each
    length, even a dev tag train never saw), a softmax only the positions with a known target."""
    if isinstance(head, CRFHead) and batch.valid is not None:
        return batch.inputs_mask
    return batch.valid


def predict_batch(net: Network, batch: Batch, ctx: RunContext) -> tuple[Any, Any, float, int]:
    """Predictions (host; per-token lists or per-sequence array), gold, summed loss, count."""
    values = net.run(batch.inputs, ctx)
    head = net.head
    out = values[net.output]
    scores = head.scores(out)
    loss = head.loss(scores, batch.targets, _valid_for(head, batch), reduction="sum")
    if isinstance(out, VecValue):
        pred = Bk.to_host(head.predict(scores))
        return pred, Bk.to_host(batch.targets), float(loss.item()), len(batch.indices)
    valid = batch.valid if batch.valid is not None else net.backend.xp.ones(
        batch.targets.shape, dtype=bool)
    if isinstance(head, CRFHead):
        paths = head.decode(scores, _valid_for(head, batch))
    else:
        p = Bk.to_host(head.predict(scores))  # (T, B)
        paths = [p[: int(n), b].tolist() for b, n in enumerate(batch.lengths)]
    n = int(Bk.to_host(valid).sum())
    return paths, None, float(loss.item()), n


def gather_predictions(comm: Any, mine: dict[int, Any], n: int, per_token: bool) -> list:
    """Every rank's {example index: prediction} joined in input order, on every rank.

    A prediction is a label id or a list of tag ids; they travel as flat int arrays.
    """
    if comm.size == 1:
        return [mine[i] for i in range(n)]
    idx = Bk.host.array(sorted(mine), dtype=Bk.host.int64)
    seqs = [mine[i] if isinstance(mine[i], list) else [int(mine[i])] for i in idx.tolist()]
    lens = Bk.host.array([len(q) for q in seqs], dtype=Bk.host.int64)
    flat = Bk.host.array([k for q in seqs for k in q], dtype=Bk.host.int64)
    all_idx, all_lens, all_flat = (comm.allgatherv(a) for a in (idx, lens, flat))
    out: list = [None] * n
    off = 0
    for i, k in zip(all_idx.tolist(), all_lens.tolist()):
        q = all_flat[off:off + k].tolist()
        out[i] = q if per_token else q[0]
        off += k
    return out


def evaluate(net: Network, data: TaskData, examples: list, s: TrainConfig, needs: set[str],
             write: Path | None = None, comm: Any = None,
             keep: dict | None = None) -> dict[str, Any]:
    """Dev/test metrics: accuracy (+ span F1 with a tag scheme), or perplexity for an LM.

    With several ranks each evaluates its share of the batches (of the streams, for an LM) and
    the predictions and sums are joined, in input order, on every rank. ``keep`` (a dict) gets
    ``keep["write"]``, a function that writes these predictions to a path later. Batches are
    grouped by length (less padding); the predictions come back in input order.
    """
    comm = comm or LocalComm()
    xp = net.backend.xp
    ctx = RunContext(train=False)
    with no_grad():
        if data.kind == "lm":
            total, n = 0.0, 0
            carry: dict = {}
            for b in data.lm_batches(examples, min(s.batch, 10), s.bptt, comm.rank, comm.size):
                b = on_backend(b, xp)
                ctx = RunContext(train=False, init_states=carry)
                values = net.run(b.inputs, ctx)
                total += float(head_loss(net, values, b, "sum").item())
                n += b.n_tokens
                carry = ctx.final_states
            total, n = _sum_over(comm, total, n)
            out = {"perplexity": metrics.perplexity(total, n), "loss": total / max(n, 1)}
            if str(data.args.get("tokens", "words")) == "chars":  # bits per character
                out["bpc"] = out["loss"] / math.log(2)
            return out
        mine: dict[int, Any] = {}
        total, n = 0.0, 0
        for k, b in enumerate(data.batches(examples, EVAL_BATCH, None, needs, by_length=True)):
            if k % comm.size != comm.rank:
                continue
            b = on_backend(b, xp)
            pred, _, loss, count = predict_batch(net, b, ctx)
            total += loss
            n += count
            for j, i in enumerate(b.indices):
                mine[i] = pred[j] if isinstance(pred[j], list) else int(pred[j])
        total, n = _sum_over(comm, total, n)
        preds = gather_predictions(comm, mine, len(examples), data.kind == "tagging")
    out: dict[str, Any] = {"loss": total / max(n, 1)}
    if data.kind == "tagging":
        names = data.vocabs["tags"].tokens
        pred_tags = [[names[k] for k in p] for p in preds]
        gold = [list(ex.tags) for ex in examples]
        out["accuracy"] = 100.0 * metrics.accuracy(pred_tags, gold)
        sc = None
        if data.scheme != "none":
            sc = metrics.span_f1(gold, pred_tags, scheme=data.scheme)
            out.update(f1=sc.f1, precision=sc.precision, recall=sc.recall)
        out.update(breakdown.tagging_report(gold, pred_tags, names, sc))
        if write:
            write_tagged(write, examples, pred_tags)
        if keep is not None:
            keep["write"] = lambda path: write_tagged(path, examples, pred_tags)
    else:
        names = data.vocabs["labels"].tokens
        labels = [names[int(k)] for k in preds]
        gold = [ex.label for ex in examples]
        out["accuracy"] = 100.0 * sum(p == g for p, g in zip(labels, gold)) / max(len(gold), 1)
        out.update(breakdown.class_report(gold, labels, names))
        if data.positive is not None:  # TweetEval's two-class metric: the F1 of label 1
            out["f1"] = f1_of(data.positive, labels, gold)
        lines = [f"{lab}\t{' '.join(ex.words)}" for lab, ex in zip(labels, examples)]
        if write:
            checkpoint.atomic_write_text(write, "\n".join(lines) + "\n")
        if keep is not None:
            keep["write"] = lambda path: checkpoint.atomic_write_text(path, "\n".join(lines) + "\n")
    return out


def _sum_over(comm: Any, total: float, n: int) -> tuple[float, int]:
    if comm.size == 1:
        return total, n
    buf = comm.allreduce_(Bk.host.array([total, float(n)]))
    return float(buf[0]), int(buf[1])


def write_tagged(path: Path, examples: list, pred: list[list[str]]) -> None:
    """conlleval's input: one token per line, `word gold predicted`, a blank line per sentence."""
    lines = []
    for ex, p in zip(examples, pred):
        for w, g, t in zip(ex.words, ex.tags or [""] * len(ex.words), p):
            lines.append(f"{w} {g} {t}")
        lines.append("")
    checkpoint.atomic_write_text(path, "\n".join(lines) + "\n")
