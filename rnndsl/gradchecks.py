"""`rnndsl gradcheck`: every cell in every form, bi(stack(2)) of each, every pooling, in float64.

The pipelines come from the tables (the cell table, the catalogue's poolings), so a new cell or
pooling is checked without a list to edit; tests/test_layers.py runs the same rows.
"""

from __future__ import annotations

from collections.abc import Callable

from .api import compile as compile_
from .autodiff import backend as Bk
from .lang import catalogue as C
from .lang.cells import CELLS, CellDef
from .lang.params import Enum
from .nn.selfcheck import check_network_grads


def cell_forms(cell: CellDef) -> list[dict[str, str]]:
    """The forms of a cell: {} (the defaults), then one per other value of each of its own
    word options ({"act": "relu"}, {"reset": "after"})."""
    forms: list[dict[str, str]] = [{}]
    for p in cell.params:
        if isinstance(p.type, Enum):
            forms += [{p.name: v} for v in p.type.choices if v != p.default]
    return forms


def form_text(options: dict[str, str]) -> str:
    """", act=relu": the options as they follow d= in a layer call."""
    return "".join(f", {k}={v}" for k, v in options.items())


def cell_pipelines() -> list[str]:
    """Each cell in each form alone (d=3) and as bi(...) |> stack(2) (d=2)."""
    rows = []
    for name, cell in CELLS.items():
        for form in map(form_text, cell_forms(cell)):
            rows += [f"{name}(d=3{form})", f"bi{name}(d=2{form}) |> stack(2)"]
    return rows


def pooling_pipelines() -> list[str]:
    """Each pooling of the catalogue over a bi layer (each direction ends at its own end)."""
    return [f"bilstm(d=2) |> {ld.name}" for ld in C.LAYERS.values() if ld.category == "pooling"]


PIPELINES = [*cell_pipelines(), *pooling_pipelines(), "lstm(d=3) |> mlp(d=4) |> linear(d=2)"]


def run_gradchecks(only: list[str] | None, log: Callable[[str], None]) -> bool:
    """Check every pipeline (those containing one of ``only``, if given); True if all pass."""
    rng = Bk.host.random.default_rng(0)
    ok = True
    for text in PIPELINES:
        if only and not any(o in text for o in only):
            continue
        net = compile_(text, input_dim=3, dtype="float64", seed=1)
        x = rng.standard_normal((3, 4, 3))
        r = check_network_grads(net, x, lengths=[4, 2, 3])
        ok &= r.ok
        log(f"{'ok  ' if r.ok else 'FAIL'} {text:45s} {r.checks:4d} checks, "
            f"max relative error {r.max_rel_error:.1e}")
        for f in r.failures[:5]:
            log(f"     {f}")
    return ok
