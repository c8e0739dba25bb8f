"""The cell catalogue: what the language knows of each recurrent cell, in one table.

A ``CellDef`` holds the facts about a cell that need no arrays: its parameters and doc (the
catalogue makes ``lstm`` and ``bilstm`` from them), its gates and state parts, the shape of its
recurrent weight, and so its parameter count (the summary table), and the picture of one step
at the cell level (render/). The numbers of a cell (its step op, the reference step from
primitive ops, the PyTorch layout) are its entry in ``rnndsl.nn.cells.CELLS``, under the same
name. Adding a cell is one entry here and one there (docs/adding_a_layer.md); the meta-tests in
tests/test_tables.py fail when one of the two, a gradient check or a parity row is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .params import PROBABILITY, SIZE, Enum, Float, Int, Param

# ---------------------------------------------------------------------------------------------
# Pictures: one step of a cell at the cell level


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
    """Where each part of a step sits inside the step's box, which parts read x_t, which read the
    previous carry, and which part holds each carry (in the order of ``CellDef.carries``)."""

    parts: tuple[Part, ...]
    edges: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]
    recurrent: tuple[tuple[int, str], ...]  # (carry index of step i-1, part of step i)
    output: str
    height: float  # inches the step needs
    equations: str

    def carry_part(self, index: int) -> str:
        return next(p.key for p in self.parts if p.carry == index)


# ---------------------------------------------------------------------------------------------
# The cell entries


@dataclass(frozen=True)
class CellDef:
    """One recurrent cell: s_i = R(s_{i-1}, x_i), y_i = O(s_i).

    ``gate_names`` name the G blocks of the projections (G = gates * d): x_i W^x + b is
    (d_in, G), the recurrent weight W^s is (d, G), or a vector u (1, G) when ``diagonal`` (each
    unit reads only its own previous state). ``carries`` names the state parts (the LSTM's is
    [h; c]). ``pictures`` maps the values of the option ``form`` (None: one form, key "") to the
    picture of a step.
    """

    name: str
    params: tuple[Param, ...]  # besides the options every cell has (d, s0, dropout)
    doc: str
    gate_names: tuple[str, ...]
    pictures: Mapping[str, CellTemplate]
    carries: tuple[str, ...] = ("h",)
    diagonal: bool = False
    form: str | None = None  # the option that changes the equations (gru's reset)

    @property
    def gates(self) -> int:
        return len(self.gate_names)

    def count(self, d_in: int, d: int, s0: str = "zeros") -> int:
        """Parameters of one direction: W^x, W^s (or u), and two bias vectors per gate block,
        as PyTorch keeps them (b_ih and b_hh), so that counts and weights line up with nn.RNN /
        nn.LSTM / nn.GRU; plus the learned initial state."""
        G = self.gates * d
        n = G * d_in + (G if self.diagonal else G * d) + 2 * G
        return n + (len(self.carries) * d if s0 == "learned" else 0)

    def picture(self, options: Mapping[str, object]) -> CellTemplate:
        """The picture of one step for the cell's options (``{"reset": "after"}``)."""
        return self.pictures[str(options.get(self.form)) if self.form else ""]


D = Param("d", Int(SIZE), doc="state size per direction", positional=True)
S0 = Param("s0", Enum(("zeros", "learned")), "zeros", "the initial state s0")
RNN_DROPOUT = Param(
    "dropout",
    Float(PROBABILITY),
    0.0,
    "variational dropout on the input (one mask per sequence)",
    hint="dropout is the probability of zeroing an input unit; 0.2 to 0.5 is usual",
)
COMMON = (D, S0, RNN_DROPOUT)  # every cell's; a cell's own options sit between d and s0

_SRNN_PICTURE = CellTemplate(
    parts=(Part("s", "s<SUB>{i}</SUB>", 0.0, 0.0, "state", carry=0),),
    edges=(),
    inputs=("s",),
    recurrent=((0, "s"),),
    output="s",
    height=0.0,
    equations="s<SUB>i</SUB> = g(x<SUB>i</SUB>W<SUP>x</SUP> + s<SUB>i−1</SUB>W<SUP>s</SUP> + b)",
)

_LSTM_PICTURE = CellTemplate(
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

_GRU_PICTURE = CellTemplate(
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

_GRU_AFTER_PICTURE = CellTemplate(
    parts=_GRU_PICTURE.parts[:2]
    + (Part("n", "n<SUB>{i}</SUB>", 0.55, 0.7, "proposal"),)
    + _GRU_PICTURE.parts[3:],
    edges=_GRU_PICTURE.edges,
    inputs=_GRU_PICTURE.inputs,
    recurrent=_GRU_PICTURE.recurrent,
    output="s",
    height=1.38,
    equations="s<SUB>j</SUB> = (1 − z) ⊙ n<SUB>j</SUB> + z ⊙ s<SUB>j−1</SUB>,  "
    "n<SUB>j</SUB> = tanh(x<SUB>j</SUB>W + r ⊙ (s<SUB>j−1</SUB>W + b))",
)

_INDRNN_PICTURE = CellTemplate(
    parts=(Part("s", "s<SUB>{i}</SUB>", 0.0, 0.0, "state", carry=0),),
    edges=(),
    inputs=("s",),
    recurrent=((0, "s"),),
    output="s",
    height=0.0,
    equations="s<SUB>i</SUB> = g(x<SUB>i</SUB>W + u ⊙ s<SUB>i−1</SUB> + b)",
)

CELLS: dict[str, CellDef] = {
    c.name: c
    for c in (
        CellDef(
            "srnn",
            (Param("act", Enum(("tanh", "relu")), "tanh", "the nonlinearity g"),),
            "Elman RNN: s_i = g(x_i W^x + s_{i-1} W^s + b), y_i = s_i.",
            gate_names=("a",),
            pictures={"": _SRNN_PICTURE},
        ),
        CellDef(
            "lstm",
            (
                Param(
                    "forget_bias", Float(), 0.0, "initial bias of the forget gate (1.0 is common)"
                ),
            ),
            "LSTM: c_j = f * c_{j-1} + i * z, h_j = o * tanh(c_j), gates i, f, o and proposal z; "
            "y_j = h_j.",
            gate_names=("i", "f", "o", "z"),
            pictures={"": _LSTM_PICTURE},
            carries=("h", "c"),
        ),
        CellDef(
            "gru",
            (
                Param(
                    "reset",
                    Enum(("before", "after")),
                    "before",
                    "before: r gates s_{j-1} before W^sg (the lecture, Cho et al. 2014); "
                    "after: r gates s_{j-1} W^sg (cuDNN, PyTorch)",
                ),
                Param(
                    "forget_bias",
                    Float(),
                    0.0,
                    "initial bias of the update gate towards keeping s_{j-1} (1.0 keeps about 73% "
                    "of the state at each step at the start instead of 50%)",
                ),
            ),
            "GRU: s_j = (1 - z) * s_{j-1} + z * s~_j with update gate z and reset gate r.",
            gate_names=("r", "z", "n"),
            pictures={"before": _GRU_PICTURE, "after": _GRU_AFTER_PICTURE},
            form="reset",
        ),
        CellDef(
            "indrnn",
            (Param("act", Enum(("relu", "tanh")), "relu", "the nonlinearity g"),),
            "IndRNN (Li et al. 2018): s_i = g(x_i W^x + u * s_{i-1} + b), y_i = s_i, with an "
            "element-wise recurrent weight u: each unit reads only its own previous state.",
            gate_names=("a",),
            pictures={"": _INDRNN_PICTURE},
            diagonal=True,
        ),
    )
}

# The options some cell has; a cell without one gets None in its IR params (not applicable).
OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(p.name for c in CELLS.values() for p in c.params))


def all_params(cell: CellDef) -> tuple[Param, ...]:
    """The cell's parameters in the order the language takes them: d, its own, s0, dropout."""
    return (D, *cell.params, S0, RNN_DROPOUT)


def not_applicable(cell: CellDef) -> dict[str, None]:
    """The options of other cells, None for this one (the IR params of every rnn node have the
    same keys)."""
    own = {p.name for p in cell.params}
    return {o: None for o in OPTIONS if o not in own}


def either(words: list[str] | tuple[str, ...]) -> str:
    """'srnn, lstm or gru' (for docs and hints that name every cell)."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
