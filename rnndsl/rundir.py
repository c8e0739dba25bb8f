"""A run directory that stands alone: what it holds, its manifest, and the check on loading.

Everything `eval`, `predict`, `generate`, `export`, `render --checkpoint`, `--resume` and
fine-tuning (`--pretrained`, chain-thaw) read is inside the run:

    spec.rnn       the spec as it was run (re-checked on loading, its data paths not required)
    config.json    the resolved settings (seed, epochs, limit, ...)
    vocab.json     words, characters, tags or labels (the label sets; the tag scheme is the spec's)
    vectors.npz    the rows of pretrained vectors the embeddings started from (when a spec
                   names `pretrained=`), so `--resume` does not need the vectors file
    pretrained.json  for a run started from another run's weights: that run and which layers
                   were new (chain-thaw's first stage), so `--resume` does not need that run
    ckpt/          best and last weights, each with its SHA-256 in the metadata
    manifest.json  the SHA-256 of each file above (but ckpt/), written when the run starts

The training data is needed only to train further (`--resume`). Loading a run compares every
file of the manifest with its digest: a missing or edited file is refused with its name.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .autodiff.backend import host, to_host
from .errors import CheckpointError
from .train.checkpoint import atomic_write_bytes, atomic_write_text

MANIFEST = "manifest.json"
FORMAT = "rnndsl-run-1"
VECTORS = "vectors.npz"
PRETRAINED = "pretrained.json"
RECORDED = ("spec.rnn", "config.json", "vocab.json", VECTORS, PRETRAINED)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_vectors(run_dir: Path, matrices: Mapping[str, Any]) -> None:
    """The pretrained rows each embedding node started from (node name -> (V, d) array)."""
    if not matrices:
        return
    buf = io.BytesIO()
    host.savez(buf, **{k: host.ascontiguousarray(to_host(v)) for k, v in matrices.items()})
    atomic_write_bytes(Path(run_dir) / VECTORS, buf.getvalue())


def read_vectors(run_dir: Path) -> dict[str, Any] | None:
    """The run's pretrained rows, or None when its spec used no pretrained vectors."""
    path = Path(run_dir) / VECTORS
    if not path.exists():
        return None
    try:
        with host.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"{path}: unreadable pretrained vectors ({e})") from None


def write_manifest(run_dir: Path) -> None:
    """Record the digest of every file of RECORDED that the run has (call after writing them)."""
    run_dir = Path(run_dir)
    files = {name: _digest(run_dir / name) for name in RECORDED if (run_dir / name).exists()}
    atomic_write_text(run_dir / MANIFEST,
                      json.dumps({"format": FORMAT, "sha256": files}, indent=1, sort_keys=True))


def verify(run_dir: Path, conf: Mapping[str, Any] | None = None,
           log: Callable[[str], None] | None = None) -> None:
    """Raise CheckpointError naming the first file of the run that is missing or was altered.

    ``conf`` is the run's config.json: runs that wrote a manifest say so there ("manifest":
    true), so a deleted manifest is refused, while a run from before manifests (2026-12-04) is
    loaded unchecked, with a note to ``log``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory",
                              hint="give the --out folder of an earlier `rnndsl run`")
    path = run_dir / MANIFEST
    if not path.exists():
        if conf is not None and conf.get("manifest") is not True:
            if log is not None:
                log(f"note: {run_dir} has no {MANIFEST} (written before run directories had "
                    "one): its files are not checked")
            return
        raise CheckpointError(
            f"{path} is missing",
            hint="the run needs every file it wrote (the manifest holds their digests); copy "
                 "the whole folder, or retrain")
    try:
        man = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})",
                              hint="the file was truncated or edited; restore the run") from None
    files = man.get("sha256") if isinstance(man, dict) else None
    if not isinstance(man, dict) or man.get("format") != FORMAT or not isinstance(files, dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise CheckpointError(f"{path}: not an rnndsl run manifest",
                              hint="the file was edited; restore the run or retrain")
    for name in RECORDED:
        f = run_dir / name
        if name not in files:
            if f.exists():
                raise CheckpointError(f"{path}: {name} is not recorded",
                                      hint="the manifest was edited; restore the run")
            continue
        if not f.exists():
            raise CheckpointError(f"{f} is missing",
                                  hint="the run needs every file it wrote; copy the whole "
                                       "folder, or retrain")
        if _digest(f) != files[name]:
            raise CheckpointError(
                f"{f} was altered after the run wrote it (its SHA-256 is not the one in "
                f"{MANIFEST})",
                hint="the weights were trained with the original file; restore it from the "
                     "run, or retrain")


__all__ = ["MANIFEST", "read_vectors", "verify", "write_manifest", "write_vectors"]
