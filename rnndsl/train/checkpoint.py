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

from .. import limits
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


def remove_temporary(folder: Path) -> int:
    """Delete the temporary files (``.NAME.XXXX.tmp``) a killed write left in ``folder``; the
    number deleted. Only one run writes a run directory at a time (train/lock.py)."""
    n = 0
    for p in Path(folder).glob(".*.tmp"):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


def save(folder: Path, name: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write checkpoint ``name`` (arrays + metadata) into ``folder``; returns the JSON path.
    Temporary files of an earlier write that was killed are removed first."""
    folder = Path(folder)
    remove_temporary(folder)
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


def read_json(path: Path, what: str = "the file") -> Any:
    """A run directory's JSON file: a regular file of at most ``limits.MAX_JSON_BYTES``, nested
    at most ``limits.MAX_JSON_DEPTH`` deep, or a CheckpointError naming it."""
    path = Path(path)
    why = limits.not_regular(path)
    if why is not None:
        raise CheckpointError(f"{path}: cannot read {what}: {why}")
    try:
        with open(path, "rb") as f:
            raw = f.read(limits.MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file ({what})",
                              hint="is this a run directory of rnndsl run?") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    if len(raw) > limits.MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: " + limits.over(
            "its size in bytes", len(raw), limits.MAX_JSON_BYTES, "MAX_JSON_BYTES"))
    depth = max_depth(raw)
    if depth > limits.MAX_JSON_DEPTH:
        raise CheckpointError(f"{path}: " + limits.over(
            "the nesting of its JSON", depth, limits.MAX_JSON_DEPTH, "MAX_JSON_DEPTH"),
            hint="the file was edited; rnndsl writes flat JSON")
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({e})",
                              hint="the file was truncated or edited; use another checkpoint "
                                   "(best/last) or retrain") from None


def max_depth(raw: bytes) -> int:
    """How deep brackets nest in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for b in raw:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x5D, 0x7D):
            depth -= 1
    return deepest


def check_arrays(arrays: dict[str, np.ndarray], params: dict[str, tuple[tuple[int, ...], str]],
                 slots: tuple[str, ...], where: str) -> None:
    """Every array of a checkpoint against the network it is loaded into: each parameter there
    with its shape and a float dtype, finite; optimizer moments (``opt::NAME::SLOT``) of known
    parameters and slots, with the parameter's shape; no other keys. ``params`` maps each
    parameter name to (shape, dtype). Raises CheckpointError naming the array."""
    hint = "was it written for another spec (or the run's spec.rnn edited)? retrain, or use " \
           "the run's own spec"

    def bad(message: str, h: str = hint) -> CheckpointError:
        return CheckpointError(f"{where}: {message}", hint=h)

    for key, a in arrays.items():
        kind, _, rest = key.partition("::")
        if kind == "param":
            want = params.get(rest)
            if want is None:
                raise bad(f"the checkpoint has weights for {rest!r}, which this model does not "
                          "have")
            shape = want[0]
        elif kind == "opt":
            name, _, slot = rest.rpartition("::")
            if name not in params or slot not in slots:
                raise bad(f"the checkpoint has an optimizer array {rest!r} this model and "
                          f"optimizer do not have (slots: {', '.join(slots) or 'none'})")
            shape = params[name][0]
        elif kind == "carry":
            shape = None
        else:
            raise bad(f"the checkpoint has an unknown array {key!r}")
        if a.dtype.kind != "f":
            raise bad(f"{key!r} has dtype {a.dtype}, expected floating point",
                      "the file was altered; rnndsl writes float arrays")
        if shape is not None and tuple(a.shape) != tuple(shape):
            raise bad(f"{rest!r} has shape {tuple(a.shape)} in the checkpoint, but the model's "
                      f"is {tuple(shape)}")
        if not np.isfinite(a).all():
            raise bad(f"{key!r} holds NaN or infinite values",
                      "these weights are unusable; use the other checkpoint (best/last) or "
                      "retrain")
    missing = [k for k in params if f"param::{k}" not in arrays]
    if missing:
        raise bad(f"the checkpoint has no weights for {missing[0]!r}"
                  + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


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
    meta = read_json(jpath, "the checkpoint metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "weights" not in meta:
        raise CheckpointError(f"{jpath}: not an rnndsl checkpoint (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{jpath}: not an rnndsl checkpoint")
    weights = meta["weights"]
    if not isinstance(weights, str) or Path(weights).name != weights or weights in ("", ".", ".."):
        raise CheckpointError(f"{jpath}: 'weights' is {json.dumps(weights)[:80]}, expected the "
                              "name of a file beside it", hint="the file was edited")
    wpath = folder / weights
    why = limits.not_regular(wpath)
    if why is not None:
        raise CheckpointError(f"{wpath}: cannot read the weights: {why}")
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
