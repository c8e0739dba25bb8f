"""One writer per run directory: ``rnndsl run`` holds ``RUN_DIR/.lock`` while it trains.

The lock file records the holder's pid and its start time (from /proc, in clock ticks since
boot). A second run on the same directory is refused while the holder is alive; a lock left by a
killed run is stale (no such process, or a process with that pid that started at another time,
i.e. the pid was reused) and is taken over. Locks taken by this process are released at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
from pathlib import Path

from ..errors import CheckpointError

LOCK_NAME = ".lock"
_held: set[Path] = set()


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (field 22 of /proc/PID/stat), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after its ')'
        return int(text.rpartition(")")[2].split()[19])
    except (IndexError, ValueError):
        return None


def _alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    now = _start_time(pid)
    return start is None or now is None or now == start


def _record() -> dict:
    return {"pid": os.getpid(), "start": _start_time(os.getpid()), "host": socket.gethostname()}


def acquire(run_dir: str | os.PathLike[str]) -> Path:
    """Take the lock of ``run_dir`` or raise CheckpointError naming the live holder."""
    folder = Path(run_dir)
    path = folder / LOCK_NAME
    mine = _record()
    for _ in range(3):  # O_EXCL: of two runs starting at once, one creates the file
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:  # half-written by a run killed while it wrote: stale
                _remove(path)
                continue
            pid, start = holder.get("pid"), holder.get("start")
            same_host = holder.get("host") in (None, mine["host"])
            if pid == mine["pid"] and start == mine["start"]:
                _held.add(path)
                return path
            if type(pid) is int and (not same_host or _alive(pid, start)):
                raise CheckpointError(
                    f"{folder} is in use by another rnndsl run (pid {pid}"
                    + ("" if same_host else f" on {holder.get('host')}") + ")",
                    hint="wait for it to finish, or give another --out; if no run is using "
                    f"it, delete {path}",
                ) from None
            _remove(path)  # the holder is gone: a stale lock from a killed run
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        if not _held:
            atexit.register(release_all)
        _held.add(path)
        return path
    raise CheckpointError(f"cannot take the lock {path}", hint=f"delete {path} and retry")


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text()[:4096])
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def release(run_dir: str | os.PathLike[str]) -> None:
    """Give back the lock of ``run_dir`` if this process holds it."""
    path = Path(run_dir) / LOCK_NAME
    if path in _held:
        holder = _read(path)
        if holder is None or holder.get("pid") == os.getpid():
            _remove(path)
        _held.discard(path)


def release_all() -> None:
    for path in list(_held):
        release(path.parent)
