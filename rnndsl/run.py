"""`rnndsl run / eval / predict`: from a checked spec to a trained model in a run directory.

A run directory holds: spec.rnn (a copy), config.json (the resolved settings, absolute data
paths), vocab.json, metrics.jsonl (one line per epoch), metrics.json (final), curve.png,
ckpt/{last,best}.json + weights, and the dev predictions.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from .autodiff.backend import to_host
from .data.dataset import TaskData, field_key
from .data.vocab import Vocab
from .errors import CheckpointError, DataError, Diagnostic, RnnError, Span, SpecError
from .nn.network import Network
from .train import checkpoint
from .train.loop import Trainer, TrainSettings, TrainState, evaluate, load_weights
from .train.optim import make_optimizer


def call_parts(x: Any, default: str = "none") -> tuple[str, dict]:
    """(name, args) from a resolved call setting: a tuple, an object with name/args, or a str."""
    if x is None:
        return default, {}
    if isinstance(x, str):
        return x, {}
    if isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[1], Mapping):
        return str(x[0]), dict(x[1])
    name = getattr(x, "name", None)
    if name is not None:
        return str(name), dict(getattr(x, "args", {}) or {})
    return str(x), {}


def settings_from(cfg: Any, epochs: int | None = None, seed: int | None = None) -> TrainSettings:
    es = getattr(cfg, "early_stop", None)
    early = (str(es.metric).split(".")[-1], int(es.patience)) if es else None
    clip = getattr(cfg, "clip", 5.0)
    return TrainSettings(
        epochs=int(epochs if epochs is not None else getattr(cfg, "epochs", 10)),
        batch=int(getattr(cfg, "batch", 32)),
        clip=None if clip in (None, "none", 0) else float(clip),
        seed=int(seed if seed is not None else getattr(cfg, "seed", 1)),
        schedule=call_parts(getattr(cfg, "schedule", None)),
        early_stop=early,
        bptt=int(getattr(cfg, "bptt", 35) or 35),
        reduction=str(getattr(cfg, "reduction", "mean") or "mean"),
        checkpoint_every=int(getattr(cfg, "checkpoint_every", 0) or 0),
    )


def needs_of(graph: nx.DiGraph) -> set[str]:
    """Which batch parts the model reads: characters, spans."""
    needs = set()
    for _, a in graph.nodes(data=True):
        p = a.get("params", {})
        if a["kind"] == "input" and p.get("field") in ("chars", "feats"):
            needs.add(p["field"])
        if a["kind"] == "split":
            needs.add("spans")
    return needs


@dataclass
class Prepared:
    """A spec's model, data, network and settings, ready to train or evaluate."""

    spec: Any
    cfg: Any
    graph: nx.DiGraph
    data: TaskData
    net: Network
    settings: TrainSettings
    needs: set[str]


def no_train_statement(spec: Any) -> SpecError:
    """`run` on a checked spec that declares models but no training: a spec error at the
    file's last line, the hint naming its last definition and its first dataset."""
    lines = spec.source.splitlines() or [""]
    span = Span(len(lines), 1, len(lines), len(lines[-1]) + 1, path=spec.path)
    model = list(spec.definitions)[-1] if spec.definitions else "MODEL"
    data = next(iter(spec.data), "DATA")
    return SpecError([Diagnostic(
        "MissingTrain", "the spec has no train statement, so `rnndsl run` has nothing to train",
        span, f"add one, e.g. `train {model} on {data} {{ epochs = 5 }}`")], spec.source)


def prepare(spec: Any, *, backend: str | None = None, seed: int | None = None,
            epochs: int | None = None, vocabs: Mapping[str, Vocab] | None = None,
            log: Callable[[str], None] = print, dtype: str = "float32",
            limit: int | None = None) -> Prepared:
    cfg = spec.train
    if cfg is None:
        raise no_train_statement(spec)
    graph = spec.models[cfg.model]
    decl = spec.data[cfg.data]
    data = TaskData(cfg.data, decl.reader, decl.args, vocabs=vocabs, read_train=vocabs is None,
                    limit=limit)
    for w in data.warnings:
        log(f"warning: {w}")
    settings = settings_from(cfg, epochs, seed)
    # the dev metric that picks the best epoch when the spec names none for early stopping
    settings.metric = ("perplexity" if data.kind == "lm" else
                       "f1" if data.scheme != "none" else "accuracy")
    settings.metric = data.official_metric or settings.metric  # TweetEval's own metric
    pretrained = {}
    for n, a in graph.nodes(data=True):
        p = a.get("params", {})
        if a["kind"] == "embed" and p.get("pretrained") and vocabs is None:
            from .autodiff.backend import host_rng  # noqa: PLC0415
            from .data.embeddings import build_matrix, load_vectors  # noqa: PLC0415
            from .data.pretrained import load_named  # noqa: PLC0415
            from .lang.catalogue import PRETRAINED_VECTORS  # noqa: PLC0415

            _, fld = field_key(p.get("source") or p.get("field"))
            vocab = data.vocabs["chars" if fld == "chars" else "words"]
            named = PRETRAINED_VECTORS.get(p["pretrained"])
            if named is not None:  # a packaged set: only the vocabulary's rows are read
                words, vecs = load_named(named, vocab.tokens)
            else:
                words, vecs = load_vectors(p["pretrained"], format=str(p.get("format") or "auto"))
            matrix, report = build_matrix(vocab, words, vecs, int(p["d"]),
                                          host_rng([settings.seed, 7]), source=p["pretrained"])
            log(str(report))
            pretrained[n] = matrix
    tag_names = {}
    if "tags" in data.vocabs:
        tag_names[f"{cfg.data}.tags"] = data.vocabs["tags"].tokens
    for n, a in graph.nodes(data=True):  # scheme=auto means the data's declared scheme
        if a["kind"] == "crf" and a.get("params", {}).get("scheme", "auto") == "auto":
            a["params"] = {**a["params"], "scheme": data.scheme}
    init_name, init_args = call_parts(getattr(cfg, "init", None), "default")
    scale = None
    if init_name == "uniform":
        scale = float(init_args.get("a", init_args.get("scale", next(iter(init_args.values()),
                                                                      0.1))))
    net = Network(graph, data.sizes(), seed=settings.seed, dtype=dtype, backend=backend,
                  init_scale=scale, pretrained=pretrained, tag_names=tag_names,
                  counts=data.counts())
    return Prepared(spec, cfg, graph, data, net, settings, needs_of(graph))


def override_training(spec: Any, pretrained: str | None, chain_thaw: bool | None) -> Any:
    """The spec with `pretrained` / `chain_thaw` of its train block replaced (CLI overrides)."""
    if pretrained is None and chain_thaw is None:
        return spec
    if spec.train is None:
        raise no_train_statement(spec)
    changes: dict[str, Any] = {}
    if pretrained is not None:
        if not (Path(pretrained) / "ckpt" / "best.json").exists():
            raise CheckpointError(f"{pretrained} is not a finished run directory",
                                  hint="give the --out folder of an earlier `rnndsl run`")
        changes["pretrained"] = str(Path(pretrained).resolve())
    if chain_thaw is not None:
        changes["chain_thaw"] = chain_thaw
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, **changes))


def make_run_dir(spec_path: Path, out: str | None) -> Path:
    if out:
        d = Path(out)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        d = Path("runs") / f"{spec_path.stem}-{stamp}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def run(spec_path: str | Path, *, out: str | None = None, epochs: int | None = None,
        backend: str | None = None, seed: int | None = None, resume: str | None = None,
        log: Callable[[str], None] = print, progress: Any = None,
        limit: int | None = None, pretrained: str | None = None,
        chain_thaw: bool | None = None, profile: bool = False) -> dict[str, Any]:
    """Train the spec's model; returns the final dev metrics.

    Under mpiexec with several ranks, training is data-parallel and only rank 0 writes.
    """
    from . import lang  # noqa: PLC0415
    from .train.distributed import get_comm  # noqa: PLC0415

    comm = get_comm()
    if not comm.is_root:
        log, progress = (lambda s: None), None
    if resume:
        run_dir = Path(resume)
        conf = _read_config(run_dir)
        spec_path = Path(conf["spec_path"])
        spec = load_text((run_dir / "spec.rnn").read_text("utf-8"), str(spec_path))
        spec = override_training(spec, conf.get("pretrained"), conf.get("chain_thaw"))
        vocabs = {k: Vocab.from_json(v) for k, v in _read_json(run_dir / "vocab.json").items()}
        prep = prepare(spec, backend=backend or conf.get("backend"), seed=conf["seed"],
                       epochs=epochs if epochs is not None else conf["epochs"], vocabs=None,
                       log=log, limit=conf.get("limit"))
        if {k: v.to_json() for k, v in prep.data.vocabs.items()} != \
                {k: v.to_json() for k, v in vocabs.items()}:
            raise CheckpointError(f"{run_dir}: the data changed since this run started",
                                  hint="resume needs the same training data")
    else:
        spec_path = Path(spec_path)
        spec = lang.load(str(spec_path))
        spec = override_training(spec, pretrained, chain_thaw)
        prep = prepare(spec, backend=backend, seed=seed, epochs=epochs, log=log, limit=limit)
        run_dir = Path(comm.bcast_str(str(make_run_dir(spec_path, out)) if comm.is_root
                                      else ""))
    if comm.is_root and not resume:
        checkpoint.atomic_write_text(run_dir / "spec.rnn", spec.source)
        conf = {"spec_path": str(spec_path.resolve()), "model": prep.cfg.model,
                "data": prep.cfg.data, "seed": prep.settings.seed, "epochs": prep.settings.epochs,
                "backend": prep.net.backend.name, "settings": prep.settings.__dict__,
                "parameters": prep.net.parameter_count(), "limit": limit,
                "pretrained": pretrained, "chain_thaw": chain_thaw}
        checkpoint.atomic_write_text(run_dir / "config.json", json.dumps(conf, indent=1,
                                                                         default=str))
        checkpoint.atomic_write_text(
            run_dir / "vocab.json",
            json.dumps({k: v.to_json() for k, v in prep.data.vocabs.items()}))
    comm.barrier()
    net, cfg = prep.net, prep.cfg
    apply_freeze(net, prep.graph, getattr(cfg, "freeze", None) or [])
    new_params = None
    if getattr(cfg, "pretrained", None):
        new_params = transfer(net, Path(cfg.pretrained), prep.data, log if not resume else
                              (lambda s: None))
    if getattr(cfg, "chain_thaw", False):
        trainer = train_chain_thaw(prep, run_dir, new_params, log, progress, comm, bool(resume))
        return finish(trainer, run_dir, log) if comm.is_root else {}
    trainer = Trainer(net, prep.data, make_opt(cfg, net), prep.settings, run_dir, log=log,
                      progress=progress, needs=prep.needs, comm=comm, profile=profile)
    if resume:
        trainer.restore("last")
        log(f"resuming {run_dir} at epoch {trainer.state.epoch + 1}, "
            f"step {trainer.state.step}")
    log(f"run directory: {run_dir}")
    log(f"model {cfg.model}: {net.parameter_count():,} parameters; "
        f"{len(prep.data.train):,} training and {len(prep.data.dev):,} dev examples"
        + (f"; {comm.size} ranks" if comm.size > 1 else ""))
    trainer.train()
    if trainer.times is not None:
        log(format_profile(trainer.times))
    if not comm.is_root:
        return {}
    return finish(trainer, run_dir, log)


def format_profile(times: Mapping[str, float]) -> str:
    """Where the training time went, largest part first."""
    total = sum(times.values()) or 1.0
    rows = [f"  {k:12s} {v:9.2f} s  {100 * v / total:5.1f}%"
            for k, v in sorted(times.items(), key=lambda kv: -kv[1])]
    return "time spent (--profile):\n" + "\n".join(rows)


def make_opt(cfg: Any, net: Network) -> Any:
    """The spec's optimizer over the parameters that are not frozen."""
    opt_name, opt_args = call_parts(getattr(cfg, "optimizer", None), "adam")
    trainable = {k: p for k, p in net.named_parameters().items() if not p.frozen}
    return make_optimizer(opt_name, trainable, weight_decay=float(
        getattr(cfg, "weight_decay", 0.0) or 0.0), **opt_args)


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
        trainer = Trainer(net, prep.data, make_opt(cfg, net), prep.settings, sdir, log=log,
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
    final = Trainer(net, prep.data, make_opt(cfg, net), prep.settings, run_dir, log=log,
                    progress=progress, needs=prep.needs, comm=comm)
    final.state.history = history
    final.state.epoch = len(history)
    final.save("best")
    final.save("last")
    return final


def finish(trainer: Trainer, run_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Best weights -> final dev metrics, predictions, metrics.json and the curve plot."""
    arrays, meta = checkpoint.load(run_dir / "ckpt", "best")
    load_weights(trainer.net, arrays)
    data = trainer.data
    final: dict[str, Any] = {"best_epoch": meta.get("epoch")}
    if data.dev:
        ext = {"tagging": "txt", "classification": "tsv"}.get(data.kind)
        dev = evaluate(trainer.net, data, data.dev, trainer.s, trainer.needs,  # rank 0 alone
                       write=run_dir / f"predictions.dev.{ext}" if ext else None)
        final.update({f"dev_{k}": v for k, v in dev.items()})
    final["epochs"] = len(trainer.state.history)
    final["train_seconds"] = round(sum(r["seconds"] for r in trainer.state.history), 1)
    checkpoint.atomic_write_text(run_dir / "metrics.json", json.dumps(final, indent=1))
    plot_curve(run_dir, trainer.state.history)
    return final


def plot_curve(run_dir: Path, history: list[dict]) -> None:
    if not history:
        return
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ep = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [r["train_loss"] for r in history], "o-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    keys = [k for k in ("dev_accuracy", "dev_f1", "dev_macro_f1", "dev_perplexity")
            if k in history[0]]
    if keys:
        ax2 = ax.twinx()
        for k in keys:
            ax2.plot(ep, [r[k] for r in history], "s--", color="tab:orange", label=k)
        ax2.set_ylabel(", ".join(keys))
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    fig.tight_layout()
    tmp = run_dir / ".curve.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(run_dir / "curve.png")


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


def load_text(text: str, path: str) -> Any:
    """Check a spec copy as if it stood at ``path`` (its data paths resolve from there)."""
    from . import lang  # noqa: PLC0415
    from .errors import SpecError  # noqa: PLC0415

    checked, diags = lang.check_text(text, path)
    if checked is None:
        raise SpecError(diags, text)
    return checked


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing", hint="is this a run directory?") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {  # what config.json must hold, for what reads it
    "spec_path": (str,), "seed": (int,), "epochs": (int,), "backend": (str, type(None)),
    "limit": (int, type(None)), "pretrained": (str, type(None)),
    "chain_thaw": (bool, type(None)),
}


def _read_config(run_dir: Path) -> dict:
    """A run directory's config.json, checked: an edited value gives a CheckpointError that
    names it, not a crash somewhere later."""
    path = run_dir / "config.json"
    conf = _read_json(path)
    if not isinstance(conf, dict):
        raise CheckpointError(f"{path}: not a run configuration",
                              hint="restore the file from the run, or retrain")
    for key, types in _CONFIG_TYPES.items():
        value = conf.get(key)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if ok and key in ("seed", "epochs", "limit") and value is not None:
            ok = (0 if key == "seed" else 1) <= value <= 10**9
        if not ok:
            raise CheckpointError(
                f"{path}: {key!r} is {json.dumps(value)}, which this run never wrote",
                hint="the file was edited; restore it from the run's spec, or retrain")
    return conf


def load_run(run_dir: str | Path, backend: str | None = None,
             log: Callable[[str], None] = print) -> tuple[Prepared, Path]:
    """Rebuild a run's network from its spec copy and vocabularies and load its best weights."""

    run_dir = Path(run_dir)
    conf = _read_config(run_dir)
    try:
        text = (run_dir / "spec.rnn").read_text("utf-8")
    except OSError:
        raise CheckpointError(f"{run_dir}/spec.rnn is missing") from None
    spec = load_text(text, conf["spec_path"])
    vocabs = {k: Vocab.from_json(v) for k, v in _read_json(run_dir / "vocab.json").items()}
    prep = prepare(spec, backend=backend, seed=conf["seed"], vocabs=vocabs, log=log)
    arrays, _ = checkpoint.load(run_dir / "ckpt", "best")
    load_weights(prep.net, arrays)
    return prep, run_dir


def eval_file(run_dir: str | Path, path: str, backend: str | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    prep, _ = load_run(run_dir, backend, log)
    examples = prep.data.read_file(path)
    if not examples:
        raise DataError(f"{path}: no examples")
    return evaluate(prep.net, prep.data, examples, prep.settings, prep.needs)
