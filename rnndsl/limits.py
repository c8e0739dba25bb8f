"""Named limits on what rnndsl reads, so every input is answered in bounded time and memory.

Each limit is a constant here, and the error that enforces it names the constant and says how
large the input was. The limits are far above any real spec, data file or run directory (a
spec is a few kilobytes; a CoNLL sentence a few hundred tokens) and low enough that hitting one
costs seconds and megabytes, not minutes and gigabytes. The ``RNNDSL_MAX_*`` environment
variables below raise the data limits for a user who really has such data.

Also the one rule for reading any file rnndsl is given: it must be a regular file (a FIFO, a
device such as /dev/zero or a socket would block or never end), or ``-`` where stdin is meant.
"""

from __future__ import annotations

import os
import stat

# -- specs ------------------------------------------------------------------------------------
MAX_SPEC_BYTES = 256 * 1024  # a spec file; real ones are a few kilobytes
MAX_NESTING = 64  # brackets open at once: f(g([h(...)]))
MAX_PIPELINE_STAGES = 1_000  # stages of one pipeline: a |> b |> ...
MAX_EXPANDED_STAGES = 20_000  # stages the checker builds, each use of a definition counted
MAX_STATEMENTS = 1_000  # data, definition, train, eval and output statements of one spec
MAX_NUMBER_CHARS = 64  # characters of one number literal
MAX_NAME_CHARS = 256  # characters of one name
MAX_PATH_CHARS = 4_096  # characters of a path given in a spec

MAX_COUNT = 1_000_000_000  # any count a spec gives: epochs, batch, bptt, min_count, size, ...

# -- models -----------------------------------------------------------------------------------
MAX_PARAMETERS = 2_000_000_000  # parameters of one model (8 GB of float32); d= and stack(k)
# have their ranges in the catalogue (lang/catalogue.py: SIZE, DEPTH)

# -- data ----------------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def max_line_bytes() -> int:
    """Bytes of one line of a data or vector file (after gzip); ``RNNDSL_MAX_LINE_BYTES``."""
    return _env_int("RNNDSL_MAX_LINE_BYTES", 16 * 1024 * 1024)


def max_data_bytes() -> int:
    """Bytes of one data file after decompression; ``RNNDSL_MAX_DATA_BYTES``."""
    return _env_int("RNNDSL_MAX_DATA_BYTES", 8 * 1024**3)


def max_sentence_tokens() -> int:
    """Tokens (or CoNLL rows) of one example; ``RNNDSL_MAX_SENTENCE_TOKENS``."""
    return _env_int("RNNDSL_MAX_SENTENCE_TOKENS", 10_000)


MAX_VECTOR_DIM = 100_000  # dimensions of a pretrained vector
MAX_SYNTHETIC_SIZE = 10_000_000  # examples of a synthetic() dataset

# -- run directories ------------------------------------------------------------------------
MAX_JSON_BYTES = 64 * 1024 * 1024  # one JSON file of a run directory
MAX_JSON_DEPTH = 32  # nesting of a JSON value in a run directory
MAX_STEP = 10**12  # epochs and steps recorded in a training state
MAX_OPTIMIZER_T = 10**12

# -- how to say it ----------------------------------------------------------------------------


def over(what: str, size: int, limit: int, name: str, env: str | None = None) -> str:
    """The message of a limit: what, how large it is, the limit and its name."""
    text = f"{what} is {size:,}, over the limit of {limit:,} (rnndsl.limits.{name})"
    if env:
        text += f"; set {env} to raise it"
    return text


def not_regular(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a file (a FIFO, a device, a folder), or None when it is a
    regular file or does not exist (the caller reports a missing file in its own words)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == 36:  # ENAMETOOLONG
            return "the path is too long"
        return e.strerror or str(e)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "not a regular file"
