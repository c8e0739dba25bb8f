"""Starting from another run: its weights transferred by name (`--pretrained`, the spec's
`pretrained`), frozen definitions, and DeepMoji's chain-thaw schedule (new layers first, then
each layer alone, then all), each stage trained to its own early stop in a stage folder.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx

from . import rundir
from .autodiff.backend import to_host
from .data.dataset import TaskData
from .data.vocab import Vocab
from .errors import CheckpointError, RnnError
from .lang import TrainConfig
from .nn.network import Network
from .prepare import Prepared, _read_config, _read_json, no_train_statement
from .train import checkpoint
from .train.loop import Trainer, TrainState, load_weights
from .train.optim import make_optimizer


def override_training(spec: Any, pretrained: str | None, chain_thaw: bool | None,
                      resume: bool = False) -> Any:
    """The spec with `pretrained` / `chain_thaw` of its train block replaced (CLI overrides).
    A resumed run need not find its source run (it continues from its own checkpoints)."""
    if pretrained is None and chain_thaw is None:
        return spec
    if spec.train is None:
        raise no_train_statement(spec)
    changes: dict[str, Any] = {}
    if pretrained is not None:
        if not resume and not (Path(pretrained) / "ckpt" / "best.json").exists():
            raise CheckpointError(f"{pretrained} is not a finished run directory",
                                  hint="give the --out folder of an earlier `rnndsl run`")
        changes["pretrained"] = str(Path(pretrained).resolve())
    if chain_thaw is not None:
        changes["chain_thaw"] = chain_thaw
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, **changes))


def pretrained_start(net: Network, src: Path, data: TaskData, run_dir: Path, resume: bool,
                     chain_thaw: bool, log: Callable[[str], None], comm: Any) -> list[str]:
    """Start from another run's weights; the names of the parameters that stayed new are kept
    in the run (pretrained.json), so a resumed run needs the source run no more: it continues
    from its own checkpoints."""
    record = run_dir / rundir.PRETRAINED
    if resume and not src.exists():
        new = _read_json(record).get("new") if record.exists() else None
        if not isinstance(new, list) or not all(isinstance(k, str) for k in new):
            raise CheckpointError(f"{src}: the run this one started from is gone, and "
                                  f"{record} does not say which layers were new",
                                  hint="restore the pretrained run, or restart this run")
        first = run_dir / "stage1" / "ckpt" if chain_thaw else run_dir / "ckpt"
        if not checkpoint.exists(first, "last"):
            raise CheckpointError(f"{src}: the run this one started from is gone, and this "
                                  "run stopped before its first checkpoint",
                                  hint="restore the pretrained run, or restart this run")
        log(f"note: {src} is gone; resuming from this run's own checkpoints")
        return new
    new = transfer(net, src, data, log if not resume else (lambda s: None))
    if comm.is_root and not resume:
        checkpoint.atomic_write_text(record, json.dumps({"source": str(src), "new": new}))
        rundir.write_manifest(run_dir)
    return new


def make_opt(cfg: TrainConfig, net: Network) -> Any:
    """The spec's optimizer over the parameters that are not frozen."""
    trainable = {k: p for k, p in net.named_parameters().items() if not p.frozen}
    return make_optimizer(cfg.optimizer.name, trainable, weight_decay=cfg.weight_decay,
                          **cfg.optimizer.args)


def chain_thaw_stages(net: Network, new_params: list[str] | None) -> list[tuple[str, list[str]]]:
    """DeepMoji's chain-thaw: (a) the new layers, (b) each other layer alone, first to last,
    (c) everything. Without pretrained weights the "new" layer is the output head."""
    params = net.named_parameters()
    layers = [n for n in net.order if n in net.modules and net.modules[n].named_parameters()]
    if new_params is None:
        new_params = [k for k in params if k.startswith(f"{net.output}.")]
    new_set = set(new_params)
    stages = [("the new layers", sorted(new_set))] if new_set else []
    for n in layers:
        names = [k for k in params if k.startswith(f"{n}.") and k not in new_set]
        if names:
            stages.append((f"layer {n}", names))
    stages.append(("all layers", list(params)))
    return stages


def train_chain_thaw(prep: Prepared, run_dir: Path, new_params: list[str] | None,
               log: Callable[[str], None], progress: Any, comm: Any, resume: bool) -> Trainer:
    """Fine-tune stage by stage (Felbo et al. 2017), each stage with its own optimizer and early
    stopping on dev; the best weights of a stage start the next. Stage k runs in run_dir/stageK."""
    net, cfg = prep.net, prep.cfg
    params = net.named_parameters()
    frozen_by_spec = {k for k, p in params.items() if p.frozen}
    stages = chain_thaw_stages(net, new_params)
    history: list[dict] = []
    trainer = None
    for k, (label, names) in enumerate(stages):
        sdir = run_dir / f"stage{k + 1}"
        sdir.mkdir(parents=True, exist_ok=True)
        for name, p in params.items():
            p.frozen = name not in names or name in frozen_by_spec
            p.requires_grad = not p.frozen
        trainer = Trainer(net, prep.data, make_opt(cfg, net), cfg, sdir, log=log,
                          progress=progress, needs=prep.needs, comm=comm)
        if (sdir / "done").exists():  # finished before an interruption: take its best weights
            arrays, _ = checkpoint.load(sdir / "ckpt", "best")
            load_weights(net, arrays)
            _, meta = checkpoint.load(sdir / "ckpt", "last")
            done = TrainState.from_json(meta.get("state"), str(sdir / "ckpt" / "last.json"))
            history += [{**r, "stage": k + 1} for r in done.history]
            continue
        if resume and checkpoint.exists(sdir / "ckpt", "last"):
            trainer.restore("last")
        log(f"chain-thaw step {k + 1}/{len(stages)}: training {label}")
        trainer.train()
        arrays, _ = checkpoint.load(sdir / "ckpt", "best")
        load_weights(net, arrays)
        history += [{**r, "stage": k + 1} for r in trainer.state.history]
        if comm.is_root:
            checkpoint.atomic_write_text(sdir / "done", "\n")
    for p in params.values():
        p.frozen = False
        p.requires_grad = True
    final = Trainer(net, prep.data, make_opt(cfg, net), cfg, run_dir, log=log,
                    progress=progress, needs=prep.needs, comm=comm)
    final.state.history = history
    final.state.epoch = len(history)
    final.save("best")
    final.save("last")
    return final


def apply_freeze(net: Network, graph: nx.DiGraph, names: list) -> None:
    """Freeze the parameters of the named definitions (or layer node ids)."""
    for name in names:
        name = str(name)
        hit = False
        for n, a in graph.nodes(data=True):
            if n == name or n.startswith(name + ".") or a.get("definition") == name:
                for p in net.modules[n].named_parameters().values() if n in net.modules else []:
                    p.frozen = True
                    p.requires_grad = False  # no gradient is computed for it at all
                    hit = True
        if not hit:
            raise RnnError(f"freeze: no layer belongs to {name!r}")


def transfer(net: Network, src: Path, data: TaskData, log: Callable[[str], None]) -> list[str]:
    """Initialise from another run's best weights: same names and shapes; embedding rows by word.

    Returns the names of the parameters that stayed new (not found in the source run)."""
    rundir.verify(src, _read_config(src), log)
    arrays, _ = checkpoint.load(src / "ckpt", "best")
    try:
        src_vocab = {k: Vocab.from_json(v) for k, v in _read_json(src / "vocab.json").items()}
    except CheckpointError:
        src_vocab = {}
    loaded, skipped = 0, []
    for name, p in net.named_parameters().items():
        a = arrays.get(f"param::{name}")
        if a is None:
            skipped.append(name)
            continue
        if name.endswith(".weight") and "words" in src_vocab and a.shape[0] == len(
                src_vocab["words"]) and a.ndim == 2 and a.shape[1] == p.shape[1]:
            new = to_host(p.value).copy()
            words = data.vocabs["words"]
            for i, w in enumerate(words.tokens):
                if w in src_vocab["words"]:
                    new[i] = a[src_vocab["words"].index(w)]
            p.value = new
            loaded += 1
        elif tuple(a.shape) == tuple(p.shape):
            p.value = a
            loaded += 1
        else:
            skipped.append(name)
    log(f"pretrained weights from {src}: {loaded} tensors loaded"
        + (f", {len(skipped)} new ({', '.join(skipped[:4])}...)" if skipped else ""))
    return skipped
