"""Meta-tests over the tables that give each layer kind and each cell one home.

A kind the catalogue declares without a builder, or a drawing, fails here before any model
is built.
"""

from rnndsl.lang import catalogue as C
from rnndsl.lang.ir import NODE_KINDS
from rnndsl.nn.builders import BUILDERS
from rnndsl.render.unrolled import DRAW


def test_every_ir_kind_is_a_catalogue_kind_or_input():
    assert {layer.kind for layer in C.LAYERS.values()} | {"input"} == set(NODE_KINDS)


def test_every_ir_kind_has_a_builder():
    assert sorted(BUILDERS) == sorted(NODE_KINDS)


def test_every_ir_kind_is_drawn_in_the_unrolled_picture():
    assert sorted(DRAW) == sorted(NODE_KINDS)
