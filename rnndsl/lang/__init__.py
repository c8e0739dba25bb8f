"""The front end: spec text -> AST -> checked spec with one IR graph per model.

parse(text, path)            -> syntax.Spec           (raises SpecError)
load(path)                   -> CheckedSpec           (raises SpecError)
check_file(path)             -> list[Diagnostic]      (never raises for a bad spec)
check_text(text, path, base_dir) -> (CheckedSpec | None, list[Diagnostic])
compile_pipeline(text, input_dim) -> networkx.DiGraph (raises SpecError)
summary_table(checked, sizes) -> str
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from .. import limits
from ..errors import Diagnostic, SpecError, normalize_source
from . import catalogue, resources, syntax, types
from .check import check_spec, compile_pipeline
from .ir import describe, inputs_of, ordered_nodes
from .parser import parse, parse_pipeline
from .results import (
    CheckedSpec,
    DataDecl,
    DefinitionInfo,
    EarlyStop,
    EvalConfig,
    OutputConfig,
    TrainConfig,
)
from .summary import model_table, node_params, summary_table
from .types import Seq, Tokens, Unknown, Vec
from .values import FieldRef, FuncValue

__all__ = [
    "CheckedSpec",
    "DataDecl",
    "DefinitionInfo",
    "Diagnostic",
    "EarlyStop",
    "EvalConfig",
    "FieldRef",
    "FuncValue",
    "OutputConfig",
    "Seq",
    "SpecError",
    "Tokens",
    "TrainConfig",
    "Unknown",
    "Vec",
    "catalogue",
    "check_file",
    "check_text",
    "compile_pipeline",
    "describe",
    "inputs_of",
    "load",
    "model_table",
    "node_params",
    "ordered_nodes",
    "parse",
    "parse_pipeline",
    "summary_table",
    "syntax",
    "types",
]


def check_text(
    text: str, path: str = "<spec>", base_dir: str | os.PathLike[str] | None = None,
    check_paths: bool = True,
) -> tuple[CheckedSpec | None, list[Diagnostic]]:
    """Parse and check a spec. Paths in it are relative to ``base_dir`` (default: the folder
    of ``path`` when that is a file name, else the current folder). Never raises for a bad spec:
    the diagnostics (with the source attached, so ``str(d)`` shows the line) say what is wrong.
    ``check_paths=False``: data paths are resolved but need not exist (a trained run's spec)."""
    if base_dir is None:
        base_dir = Path(path).parent if not path.startswith("<") else Path.cwd()
    text = normalize_source(text)  # what the parser reads, so the diagnostics show its lines
    try:
        spec = parse(text, path)
    except SpecError as e:
        return None, [replace(d, source=text) for d in e.diagnostics]
    checked, diags = check_spec(spec, text, base_dir, check_paths)
    if checked is not None:
        too_large = resources.diagnostics(checked)  # parameters and memory of each model
        if too_large:
            checked, diags = None, sorted([*diags, *too_large], key=Diagnostic.sort_key)
    return checked, [replace(d, source=text) for d in diags]


def _read(path: str | os.PathLike[str]) -> tuple[str | None, Diagnostic | None]:
    why = limits.not_regular(path)
    if why is not None:
        hint = ("a trained run directory: load it with rnndsl.load_run(path)"
                if Path(path).is_dir() and (Path(path) / "config.json").exists() else None)
        return None, Diagnostic("UnreadableFile", f"cannot read {os.fspath(path)}: {why}",
                                hint=hint)
    try:
        with open(path, "rb") as f:
            raw = f.read(limits.MAX_SPEC_BYTES + 1)
        if len(raw) > limits.MAX_SPEC_BYTES:
            size = limits.over(
                "its size in bytes", os.path.getsize(path), limits.MAX_SPEC_BYTES, "MAX_SPEC_BYTES"
            )
            return None, Diagnostic("UnreadableFile", f"cannot read {os.fspath(path)}: {size}")
        return raw.decode("utf-8"), None
    except FileNotFoundError:
        return None, Diagnostic("UnreadableFile", f"cannot read {os.fspath(path)}: no such file")
    except IsADirectoryError:
        hint = ("a trained run directory: load it with rnndsl.load_run(path)"
                if (Path(path) / "config.json").exists() else None)
        return None, Diagnostic("UnreadableFile", f"cannot read {os.fspath(path)}: a folder",
                                hint=hint)
    except UnicodeDecodeError as e:
        return None, Diagnostic(
            "UnreadableFile", f"cannot read {os.fspath(path)}: not UTF-8 text ({e.reason})"
        )
    except OSError as e:
        return None, Diagnostic("UnreadableFile", f"cannot read {os.fspath(path)}: {e.strerror}")


def check_file(path: str | os.PathLike[str]) -> list[Diagnostic]:
    """Every diagnostic of a spec file, sorted by position; empty when it is fine."""
    text, problem = _read(path)
    if problem is not None:
        return [problem]
    assert text is not None
    return check_text(text, os.fspath(path))[1]


def load(path: str | os.PathLike[str]) -> CheckedSpec:
    """Parse and check a spec file; raises SpecError listing every problem."""
    text, problem = _read(path)
    if problem is not None:
        raise SpecError([problem])
    assert text is not None
    checked, diags = check_text(text, os.fspath(path))
    if checked is None:
        raise SpecError(diags, text)
    return checked
