"""`rnndsl run`: from a checked spec to a trained model in a run directory (prepare.py builds
the network and data; finetune.py starts from another run).

A run directory holds: spec.rnn (a copy), config.json (the resolved settings, absolute data
paths), vocab.json, vectors.npz (pretrained rows, if any), manifest.json (their digests; see
rundir.py), metrics.jsonl (one line per epoch), metrics.json (final), report.html,
ckpt/{last,best}.json + weights, and what the spec's output block asks for (by default both):
curve.png and the dev predictions. The folder is `--out`, else the output block's `dir`, else
runs/SPEC-DATE-TIME.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import rundir
from .data.checks import check_data, enforce
from .data.vocab import Vocab
from .errors import CheckpointError, DataError, RnnError
from .finetune import (  # noqa: F401 - make_opt is re-exported
    apply_freeze,
    make_opt,
    override_training,
    pretrained_start,
    train_chain_thaw,
)
from .lang import OutputConfig
from .prepare import (  # noqa: F401 - prepare, load_run and the evaluation of a run live there
    Prepared,
    _read_config,
    _read_json,
    eval_file,
    eval_prepared,
    load_run,
    load_text,
    no_train_statement,
    prepare,
    read_run_spec,
)
from .train import checkpoint
from .train import lock as run_lock
from .train.loop import Trainer, evaluate, load_weights


def make_run_dir(spec_path: Path, out: str | None) -> Path:
    if out:
        d = Path(out)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        d = Path("runs") / f"{spec_path.stem}-{stamp}"
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create the run directory {str(d)[:200]}: "
                              f"{e.strerror or e}", hint="give another --out") from None
    run_lock.acquire(d)  # a second run on the same --out is refused while this one lives
    return d


def run(spec_path: str | Path | None, **options: Any) -> dict[str, Any]:
    """Train the spec's model; returns the final dev metrics (options: those of ``_run``).
    The run directory is locked while it trains (train/lock.py) and released however it ends."""
    try:
        return _run(spec_path, **options)
    finally:
        run_lock.release_all()


def _run(spec_path: str | Path | None, *, out: str | None = None, epochs: int | None = None,
        backend: str | None = None, seed: int | None = None, resume: str | None = None,
        log: Callable[[str], None] = print, progress: Any = None,
        limit: int | None = None, pretrained: str | None = None,
        chain_thaw: bool | None = None, profile: bool = False,
        ignore_data_errors: bool = False) -> dict[str, Any]:
    """Train the spec's model; returns the final dev metrics.

    The data checks (rnndsl/data/checks.py) run first: their warnings are logged, and an error
    stops the run before anything is written unless ``ignore_data_errors``.

    Under mpiexec with several ranks, training is data-parallel and only rank 0 writes.
    """
    from . import lang
    from .train.distributed import get_comm

    comm = get_comm()
    if not comm.is_root:
        log, progress = (lambda s: None), None
    elif progress is None:  # called from Python: a live bar in a Jupyter notebook, else none
        from .train.progress import notebook_bars

        progress = notebook_bars()
    if resume:
        run_dir = Path(resume)
        conf = _read_config(run_dir)
        if comm.is_root:
            run_lock.acquire(run_dir)
        rundir.verify(run_dir, conf, log)
        given, spec_path = spec_path, Path(conf["spec_path"])
        # the training data must be there (resuming trains further); pretrained vectors and the
        # run's own spec file need not: the run keeps the rows it used
        spec = read_run_spec(run_dir, spec_path, given, check_paths=False)
        spec = override_training(spec, conf.get("pretrained"), conf.get("chain_thaw"),
                                 resume=True)
        vocabs = {k: Vocab.from_json(v) for k, v in _read_json(run_dir / "vocab.json").items()}
        try:
            prep = prepare(spec, backend=backend or conf.get("backend"), seed=conf["seed"],
                           epochs=epochs if epochs is not None else conf["epochs"], vocabs=None,
                           log=log, limit=conf.get("limit"), vectors=rundir.read_vectors(run_dir))
        except DataError as e:
            raise DataError(e.message, span=e.span, hint=(e.hint + "; " if e.hint else "") +
                            "--resume trains further, so it reads the training data the run's "
                            f"spec names (relative to {spec_path.parent})") from None
        if {k: v.to_json() for k, v in prep.data.vocabs.items()} != \
                {k: v.to_json() for k, v in vocabs.items()}:
            raise CheckpointError(f"{run_dir}: the data changed since this run started",
                                  hint="resume needs the same training data")
    else:
        spec_path = Path(spec_path)
        spec = lang.load(str(spec_path))
        spec = override_training(spec, pretrained, chain_thaw)
        prep = prepare(spec, backend=backend, seed=seed, epochs=epochs, log=log, limit=limit)
        enforce(check_data(prep.data), log, ignore_data_errors, prep.data.warnings)
        out = out or (spec.output.dir if spec.output else None)  # --out wins over the spec's
        run_dir = Path(comm.bcast_str(str(make_run_dir(spec_path, out)) if comm.is_root
                                      else ""))
    if comm.is_root and not resume:
        checkpoint.atomic_write_text(run_dir / "spec.rnn", spec.source)
        conf = {"spec_path": str(spec_path.resolve()), "model": prep.cfg.model,
                "data": prep.cfg.data, "seed": prep.cfg.seed, "epochs": prep.cfg.epochs,
                "backend": prep.net.backend.name, "settings": prep.cfg.to_json(),
                "parameters": prep.net.parameter_count(), "limit": limit,
                "pretrained": pretrained, "chain_thaw": chain_thaw, "manifest": True}
        checkpoint.atomic_write_text(run_dir / "config.json", json.dumps(conf, indent=1,
                                                                         default=str))
        checkpoint.atomic_write_text(
            run_dir / "vocab.json",
            json.dumps({k: v.to_json() for k, v in prep.data.vocabs.items()}))
        rundir.write_vectors(run_dir, prep.vectors)
        rundir.write_manifest(run_dir)
    comm.barrier()
    net, cfg = prep.net, prep.cfg
    apply_freeze(net, prep.graph, list(cfg.freeze))
    new_params = None
    if cfg.pretrained:
        new_params = pretrained_start(net, Path(cfg.pretrained), prep.data, run_dir, resume,
                                      cfg.chain_thaw, log, comm)
    output = spec.output or OutputConfig()
    if cfg.chain_thaw:
        trainer = train_chain_thaw(prep, run_dir, new_params, log, progress, comm, bool(resume))
        return finish(trainer, run_dir, log, output, prep) if comm.is_root else {}
    trainer = Trainer(net, prep.data, make_opt(cfg, net), cfg, run_dir, log=log,
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
    return finish(trainer, run_dir, log, output, prep)


def format_profile(times: Mapping[str, float]) -> str:
    """Where the training time went, largest part first."""
    total = sum(times.values()) or 1.0
    rows = [f"  {k:12s} {v:9.2f} s  {100 * v / total:5.1f}%"
            for k, v in sorted(times.items(), key=lambda kv: -kv[1])]
    return "time spent (--profile):\n" + "\n".join(rows)


def finish(trainer: Trainer, run_dir: Path, log: Callable[[str], None],
           output: OutputConfig, prep: Prepared) -> dict[str, Any]:
    """Best weights -> final dev metrics, metrics.json, and what the output block asks for:
    the dev predictions, the curve plot."""
    arrays, meta = checkpoint.load(run_dir / "ckpt", "best")
    load_weights(trainer.net, arrays, where=str(run_dir / "ckpt" / "best.json"))
    data = trainer.data
    final: dict[str, Any] = {"best_epoch": meta.get("epoch")}
    ext = {"tagging": "txt", "classification": "tsv"}.get(data.kind) \
        if output.predictions else None
    if data.dev:
        path = run_dir / f"predictions.dev.{ext}" if ext else None
        best = trainer.best_dev  # evaluated with these weights at the end of their epoch
        if best is not None and best[0] == meta.get("epoch") and (path is None or best[2]):
            dev = best[1]
            if path is not None:
                best[2](path)
        else:  # the best epoch was trained by an earlier process (a resumed run)
            dev = evaluate(trainer.net, data, data.dev, trainer.s, trainer.needs,  # rank 0 alone
                           write=path)
        final.update({f"dev_{k}": v for k, v in dev.items()})
    if data.test:  # once, with the selected weights; never used for early stopping or selection
        test = evaluate(trainer.net, data, data.test, trainer.s, trainer.needs,
                        write=run_dir / f"predictions.test.{ext}" if ext else None)
        final.update({f"test_{k}": v for k, v in test.items()})
    if prep.spec.eval is not None:  # the spec's eval statement: its split, its metrics
        final.update(eval_statement(prep.spec.eval, final, trainer, log))
    final["epochs"] = len(trainer.state.history)
    final["train_seconds"] = round(sum(r["seconds"] for r in trainer.state.history), 1)
    checkpoint.atomic_write_text(run_dir / "metrics.json", json.dumps(final, indent=1))
    if output.plot:
        plot_curve(run_dir, trainer.state.history)
    from .report import write_report

    try:
        log(f"report: {write_report(run_dir, prep)}")
    except RnnError as e:  # the run itself is complete; say why its page is missing
        log(f"warning: no report.html ({e.message}); `rnndsl report {run_dir}` retries")
    return final


def eval_statement(ev: Any, final: Mapping[str, Any], trainer: Trainer,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """The spec's `eval` statement after training, with the selected weights: the metrics it
    names on its split (dev: the figures just computed; train: evaluated now), logged and kept
    in metrics.json as ``eval_<split>_<metric>``."""
    data = trainer.data
    if ev.split == "dev":
        res = {k[len("dev_"):]: v for k, v in final.items() if k.startswith("dev_")}
    else:
        res = evaluate(trainer.net, data, data.train, trainer.s, trainer.needs)
    chosen = {m: res[m] for m in ev.metrics if m in res}
    log(f"eval {ev.model} on {ev.data} ({ev.split}): "
        + ", ".join(f"{m} {v:.4g}" for m, v in chosen.items()))
    return {f"eval_{ev.split}_{m}": v for m, v in chosen.items()}


def plot_curve(run_dir: Path, history: list[dict]) -> None:
    """curve.png: losses, dev metrics and the learning rate by epoch (rnndsl/report/curves.py)."""
    from .report.curves import save_curve

    save_curve(run_dir, history)


