"""Checkpoints: weights in .npz (read with pickle disabled) plus JSON metadata, written atomically.

A checkpoint named ``last`` is two files in the run's ``ckpt/`` folder: ``last-<step>.npz`` (the
arrays) and ``last.json`` (metadata, including the weights file's name and its SHA-256). Each file
is written to a temporary name, fsynced and renamed; the JSON is renamed last, so at every moment
``last.json`` names a complete weights file with a matching digest. A process killed at any
instant leaves either the old checkpoint or the new one, never a broken one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError

FORMAT = "rnndsl-checkpoint-1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def save(folder: Path, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write checkpoint ``name`` (arrays + metadata) into ``folder``; returns the JSON path."""
    folder = Path(folder)
    step = int(meta.get("global_step", 0))
    blob = _npz_bytes(arrays)
    weights = f"{name}-{step:08d}.npz"
    atomic_write_bytes(folder / weights, blob)
    meta = {**meta, "format": FORMAT, "weights": weights,
            "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    old = _read_json_quiet(folder / f"{name}.json")
    atomic_write_text(folder / f"{name}.json", json.dumps(meta, indent=1, sort_keys=True))
    if old and old.get("weights") and old["weights"] != weights:
        try:
            (folder / old["weights"]).unlink()
        except OSError:
            pass
    _remove_orphans(folder, name, keep=weights)
    return folder / f"{name}.json"


def _remove_orphans(folder: Path, name: str, keep: str) -> None:
    for p in folder.glob(f"{name}-*.npz"):
        if p.name != keep:
            try:
                p.unlink()
            except OSError:
                pass


def _read_json_quiet(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def load(folder: Path, name: str = "last") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify checkpoint ``name``; never unpickles. Raises CheckpointError."""
    folder = Path(folder)
    jpath = folder / f"{name}.json"
    if not jpath.exists():
        raise CheckpointError(f"no checkpoint '{name}' in {folder}",
                              hint=f"expected {jpath}; is this a run directory of rnndsl run?")
    try:
        meta = json.loads(jpath.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{jpath}: the checkpoint metadata is not valid JSON ({e})",
                              hint="the file was truncated or edited; use another checkpoint "
                                   "(best/last) or retrain") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "weights" not in meta:
        raise CheckpointError(f"{jpath}: not an rnndsl checkpoint (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{jpath}: not an rnndsl checkpoint")
    wpath = folder / str(meta["weights"])
    try:
        blob = wpath.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{wpath}: cannot read the weights ({e.strerror})") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta.get("sha256"):
        raise CheckpointError(
            f"{wpath}: the weights do not match their recorded checksum "
            f"({len(blob)} bytes, expected {meta.get('bytes')})",
            hint="the file was truncated or altered after it was written; it is refused")
    import io

    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"{wpath}: unreadable weights ({e})") from None
    return arrays, meta


def exists(folder: Path, name: str = "last") -> bool:
    return (Path(folder) / f"{name}.json").exists()
