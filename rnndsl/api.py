"""The public Python API of DESIGN.md section 3: compile, load, check."""

from __future__ import annotations

from typing import Any

from .errors import Diagnostic
from .nn.network import Network


def compile(text: str, input_dim: int, *, seed: int = 0, dtype: str = "float32",  # noqa: A001
            backend: str | None = None) -> Network:
    """A pipeline expression -> Network, e.g. compile("bilstm(d=16) |> stack(2)", input_dim=8).

    The network takes (B, T, input_dim) batch-first arrays or Tensors and ``lengths``.
    Raises SpecError (with ``.diagnostics``) for a bad pipeline.
    """
    from . import lang

    graph = lang.compile_pipeline(text, input_dim)
    return Network(graph, {}, seed=seed, dtype=dtype, backend=backend)


def load(path: str) -> Any:
    """Parse and check a spec file; raises SpecError listing every diagnostic."""
    from . import lang

    return lang.load(path)


def check(path: str) -> list[Diagnostic]:
    """Every diagnostic of a spec file (empty when it is fine); never raises for a bad spec."""
    from . import lang

    return lang.check_file(path)
