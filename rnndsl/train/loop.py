"""The training loop: epochs of shuffled length-bucketed batches, BPTT, updates, evaluation.

Everything random is derived from (seed, epoch, step), so an interrupted run resumed from its
checkpoint continues bit for bit. Ctrl-C finishes the current step, writes ``last`` and stops
with exit code 130; a NaN or infinite loss stops the run without overwriting the last good
checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..autodiff import backend as Bk
from ..autodiff.tensor import Tensor, no_grad
from ..data.dataset import Batch, TaskData
from ..errors import CheckpointError, TrainingError
from ..nn.heads import CRFHead
from ..nn.module import RunContext, VecValue
from ..nn.network import Network
from . import checkpoint, metrics
from .distributed import LocalComm, allreduce_grads
from .optim import Optimizer, clip_grad_norm
from .tweet_metrics import class_f1

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "macro_f1": True, "perplexity": False,
                    "loss": False}


class Interrupted(Exception):
    """Training stopped on Ctrl-C after saving a checkpoint (exit code 130)."""


@dataclass
class TrainSettings:
    """What the training block of a spec asks for, resolved."""

    epochs: int = 10
    batch: int = 32
    clip: float | None = 5.0
    seed: int = 1
    schedule: tuple[str, dict] = ("none", {})
    early_stop: tuple[str, int] | None = None  # (metric, patience)
    metric: str = "accuracy"
    bptt: int = 35
    reduction: str = "mean"
    checkpoint_every: int = 0  # steps; 0 = at the end of each epoch only
    eval_batch: int = 64


@dataclass
class TrainState:
    """Everything besides weights and optimizer moments that a resume needs."""

    epoch: int = 0
    step: int = 0  # next step within the epoch
    global_step: int = 0
    lr: float = 0.0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    done: bool = False
    # running sums of the epoch in progress, so a resumed epoch reports the same train loss
    epoch_loss: float = 0.0
    epoch_steps: int = 0
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, st: Any, where: str) -> TrainState:
        """The state a checkpoint recorded, each field checked (an edited file is refused with
        the field's name instead of failing somewhere later)."""
        def bad(what: str) -> CheckpointError:
            return CheckpointError(f"{where}: the training state {what}",
                                   hint="the file was edited; resume from the other "
                                        "checkpoint (best/last) or retrain")

        if not isinstance(st, dict):
            raise bad("is not a JSON object")
        number = (int, float)
        kinds = {"epoch": int, "step": int, "global_step": int, "lr": number,
                 "best": (*number, type(None)), "best_epoch": int, "bad_epochs": int,
                 "history": list, "done": bool, "epoch_loss": number, "epoch_steps": int,
                 "epoch_tokens": int, "epoch_seconds": number}
        for key, value in st.items():
            kind = kinds.get(key)
            if kind is None:
                raise bad(f"has an unknown field {key!r}")
            wrong_bool = isinstance(value, bool) and kind is not bool
            if wrong_bool or not isinstance(value, kind) or \
                    (isinstance(value, int) and kind is int and value < -1):
                raise bad(f"field {key!r} is {json.dumps(value)}")
        for record in st.get("history", []):  # one per finished epoch: numbers by name
            if not (isinstance(record, dict) and type(record.get("epoch")) is int
                    and all(isinstance(record.get(k), number) for k in ("seconds", "train_loss"))
                    and all(isinstance(v, (*number, str, type(None))) for v in record.values())):
                raise bad(f"has an epoch record {json.dumps(record)}")
        return cls(**st)


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


class Trainer:
    """Runs training for one network on one TaskData, writing into a run directory."""

    def __init__(self, net: Network, data: TaskData, opt: Optimizer, settings: TrainSettings,
                 run_dir: Path, log: Callable[[str], None] = print,
                 progress: Any = None, needs: set[str] | None = None, comm: Any = None,
                 profile: bool = False):
        self.net, self.data, self.opt, self.s = net, data, opt, settings
        self.comm = comm or LocalComm()
        # seconds spent in each part of training (`rnndsl run --profile` prints them)
        self.times = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0,
                      "evaluation": 0.0, "checkpoints": 0.0} if profile else None
        self.run_dir = Path(run_dir)
        self.log = log
        self.progress = progress
        self.needs = needs or set()
        self.state = TrainState(lr=opt.lr)
        self.lm_carry: dict[str, tuple] = {}
        self._stop = False
        self.xp = net.backend.xp
        self.lr0 = opt.lr

    # --- checkpoints ----------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"param::{k}": Bk.to_host(p.data) for k, p in self.net.named_parameters().items()}
        out.update({f"opt::{k}": Bk.to_host(v) for k, v in self.opt.state_arrays().items()})
        if self.comm.size == 1:  # under MPI each rank holds other rows: they are not saved,
            for layer, carry in self.lm_carry.items():  # and a resume restarts them at zero
                for i, t in enumerate(carry):
                    out[f"carry::{layer}::{i}"] = Bk.to_host(t.data)
        return out

    @contextlib.contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Add the seconds spent inside to ``part`` when profiling (else nothing)."""
        if self.times is None:
            yield
            return
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times[part] += time.perf_counter() - t

    def save(self, name: str) -> None:
        if not self.comm.is_root:  # only rank 0 writes
            return
        with self.timed("checkpoints"):
            self._save(name)

    def _save(self, name: str) -> None:
        meta = {"state": self.state.to_json(), "optimizer": {"name": self.opt.name,
                                                            "t": self.opt.t, "lr": self.opt.lr},
                "global_step": self.state.global_step, "epoch": self.state.epoch,
                "step": self.state.step}
        checkpoint.save(self.run_dir / "ckpt", name, self.arrays(), meta)

    def restore(self, name: str = "last", folder: Path | None = None) -> None:
        arrays, meta = checkpoint.load((folder or self.run_dir) / "ckpt", name)
        load_weights(self.net, arrays)
        where = str((folder or self.run_dir) / "ckpt" / f"{name}.json")
        opt = meta.get("optimizer")
        if not (isinstance(opt, dict) and type(opt.get("t")) is int and opt["t"] >= 0
                and type(opt.get("lr")) in (int, float) and math.isfinite(opt["lr"])):
            raise CheckpointError(f"{where}: the optimizer state is {json.dumps(opt)}",
                                  hint="the file was edited; resume from the other checkpoint "
                                       "(best/last) or retrain")
        state = TrainState.from_json(meta.get("state"), where)
        self.opt.load_state_arrays({k[5:]: v for k, v in arrays.items() if k.startswith("opt::")},
                                   opt["t"], self.xp)
        self.opt.lr = float(opt["lr"])
        self.state = state
        carry: dict[str, dict[int, Any]] = {}
        for k, v in arrays.items():
            if k.startswith("carry::"):
                _, layer, i = k.split("::")
                carry.setdefault(layer, {})[int(i)] = Tensor(self.xp.asarray(v))
        self.lm_carry = {k: tuple(v[i] for i in sorted(v)) for k, v in carry.items()}

    # --- the loop -------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int) -> list[Batch]:
        c = self.comm
        if self.data.kind == "lm":
            return self.data.lm_batches(self.data.train, self.s.batch, self.s.bptt, self.xp,
                                        c.rank, c.size)
        rng = np.random.default_rng([self.s.seed, epoch])
        return self.data.batches(self.data.train, self.s.batch, self.xp, rng, self.needs,
                                 c.rank, c.size)

    def train(self) -> TrainState:
        old = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):  # first Ctrl-C: stop after this step; second: now
            if self._stop:
                signal.signal(signal.SIGINT, old)
                raise KeyboardInterrupt
            self._stop = True
            self.log("\ninterrupted: finishing the current step and saving a checkpoint "
                     "(Ctrl-C again to quit at once)")

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not in the main thread
            pass
        try:
            return self._train()
        finally:
            try:
                signal.signal(signal.SIGINT, old)
            except ValueError:
                pass

    def _train(self) -> TrainState:
        st = self.state
        while st.epoch < self.s.epochs and not st.done:
            self.opt.lr = self.lr_for_epoch(st.epoch)
            with self.timed("data"):
                batches = self.epoch_batches(st.epoch)
            if st.step == 0:
                self.lm_carry = {}
                st.epoch_loss, st.epoch_steps, st.epoch_tokens, st.epoch_seconds = 0.0, 0, 0, 0.0
            t0 = time.perf_counter() - st.epoch_seconds
            task = self.progress.start(f"epoch {st.epoch + 1}/{self.s.epochs}",
                                       len(batches), st.step) if self.progress else None
            for k in range(st.step, len(batches)):
                loss = self.train_step(batches[k], st.epoch, k)
                st.epoch_tokens += batches[k].n_tokens
                st.epoch_loss += loss
                st.epoch_steps += 1
                st.step = k + 1
                st.global_step += 1
                st.epoch_seconds = time.perf_counter() - t0
                if task is not None:
                    self.progress.advance(task, st.epoch_loss / st.epoch_steps,
                                          st.epoch_tokens / max(st.epoch_seconds, 1e-9))
                if self._stop:
                    self.save("last")
                    if task is not None:
                        self.progress.stop()
                    raise Interrupted(f"stopped at epoch {st.epoch + 1}, step {st.step}; "
                                      f"resume with --resume {self.run_dir}")
                if self.s.checkpoint_every and st.global_step % self.s.checkpoint_every == 0:
                    self.save("last")
            if task is not None:
                self.progress.stop()
            secs = time.perf_counter() - t0
            with self.timed("evaluation"):
                dev = self.evaluate(self.data.dev) if self.data.dev else {}
            record = {"epoch": st.epoch + 1, "train_loss": st.epoch_loss / max(st.epoch_steps, 1),
                      "lr": self.opt.lr, "seconds": round(secs, 2),
                      "tokens_per_s": round(st.epoch_tokens / max(secs, 1e-9), 1),
                      **{f"dev_{k}": v for k, v in dev.items() if not isinstance(v, dict)}}
            st.history.append(record)
            if self.comm.is_root:
                checkpoint.atomic_write_text(
                    self.run_dir / "metrics.jsonl",
                    "".join(json.dumps(r) + "\n" for r in st.history))
                self.log(format_epoch(record))
            improved = self.track(dev)
            st.epoch += 1
            st.step = 0
            if improved:
                self.save("best")
            self.save("last")
            if self.s.early_stop and st.bad_epochs >= self.s.early_stop[1]:
                self.log(f"early stop: dev {self.s.early_stop[0]} did not improve for "
                         f"{st.bad_epochs} epochs (best {st.best:.4g} at epoch "
                         f"{st.best_epoch + 1})")
                st.done = True
                self.save("last")
        if self.comm.is_root and not checkpoint.exists(self.run_dir / "ckpt", "best"):
            self.save("best")
        self.comm.barrier()
        return st

    def train_step(self, batch: Batch, epoch: int, k: int) -> float:
        seed = [self.s.seed, epoch, k] + ([self.comm.rank] if self.comm.size > 1 else [])
        ctx = RunContext(train=True, rng=self.net.backend.rng(seed))
        if self.data.kind == "lm":
            ctx.init_states = dict(self.lm_carry)
        self.opt.zero_grad()
        loss = None
        with self.timed("forward"):
            if batch.inputs:  # a rank's shard of a small last batch can be empty
                values = self.net.run(batch.inputs, ctx)
                loss = head_loss(self.net, values, batch, self.s.reduction)
            value = 0.0 if loss is None else loss.item()
        if self.comm.size > 1:
            value = float(self.comm.allreduce_(Bk.host.array([value]))[0])
        if not math.isfinite(value):
            raise TrainingError(
                f"the loss became {value} at epoch {epoch + 1}, step {k + 1}; "
                "the last good checkpoint is kept",
                hint="lower the learning rate, set clip = 5, or check the data")
        with self.timed("backward"):
            if loss is not None:
                loss.backward()
                # the deferred weight-gradient GEMMs (OuterGrad) run here, in the backward's
                # time, not later in the optimizer's
                for p in self.opt.params.values():
                    p.raw_grad  # noqa: B018
            allreduce_grads(self.comm, self.opt.params, self.xp)
        t = time.perf_counter()
        norm = clip_grad_norm(self.opt.params, self.s.clip or 0.0)
        if not math.isfinite(norm):
            raise TrainingError(
                f"the gradient norm became {norm} at epoch {epoch + 1}, step {k + 1}; "
                "the last good checkpoint is kept",
                hint="lower the learning rate or set clip = 5")
        self.opt.step()
        if self.times is not None:
            self.times["optimizer"] += time.perf_counter() - t
        if self.data.kind == "lm":  # truncated BPTT: carry the state, not the graph
            self.lm_carry = {name: tuple(s.detach() for s in carry)
                             for name, carry in ctx.final_states.items()}
        return value

    def lr_for_epoch(self, epoch: int) -> float:
        kind, a = self.s.schedule
        if kind == "step":
            start, factor = int(a.get("start", 4)), float(a.get("factor", 0.5))
            return self.lr0 * factor ** max(0, epoch + 1 - start)
        return self.opt.lr  # none, or plateau (changed in track)

    def track(self, dev: Mapping[str, Any]) -> bool:
        """Update best score / patience / plateau schedule; True when this epoch is the best."""
        st = self.state
        metric = self.s.early_stop[0] if self.s.early_stop else self.s.metric
        value = dev.get(metric)
        if value is None:
            return True
        higher = HIGHER_IS_BETTER.get(metric, True)
        if st.best is None or (value > st.best if higher else value < st.best):
            st.best, st.best_epoch, st.bad_epochs = float(value), st.epoch, 0
            return True
        st.bad_epochs += 1
        kind, a = self.s.schedule
        # every `patience` epochs without improvement (0 and 1: at each such epoch)
        if kind == "plateau" and st.bad_epochs % max(1, int(a.get("patience", 1))) == 0:
            self.opt.lr *= float(a.get("factor", 0.5))
            self.lr0 = self.opt.lr
        return False

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, examples: list, write: Path | None = None) -> dict[str, Any]:
        return evaluate(self.net, self.data, examples, self.s, self.needs,
                        write if self.comm.is_root else None, self.comm)


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


def evaluate(net: Network, data: TaskData, examples: list, s: TrainSettings, needs: set[str],
             write: Path | None = None, comm: Any = None) -> dict[str, Any]:
    """Dev/test metrics: accuracy (+ span F1 with a tag scheme), or perplexity for an LM.

    With several ranks each evaluates its share of the batches (of the streams, for an LM) and
    the predictions and sums are joined, in input order, on every rank.
    """
    comm = comm or LocalComm()
    xp = net.backend.xp
    ctx = RunContext(train=False)
    with no_grad():
        if data.kind == "lm":
            total, n = 0.0, 0
            carry: dict = {}
            for b in data.lm_batches(examples, min(s.batch, 10), s.bptt, xp, comm.rank,
                                     comm.size):
                ctx = RunContext(train=False, init_states=carry)
                values = net.run(b.inputs, ctx)
                total += float(head_loss(net, values, b, "sum").item())
                n += b.n_tokens
                carry = ctx.final_states
            total, n = _sum_over(comm, total, n)
            return {"perplexity": metrics.perplexity(total, n), "loss": total / max(n, 1)}
        mine: dict[int, Any] = {}
        total, n = 0.0, 0
        for k, b in enumerate(data.batches(examples, s.eval_batch, xp, None, needs)):
            if k % comm.size != comm.rank:
                continue
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
        if data.scheme != "none":
            sc = metrics.span_f1(gold, pred_tags, scheme=data.scheme)
            out.update(f1=sc.f1, precision=sc.precision, recall=sc.recall)
        if write:
            write_tagged(write, examples, pred_tags)
    else:
        names = data.vocabs["labels"].tokens
        labels = [names[int(k)] for k in preds]
        gold = [ex.label for ex in examples]
        out["accuracy"] = 100.0 * sum(p == g for p, g in zip(labels, gold)) / max(len(gold), 1)
        out.update(class_f1(labels, gold, data.positive))
        if write:
            lines = [f"{lab}\t{' '.join(ex.words)}" for lab, ex in zip(labels, examples)]
            checkpoint.atomic_write_text(write, "\n".join(lines) + "\n")
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


def load_weights(net: Network, arrays: Mapping[str, Any]) -> None:
    params = net.named_parameters()
    for k, p in params.items():
        key = f"param::{k}"
        if key not in arrays:
            from ..errors import CheckpointError  # noqa: PLC0415

            raise CheckpointError(f"the checkpoint has no weights for {k}",
                                  hint="was it written for another spec?")
        p.value = arrays[key]


def format_epoch(r: Mapping[str, Any]) -> str:
    parts = [f"epoch {r['epoch']}", f"train loss {r['train_loss']:.4f}"]
    for k in ("dev_accuracy", "dev_f1", "dev_macro_f1", "dev_perplexity"):
        if k in r:
            parts.append(f"{k.replace('_', ' ')} {r[k]:.2f}")
    parts.append(f"{r['tokens_per_s']:,.0f} tok/s")
    parts.append(f"{r['seconds']:.0f}s")
    return " | ".join(parts)


__all__ = ["Interrupted", "TrainSettings", "TrainState", "Trainer", "evaluate"]
