"""What one step of each cell looks like at the cell level: its state parts and gates.

The fused step op of the tape is one node; at the cell level each one is opened into the parts
the lecture's equations name. The template says where each part sits inside the step's box,
which parts read x_t, which read the previous carry, and which part holds each carry (the carry
order is ``Cell.carries``: (h, c) for an LSTM, (h,) otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..nn.cells import Cell


@dataclass(frozen=True)
class Part:
    """One node of a step: ``label`` is HTML with ``{i}`` for the position; offsets in inches."""

    key: str
    label: str
    dx: float
    dy: float
    kind: str  # gate | proposal | state
    carry: int | None = None


@dataclass(frozen=True)
class CellTemplate:
    parts: tuple[Part, ...]
    edges: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]
    recurrent: tuple[tuple[int, str], ...]  # (carry index of step i-1, part of step i)
    output: str
    height: float  # inches the step needs
    equations: str

    def carry_part(self, index: int) -> str:
        return next(p.key for p in self.parts if p.carry == index)


LSTM = CellTemplate(
    parts=(
        Part("i", "i", -0.78, 0.0, "gate"),
        Part("f", "f", -0.26, 0.0, "gate"),
        Part("o", "o", 0.26, 0.0, "gate"),
        Part("z", "z", 0.78, 0.0, "proposal"),
        Part("c", "c<SUB>{i}</SUB>", -0.26, 0.72, "state", carry=1),
        Part("h", "h<SUB>{i}</SUB>", 0.42, 1.38, "state", carry=0),
    ),
    edges=(("i", "c"), ("f", "c"), ("z", "c"), ("c", "h"), ("o", "h")),
    inputs=("i", "f", "o", "z"),
    recurrent=((0, "i"), (0, "f"), (0, "o"), (0, "z"), (1, "c")),
    output="h",
    height=1.38,
    equations="c<SUB>j</SUB> = f ⊙ c<SUB>j−1</SUB> + i ⊙ z,  "
    "h<SUB>j</SUB> = o ⊙ tanh(c<SUB>j</SUB>)",
)

GRU = CellTemplate(
    parts=(
        Part("z", "z", -0.6, 0.0, "gate"),
        Part("r", "r", 0.0, 0.0, "gate"),
        Part("n", "s̃<SUB>{i}</SUB>", 0.55, 0.7, "proposal"),
        Part("s", "s<SUB>{i}</SUB>", -0.1, 1.38, "state", carry=0),
    ),
    edges=(("r", "n"), ("z", "s"), ("n", "s")),
    inputs=("z", "r", "n"),
    recurrent=((0, "z"), (0, "r"), (0, "n"), (0, "s")),
    output="s",
    height=1.38,
    equations="s<SUB>j</SUB> = (1 − z) ⊙ s<SUB>j−1</SUB> + z ⊙ s̃<SUB>j</SUB>,  "
    "s̃<SUB>j</SUB> = tanh(x<SUB>j</SUB>W + (r ⊙ s<SUB>j−1</SUB>)W)",
)

GRU_AFTER = CellTemplate(
    parts=GRU.parts[:2] + (Part("n", "n<SUB>{i}</SUB>", 0.55, 0.7, "proposal"),) + GRU.parts[3:],
    edges=GRU.edges,
    inputs=GRU.inputs,
    recurrent=GRU.recurrent,
    output="s",
    height=1.38,
    equations="s<SUB>j</SUB> = (1 − z) ⊙ n<SUB>j</SUB> + z ⊙ s<SUB>j−1</SUB>,  "
    "n<SUB>j</SUB> = tanh(x<SUB>j</SUB>W + r ⊙ (s<SUB>j−1</SUB>W + b))",
)

SRNN = CellTemplate(
    parts=(Part("s", "s<SUB>{i}</SUB>", 0.0, 0.0, "state", carry=0),),
    edges=(),
    inputs=("s",),
    recurrent=((0, "s"),),
    output="s",
    height=0.0,
    equations="s<SUB>i</SUB> = g(x<SUB>i</SUB>W<SUP>x</SUP> + s<SUB>i−1</SUB>W<SUP>s</SUP> + b)",
)


def template(cell: Cell) -> CellTemplate:
    """The template of a cell; its carry count must match the cell's carries."""
    if cell.kind == "lstm":
        t = LSTM
    elif cell.kind == "gru":
        t = GRU_AFTER if cell.reset == "after" else GRU
    else:
        t = SRNN
    assert sum(p.carry is not None for p in t.parts) == len(cell.carries), cell
    return t
