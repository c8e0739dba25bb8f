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

from .. import limits
from ..autodiff import backend as Bk
from ..autodiff.tensor import Tensor
from ..data.dataset import Batch, TaskData
from ..errors import CheckpointError, TrainingError
from ..lang import TrainConfig
from ..nn.batch import on_backend
from ..nn.module import RunContext
from ..nn.network import Network
from . import breakdown, checkpoint, schedules
from .distributed import LocalComm, allreduce_grads
from .evaluate import (  # noqa: F401 - re-exported
    EVAL_BATCH,
    _valid_for,
    evaluate,
    gather_predictions,
    head_loss,
    predict_batch,
    write_tagged,
)
from .optim import Optimizer, clip_grad_norm

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "macro_f1": True, "perplexity": False,
                    "loss": False}


class Interrupted(Exception):
    """Training stopped on Ctrl-C (exit code 130) or SIGTERM (143) after saving a checkpoint."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)


def selection_metric(settings: TrainConfig, data: TaskData) -> str:
    """The dev metric that picks the best epoch: early stopping's, else the task's own
    (perplexity for a language model, span F1 for tags with a span scheme, a benchmark's
    official metric such as TweetEval's, else accuracy)."""
    if settings.early_stop is not None:
        return settings.early_stop.metric
    if data.official_metric:
        return data.official_metric
    return "perplexity" if data.kind == "lm" else "f1" if data.scheme != "none" else "accuracy"


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
    step_evals: list[dict] = field(default_factory=list)  # eval_every's, inside epochs
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
        absent = [k for k in cls.__dataclass_fields__ if k not in st]
        if absent:  # a resume from {} would restart at epoch 1 and lose the history
            raise bad(f"has no field {absent[0]!r}")
        number = (int, float)
        kinds = {"epoch": int, "step": int, "global_step": int, "lr": number,
                 "best": (*number, type(None)), "best_epoch": int, "bad_epochs": int,
                 "history": list, "step_evals": list, "done": bool, "epoch_loss": number,
                 "epoch_steps": int, "epoch_tokens": int, "epoch_seconds": number}
        for key, value in st.items():
            kind = kinds.get(key)
            if kind is None:
                raise bad(f"has an unknown field {key!r}")
            wrong_bool = isinstance(value, bool) and kind is not bool
            if wrong_bool or not isinstance(value, kind) or \
                    (isinstance(value, int) and kind is int and value < -1):
                raise bad(f"field {key!r} is {json.dumps(value)}")
        for key in ("epoch", "step", "global_step", "epoch_steps", "epoch_tokens", "bad_epochs"):
            if not 0 <= st[key] <= limits.MAX_STEP:
                raise bad(f"field {key!r} is {json.dumps(st[key])}, outside [0, {limits.MAX_STEP}]")
        if len(st["history"]) > st["epoch"] + 1 or st["step"] > st["global_step"]:
            raise bad(f"has {len(st['history'])} epoch records at epoch {st['epoch']} (step "
                      f"{st['step']} of {st['global_step']})")
        for record in st.get("history", []):  # one per finished epoch: numbers by name
            if not (isinstance(record, dict) and type(record.get("epoch")) is int
                    and all(isinstance(record.get(k), number) for k in ("seconds", "train_loss"))
                    and all(isinstance(v, (*number, str, type(None))) for v in record.values())):
                raise bad(f"has an epoch record {json.dumps(record)}")
        for record in st.get("step_evals", []):
            if not (isinstance(record, dict) and type(record.get("epoch")) is int
                    and type(record.get("step")) is int
                    and all(isinstance(v, (*number, str, type(None))) for v in record.values())):
                raise bad(f"has a step record {json.dumps(record)}")
        return cls(**st)


class Trainer:
    """Runs training for one network on one TaskData, writing into a run directory."""

    def __init__(self, net: Network, data: TaskData, opt: Optimizer, settings: TrainConfig,
                 run_dir: Path, log: Callable[[str], None] = print,
                 progress: Any = None, needs: set[str] | None = None, comm: Any = None,
                 profile: bool = False):
        self.net, self.data, self.opt, self.s = net, data, opt, settings
        self.metric = selection_metric(settings, data)
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
        self._signum = int(signal.SIGINT)
        self.xp = net.backend.xp
        self.lr0 = opt.lr
        # (epoch count, dev metrics, writer of their predictions) of the best epoch trained in
        # this process: the run's final dev figures without evaluating the dev set again
        self.best_dev: tuple | None = None

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

    def _write(self, path: Path, text: str) -> None:
        """A run-directory file, written atomically; a full disk is a TrainingError that says
        the checkpoints on disk are intact."""
        try:
            checkpoint.atomic_write_text(path, text)
        except OSError as e:
            raise self._disk_error(path, e) from None

    def _disk_error(self, path: Path, e: OSError) -> TrainingError:
        what = "the disk is full" if e.errno == 28 else (e.strerror or str(e))
        return TrainingError(
            f"cannot write {path}: {what}; {self.kept()}",
            hint=f"free some space, then continue with rnndsl run --resume {self.run_dir}")

    def kept(self) -> str:
        """What is on disk now, for the message of a run that stops on an error."""
        folder = self.run_dir / "ckpt"
        parts = []
        for name in ("last", "best"):
            meta = checkpoint._read_json_quiet(folder / f"{name}.json")
            if meta and isinstance(meta.get("state"), dict):
                st = meta["state"]
                parts.append(f"'{name}' (after epoch {st.get('epoch')}, step "
                             f"{st.get('step')})" if name == "last" else
                             f"'{name}' (epoch {int(st.get('best_epoch', -1)) + 1})")
        if not parts:
            return "no checkpoint was written before this (nothing is kept)"
        return "the checkpoint" + ("s " if len(parts) > 1 else " ") + " and ".join(parts) + \
            f" in {folder} " + ("are" if len(parts) > 1 else "is") + " intact"

    def _save(self, name: str) -> None:
        meta = {"state": self.state.to_json(), "optimizer": {"name": self.opt.name,
                                                            "t": self.opt.t, "lr": self.opt.lr},
                "global_step": self.state.global_step, "epoch": self.state.epoch,
                "step": self.state.step}
        try:
            checkpoint.save(self.run_dir / "ckpt", name, self.arrays(), meta)
        except OSError as e:
            raise self._disk_error(self.run_dir / "ckpt" / f"{name}.json", e) from None

    def restore(self, name: str = "last", folder: Path | None = None) -> None:
        arrays, meta = checkpoint.load((folder or self.run_dir) / "ckpt", name)
        where = str((folder or self.run_dir) / "ckpt" / f"{name}.json")
        load_weights(self.net, arrays, OPTIMIZER_SLOTS.get(self.opt.name, ()), where)
        opt = meta.get("optimizer")
        if not (isinstance(opt, dict) and type(opt.get("t")) is int
                and 0 <= opt["t"] <= limits.MAX_OPTIMIZER_T
                and type(opt.get("lr")) in (int, float) and math.isfinite(opt["lr"])
                and opt.get("name", self.opt.name) == self.opt.name):
            raise CheckpointError(f"{where}: the optimizer state is {json.dumps(opt)}",
                                  hint="the file was edited; resume from the other checkpoint "
                                       "(best/last) or retrain")
        state = TrainState.from_json(meta.get("state"), where)
        moments = {k.split("::")[1] for k in arrays if k.startswith("opt::")}
        if opt["t"] > 0 and self.opt.name in ("adam", "adagrad") and not moments:
            raise CheckpointError(f"{where}: the optimizer has taken {opt['t']} steps but the "
                                  f"checkpoint has none of its moments",
                                  hint="the weights file was replaced; resume from the other "
                                       "checkpoint (best/last) or retrain")
        if opt["t"] > state.global_step + 1 or state.global_step > limits.MAX_STEP:
            raise CheckpointError(f"{where}: the optimizer's step count {opt['t']} does not fit "
                                  f"the training state's {state.global_step} steps",
                                  hint="the file was edited; resume from the other checkpoint "
                                       "(best/last) or retrain")
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
            batches = self.data.lm_batches(self.data.train, self.s.batch, self.s.bptt,
                                           c.rank, c.size)
        else:
            rng = np.random.default_rng([self.s.seed, epoch])
            batches = self.data.batches(self.data.train, self.s.batch, rng, self.needs,
                                        c.rank, c.size)
        return [on_backend(b, self.xp) for b in batches]

    def train(self) -> TrainState:
        signums = (signal.SIGINT, signal.SIGTERM)  # SIGTERM (kill, a batch system) like Ctrl-C
        old = {n: signal.getsignal(n) for n in signums}

        def on_signal(signum, frame):  # the first: stop after this step; a second: now
            if self._stop:
                for n in signums:
                    signal.signal(n, old[n])
                raise KeyboardInterrupt
            self._stop = True
            self._signum = int(signum)
            what = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
            self.log(f"\n{what}: finishing the current step and saving a checkpoint "
                     "(Ctrl-C again to quit at once)")

        try:
            for n in signums:
                signal.signal(n, on_signal)
        except ValueError:  # not in the main thread
            pass
        try:
            state = self._train()
            if self.comm.is_root:
                checkpoint.remove_temporary(self.run_dir / "ckpt")
                checkpoint.remove_temporary(self.run_dir)
            return state
        finally:
            try:
                for n in signums:
                    signal.signal(n, old[n])
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
                                      f"resume with --resume {self.run_dir}", self._signum)
                if self.s.checkpoint_every and st.global_step % self.s.checkpoint_every == 0:
                    self.save("last")
                if self.s.eval_every and st.global_step % self.s.eval_every == 0 \
                        and st.step < len(batches) and self.data.dev:  # the epoch's end has its own
                    t_eval = time.perf_counter()
                    self.step_eval()
                    t0 += time.perf_counter() - t_eval  # not counted in the epoch's tokens/s
            if task is not None:
                self.progress.stop()
            secs = time.perf_counter() - t0
            keep: dict[str, Any] = {}
            with self.timed("evaluation"):
                dev = self.evaluate(self.data.dev, keep=keep) if self.data.dev else {}
            record = {"epoch": st.epoch + 1, "train_loss": st.epoch_loss / max(st.epoch_steps, 1),
                      "lr": self.opt.lr, "seconds": round(secs, 2),
                      "tokens_per_s": round(st.epoch_tokens / max(secs, 1e-9), 1),
                      **{f"dev_{k}": v for k, v in dev.items() if not isinstance(v, dict)}}
            st.history.append(record)
            if self.comm.is_root:
                self.log(format_epoch(record))
            improved = self.track(dev)
            st.epoch += 1
            st.step = 0
            if improved:
                self.save("best")
                self.best_dev = (st.epoch, dev, keep.get("write"))
            self.save("last")
            # after the checkpoints: metrics.jsonl never lists an epoch they lack
            self.write_metrics({f"dev_{k}": v for k, v in dev.items() if isinstance(v, dict)})
            if self.s.early_stop and st.bad_epochs >= self.s.early_stop.patience:
                self.log(f"early stop: dev {self.metric} did not improve for "
                         f"{st.bad_epochs} epochs (best {st.best:.4g} at epoch "
                         f"{st.best_epoch + 1})")
                st.done = True
                self.save("last")
        if self.comm.is_root and not checkpoint.exists(self.run_dir / "ckpt", "best"):
            self.save("best")
        self.comm.barrier()
        return st

    def step_eval(self) -> None:
        """``eval_every``: dev metrics in the middle of an epoch, a line of metrics.jsonl that
        names its step. The best epoch and early stopping go by the epochs' ends only."""
        st = self.state
        with self.timed("evaluation"):
            dev = self.evaluate(self.data.dev)
        record = {"epoch": st.epoch + 1, "step": st.step, "global_step": st.global_step,
                  "train_loss": st.epoch_loss / max(st.epoch_steps, 1), "lr": self.opt.lr,
                  **{f"dev_{k}": v for k, v in dev.items() if not isinstance(v, dict)}}
        st.step_evals.append(record)
        self.write_metrics()
        if self.comm.is_root:
            self.log(format_step(record))

    def write_metrics(self, tables: Mapping[str, Any] | None = None) -> None:
        """metrics.jsonl: one line per evaluation in training order, an epoch's after its
        steps', the epoch just finished with its dev ``tables`` (only rank 0 writes)."""
        if not self.comm.is_root:
            return
        st = self.state
        rows = sorted(st.history + st.step_evals,
                      key=lambda r: (r["epoch"], r.get("step", math.inf)))
        path = self.run_dir / "metrics.jsonl"
        self._write(path, breakdown.epoch_lines(path, rows, tables))

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
                f"the loss became {value} at epoch {epoch + 1}, step {k + 1}; {self.kept()}",
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
                f"{self.kept()}",
                hint="lower the learning rate or set clip = 5")
        self.opt.step()
        if self.times is not None:
            self.times["optimizer"] += time.perf_counter() - t
        if self.data.kind == "lm":  # truncated BPTT: carry the state, not the graph
            self.lm_carry = {name: tuple(s.detach() for s in carry)
                             for name, carry in ctx.final_states.items()}
        return value

    def lr_for_epoch(self, epoch: int) -> float:
        return schedules.lr_for_epoch(self.s, self.lr0, self.opt.lr, epoch)

    def track(self, dev: Mapping[str, Any]) -> bool:
        """Update best score / patience / plateau schedule; True when this epoch is the best."""
        st = self.state
        metric = self.metric
        value = dev.get(metric)
        loss = dev.get("loss")
        if (isinstance(value, float) and not math.isfinite(value)) or (
                isinstance(loss, float) and not math.isfinite(loss)):
            st.bad_epochs += 1  # a dev loss of NaN is never the best epoch
            return False
        if value is None:
            return True
        higher = HIGHER_IS_BETTER.get(metric, True)
        if st.best is None or (value > st.best if higher else value < st.best):
            st.best, st.best_epoch, st.bad_epochs = float(value), st.epoch, 0
            return True
        st.bad_epochs += 1
        decayed = schedules.plateau_lr(self.s, self.opt.lr, st.bad_epochs)
        if decayed is not None:
            self.opt.lr = self.lr0 = decayed
        return False

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, examples: list, write: Path | None = None,
                 keep: dict | None = None) -> dict[str, Any]:
        return evaluate(self.net, self.data, examples, self.s, self.needs,
                        write if self.comm.is_root else None, self.comm, keep=keep)


# the arrays each optimizer keeps per parameter (opt::NAME::SLOT in a checkpoint)
OPTIMIZER_SLOTS = {"sgd": ("momentum",), "adam": ("m", "v"), "adagrad": ("sum",)}


def load_weights(net: Network, arrays: Mapping[str, Any], slots: tuple[str, ...] | None = None,
                 where: str = "checkpoint") -> None:
    """Copy a checkpoint's weights into ``net`` after checking every array against it (names,
    shapes, float dtypes, finite values; ``slots``: the optimizer's moments, None to skip them)."""
    params = net.named_parameters()
    shapes = {k: (tuple(p.value.shape), str(p.value.dtype)) for k, p in params.items()}
    checked = arrays if slots is not None else {
        k: v for k, v in arrays.items() if not k.startswith(("opt::", "carry::"))}
    checkpoint.check_arrays(dict(checked), shapes, slots or (), where)
    for k, p in params.items():
        key = f"param::{k}"
        if key not in arrays:
            from ..errors import CheckpointError

            raise CheckpointError(f"the checkpoint has no weights for {k}",
                                  hint="was it written for another spec?")
        p.value = arrays[key]


def format_step(r: Mapping[str, Any]) -> str:
    parts = [f"epoch {r['epoch']} step {r['step']}", f"train loss {r['train_loss']:.4f}"]
    for k in ("dev_accuracy", "dev_f1", "dev_perplexity"):
        if k in r:
            parts.append(f"{k.replace('_', ' ')} {r[k]:.2f}")
    return " | ".join(parts)


def format_epoch(r: Mapping[str, Any]) -> str:
    parts = [f"epoch {r['epoch']}", f"train loss {r['train_loss']:.4f}"]
    for k in ("dev_accuracy", "dev_f1", "dev_macro_f1", "dev_perplexity", "dev_bpc"):
        if k in r:
            parts.append(f"{k.replace('_', ' ')} {r[k]:.2f}")
    parts.append(f"{r['tokens_per_s']:,.0f} tok/s")
    parts.append(f"{r['seconds']:.0f}s")
    return " | ".join(parts)


__all__ = ["Interrupted", "TrainState", "Trainer", "evaluate", "selection_metric"]
