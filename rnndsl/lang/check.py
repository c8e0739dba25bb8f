"""Semantic checks: names, arguments, types and shapes. Builds the IR graph of each model.

The checker reads the AST and never changes it. It collects every error (sorted by position
when raised) instead of stopping at the first; after an error, the value it was computing
becomes the unknown type ``?``, which fits everywhere, so one mistake gives one message.

Pipelines: a definition either starts from data (``embed(ewt.words, d=100) |> ...``: it is
*closed*, one value, shared by every model that uses it) or needs an input (``bilstm(d=50) |>
last``: it is *open*, a function that each use applies to its own input, with its own
parameters).

The parts: statements.py checks the statements (names, data, definitions, the train, eval and
output blocks), pipeline.py and structure.py check one pipeline and build its IR nodes,
flow.py holds the values that pass between its stages, probes.py looks into the files a spec
names, results.py is what checking returns. This module holds the two entry points.
"""

from __future__ import annotations

import os
from pathlib import Path

import networkx as nx

from .. import limits
from ..errors import Diagnostic, ShapeError, Span, SpecError
from . import syntax as S
from . import types as T
from .flow import _Out
from .parser import parse_pipeline
from .pipeline import ExpansionLimit, _Builder
from .probes import vector_dim
from .results import (
    CheckedSpec,
    DataDecl,
    DefinitionInfo,
    EarlyStop,
    EvalConfig,
    OutputConfig,
    TrainConfig,
    default_setting,
)
from .statements import Checker

__all__ = ["CheckedSpec", "Checker", "DataDecl", "DefinitionInfo", "EarlyStop", "EvalConfig",
           "OutputConfig", "TrainConfig", "check_spec", "compile_pipeline", "default_setting",
           "vector_dim"]


# ---------------------------------------------------------------------------------------------
# Entry points


def check_spec(
    spec: S.Spec, source: str, base_dir: str | os.PathLike[str] | None = None,
    check_paths: bool = True,
) -> tuple[CheckedSpec | None, list[Diagnostic]]:
    """Check a parsed spec. Returns the checked spec (None after any error) and the diagnostics,
    sorted by position. ``check_paths=False`` resolves data paths without requiring the files."""
    base = Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))
    checker = Checker(spec, base, check_paths=check_paths)
    try:
        result, ok = checker.check()
    except RecursionError:
        span = Span(1, 1, 1, 2, spec.path)
        return None, [Diagnostic("ParseError", "the spec nests too deeply to check", span)]
    except ExpansionLimit as e:
        message = limits.over("the number of stages its models expand to", checker.stages_built,
                              limits.MAX_EXPANDED_STAGES, "MAX_EXPANDED_STAGES")
        hint = "each use of a definition that needs an input adds its stages again; " \
               "stack(k) repeats a layer without copying its definition"
        return None, [Diagnostic("ModelTooLarge", f"the spec is too large to check: {message}",
                                 e.span, hint)]
    diags = sorted(checker.diags, key=Diagnostic.sort_key)
    if not ok:
        return None, diags
    return CheckedSpec(spec.path, source, spec, base_dir=str(base), **result), diags


def compile_pipeline(text: str, input_dim: int) -> nx.DiGraph:
    """The IR of a pipeline with no data: its input is node ``input`` of type Seq[input_dim].

    Heads may take a class count: ``softmax(5)``, ``crf(5)``. Raises SpecError, with positions
    in ``text``.
    """
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
        raise ShapeError(f"input_dim must be an int >= 1, got {input_dim!r}")
    expr = parse_pipeline(text)
    checker = Checker(S.Spec((), "<pipeline>"), None, counts_ok=True)
    b = _Builder(checker, "pipeline", None)
    t = T.Seq(input_dim, 1)
    params = {"dataset": None, "field": None, "level": 1, "dim": input_dim}
    b.g.add("input", "input", "input", params, [], t, None, "input")
    try:
        out = b.run(expr, _Out("input", t, "input"), "pipeline")
    except ExpansionLimit as e:
        message = limits.over("the number of stages", checker.stages_built,
                              limits.MAX_EXPANDED_STAGES, "MAX_EXPANDED_STAGES")
        raise SpecError([Diagnostic("ModelTooLarge", message, e.span)], text) from None
    if checker.diags:
        raise SpecError(checker.diags, text)
    return b.g.finish(out.node)
