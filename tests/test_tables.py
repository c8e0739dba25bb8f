"""Meta-tests over the tables that give each layer kind and each cell one home.

A kind the catalogue declares without a builder or a drawing, a cell without its nn entry,
a step op, a picture, gradient checks or a parity oracle fails here before any model is built.
"""

from pathlib import Path

from cell_references import REFERENCES

from rnndsl.autodiff.ops import OPS
from rnndsl.errors import TorchStateError
from rnndsl.gradchecks import PIPELINES, cell_forms, form_text
from rnndsl.lang import catalogue as C
from rnndsl.lang.cells import CELLS
from rnndsl.lang.ir import NODE_KINDS
from rnndsl.nn.builders import BUILDERS
from rnndsl.nn.cells import CELLS as NN_CELLS
from rnndsl.nn.cells import Cell
from rnndsl.render.unrolled import DRAW


def test_every_ir_kind_is_a_catalogue_kind_or_input():
    assert {layer.kind for layer in C.LAYERS.values()} | {"input"} == set(NODE_KINDS)


def test_every_ir_kind_has_a_builder():
    assert sorted(BUILDERS) == sorted(NODE_KINDS)


def test_every_ir_kind_is_drawn_in_the_unrolled_picture():
    assert sorted(DRAW) == sorted(NODE_KINDS)


# --- cells ----------------------------------------------------------------------------------------
def _forms():
    return [(name, form) for name, c in CELLS.items() for form in cell_forms(c)]


def test_every_catalogue_cell_has_its_nn_cell_and_layers():
    assert sorted(NN_CELLS) == sorted(CELLS)
    for name in CELLS:
        assert NN_CELLS[name].spec is CELLS[name]
        assert C.LAYERS[name].kind == C.LAYERS[f"bi{name}"].kind == "rnn"
        assert C.LAYERS[name].count is not None


def test_every_cell_form_has_a_step_op_and_a_picture():
    for name, form in _forms():
        cell = Cell(name, **form)
        assert cell.step_call({"W_hh": None, "b_hh": None}, (None,) * len(cell.carries),
                              None, None)[0] in OPS, (name, form)
        picture = cell.picture
        carries = sorted(p.carry for p in picture.parts if p.carry is not None)
        assert carries == list(range(len(cell.carries))), (name, form)
        assert {p.key for p in picture.parts} >= set(picture.inputs) | {picture.output}


def test_every_cell_form_has_gradcheck_pipelines():
    for name, form in _forms():
        text = form_text(form)
        assert f"{name}(d=3{text})" in PIPELINES, (name, form)
        assert f"bi{name}(d=2{text}) |> stack(2)" in PIPELINES, (name, form)
    for layer in C.LAYERS.values():
        if layer.category == "pooling":
            assert any(p.endswith(f"|> {layer.name}") for p in PIPELINES), layer.name


def test_every_cell_form_has_a_parity_oracle():
    """PyTorch (live, and a stored fixture made by tests/fixtures/make_torch_fixtures.py) where
    it has the cell, else a NumPy reference in tests/cell_references.py."""
    fixtures = {p.name for p in (Path(__file__).parent / "fixtures").glob("torch_*.npz")}
    for name, form in _forms():
        cell = Cell(name, **form)
        try:
            cell.check_torch_compatible()
        except TorchStateError:
            assert name in REFERENCES, f"{name}{form_text(form)}: no PyTorch twin, no reference"
            continue
        assert cell.torch_module is not None
        assert any(f.startswith((f"torch_{name}_", f"torch_bi{name}_")) for f in fixtures), name
