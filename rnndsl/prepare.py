"""From a checked spec, or a trained run directory, to the network and data it describes.

`prepare` builds a spec's data (reading the training files, or a run's vocabularies) and its
network; `load_run` rebuilds a run directory's and loads its best weights, reading nothing
outside the run. Training (run.py), predicting, exporting and the pictures start here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from . import limits, rundir
from .data.dataset import TaskData, field_key
from .data.readers import check_tag_scheme
from .data.vocab import Vocab
from .errors import (
    CheckpointError,
    DataError,
    Diagnostic,
    Span,
    SpecError,
    normalize_source,
    source_lines,
)
from .lang import TrainConfig
from .lang.ir import needs_of
from .nn.network import Network
from .rundir import VECTORS
from .train import checkpoint
from .train.loop import evaluate, load_weights


@dataclass
class Prepared:
    """A spec's model, data, network and settings, ready to train or evaluate.

    ``cfg`` is the spec's checked train block with the command line's overrides (epochs, seed):
    the one settings object the trainer reads."""

    spec: Any
    cfg: TrainConfig
    graph: nx.DiGraph
    data: TaskData
    net: Network
    needs: set[str]
    vectors: dict[str, Any] = dataclasses.field(default_factory=dict)  # pretrained rows used


def no_train_statement(spec: Any) -> SpecError:
    """`run` on a checked spec that declares models but no training: a spec error at the
    file's last line, the hint naming its last definition and its first dataset."""
    lines = source_lines(spec.source.rstrip("\n")) or [""]
    span = Span(len(lines), 1, len(lines), len(lines[-1]) + 1, path=spec.path)
    model = list(spec.definitions)[-1] if spec.definitions else "MODEL"
    data = next(iter(spec.data), "DATA")
    return SpecError([Diagnostic(
        "MissingTrain", "the spec has no train statement, so `rnndsl run` has nothing to train",
        span, f"add one, e.g. `train {model} on {data} {{ epochs = 5 }}`")], spec.source)


def prepare(spec: Any, *, backend: str | None = None, seed: int | None = None,
            epochs: int | None = None, vocabs: Mapping[str, Vocab] | None = None,
            log: Callable[[str], None] = print, dtype: str = "float32",
            limit: int | None = None, vectors: Mapping[str, Any] | None = None) -> Prepared:
    """The spec's data, network and settings. ``vocabs`` (a trained run's) skips reading the
    training data; ``vectors`` (a run's vectors.npz) stands in for the pretrained vector files."""
    cfg = spec.train
    if cfg is None:
        raise no_train_statement(spec)
    overrides = {k: v for k, v in (("epochs", epochs), ("seed", seed)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    graph = spec.models[cfg.model]
    decl = spec.data[cfg.data]
    data = TaskData(cfg.data, decl.reader, decl.args, vocabs=vocabs, read_train=vocabs is None,
                    limit=limit)
    for w in data.warnings:
        log(f"warning: {w}")
    pretrained = {}
    for n, a in graph.nodes(data=True):
        p = a.get("params", {})
        if a["kind"] == "embed" and p.get("pretrained") and vectors is not None:
            if n not in vectors:
                raise CheckpointError(f"the run's {VECTORS} has no rows for {n}",
                                      hint="the run directory was edited; restore it")
            pretrained[n] = vectors[n]
        elif a["kind"] == "embed" and p.get("pretrained") and vocabs is None:
            from .autodiff.backend import host_rng
            from .data.embeddings import build_matrix, load_vectors
            from .data.pretrained import load_named
            from .lang.catalogue import PRETRAINED_VECTORS

            _, fld = field_key(p.get("source") or p.get("field"))
            vocab = data.vocabs["chars" if fld == "chars" else "words"]
            named = PRETRAINED_VECTORS.get(p["pretrained"])
            if named is not None:  # a packaged set: only the vocabulary's rows are read
                words, vecs = load_named(named, vocab.tokens)
            else:
                words, vecs = load_vectors(p["pretrained"], format=str(p.get("format") or "auto"))
            matrix, report = build_matrix(vocab, words, vecs, int(p["d"]),
                                          host_rng([cfg.seed, 7]), source=p["pretrained"])
            log(str(report))
            pretrained[n] = matrix
    tag_names = {}
    if "tags" in data.vocabs:
        tag_names[f"{cfg.data}.tags"] = data.vocabs["tags"].tokens
    for n, a in graph.nodes(data=True):  # scheme=auto means the data's declared scheme
        if a["kind"] == "crf" and a.get("params", {}).get("scheme", "auto") == "auto":
            a["params"] = {**a["params"], "scheme": data.scheme}
        if a["kind"] == "crf":  # a tag the scheme cannot read, at its file and line
            check_tag_scheme([*data.train, *data.dev], str(a["params"].get("scheme", "none")))
    scale = float(cfg.init.args["scale"]) if cfg.init.name == "uniform" else None
    net = Network(graph, data.sizes(), seed=cfg.seed, dtype=dtype, backend=backend,
                  init_scale=scale, pretrained=pretrained, tag_names=tag_names,
                  counts=data.counts())
    return Prepared(spec, cfg, graph, data, net, needs_of(graph), pretrained)


def load_text(text: str, path: str, check_paths: bool = True,
              base_dir: Path | None = None) -> Any:
    """Check a spec copy as if it stood at ``path`` (its data paths resolve from there, or from
    ``base_dir``; with ``check_paths=False`` they need not exist)."""
    from . import lang

    checked, diags = lang.check_text(text, path, base_dir, check_paths=check_paths)
    if checked is None:
        raise SpecError(diags, text)
    return checked


def _read_json(path: Path) -> dict:
    """A JSON object of a run directory (regular file, bounded size and depth:
    checkpoint.read_json), or a CheckpointError naming the file."""
    if not Path(path).exists():
        raise CheckpointError(f"{path} is missing", hint="is this a run directory?")
    data = checkpoint.read_json(Path(path), "the file")
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(data).__name__}",
                              hint="the file was edited; retrain, or restore it")
    return data


def read_run_spec(run_dir: Path, spec_path: Path, given: str | Path | None = None,
                  check_paths: bool = True) -> Any:
    """The run's own copy of its spec, checked as ``RUN_DIR/spec.rnn`` (errors point at that
    file; data paths resolve from the original spec's folder, and need not exist with
    ``check_paths=False``). ``given``: a spec named on the command line too, which must be the
    same text."""
    copy = run_dir / "spec.rnn"
    why = limits.not_regular(copy)
    if why is not None or not copy.exists():
        raise CheckpointError(f"{copy}: cannot read the run's spec: {why or 'no such file'}",
                              hint="a run directory keeps the spec it was started with; "
                                   "restore it, or start a new run")
    try:
        text = copy.read_bytes()[: limits.MAX_SPEC_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{copy}: the run's spec is not UTF-8 text ({e.reason} at byte "
                              f"{e.start})", hint="the file was altered; restore it") from None
    except OSError as e:
        raise CheckpointError(f"{copy}: cannot read the run's spec ({e.strerror})") from None
    if given is not None:
        from .lang import _read

        other, problem = _read(given)
        if problem is not None:
            raise SpecError([problem])
        if normalize_source(other or "") != normalize_source(text):
            raise CheckpointError(
                f"{given} is not the spec {run_dir} was started with",
                hint=f"--resume continues the run's own spec ({copy}); drop the spec argument, "
                     "or start a new run with --out for the changed spec")
    return load_text(text, str(copy), check_paths, base_dir=spec_path.parent)


_CONFIG_TYPES: dict[str, tuple[type, ...]] = {  # what config.json must hold, for what reads it
    "spec_path": (str,), "seed": (int,), "epochs": (int,), "backend": (str, type(None)),
    "limit": (int, type(None)), "pretrained": (str, type(None)),
    "chain_thaw": (bool, type(None)), "manifest": (bool, type(None)),
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
    """Rebuild a run's network from its spec copy and vocabularies and load its best weights.

    Reads nothing outside the run directory (see rundir.py); its files are checked first."""

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory",
                              hint="give the --out folder of an earlier `rnndsl run`")
    conf = _read_config(run_dir)
    rundir.verify(run_dir, conf, log)
    spec = read_run_spec(run_dir, Path(conf["spec_path"]), check_paths=False)
    vocabs = {k: Vocab.from_json(v) for k, v in _read_json(run_dir / "vocab.json").items()}
    prep = prepare(spec, backend=backend, seed=conf["seed"], vocabs=vocabs, log=log)
    arrays, _ = checkpoint.load(run_dir / "ckpt", "best")
    load_weights(prep.net, arrays, where=str(run_dir / "ckpt" / "best.json"))
    return prep, run_dir


def eval_file(run_dir: str | Path, path: str, backend: str | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    prep, _ = load_run(run_dir, backend, log)
    return eval_prepared(prep, path)


def eval_prepared(prep: Prepared, path: str) -> dict[str, Any]:
    """Metrics of a loaded run on a file in its data's format (`rnndsl eval --json`)."""
    examples = prep.data.read_file(path)
    if not examples:
        raise DataError(f"{path}: no examples")
    return evaluate(prep.net, prep.data, examples, prep.cfg, prep.needs)
