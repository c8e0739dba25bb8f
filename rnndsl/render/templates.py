"""What one step of each cell looks like at the cell level: its state parts and gates.

The fused step op of the tape is one node; at the cell level each one is opened into the parts
the lecture's equations name. Each cell's picture is part of its entry in the cell table
(``rnndsl.lang.cells``: ``CellDef.pictures``); the template says where each part sits inside
the step's box, which parts read x_t, which read the previous carry, and which part holds each
carry (the carry order is ``Cell.carries``: (h, c) for an LSTM, (h,) otherwise).
"""

from __future__ import annotations

from ..lang.cells import CellTemplate, Part
from ..nn.cells import Cell


def template(cell: Cell) -> CellTemplate:
    """The template of a cell; its carry count must match the cell's carries."""
    t = cell.picture
    assert sum(p.carry is not None for p in t.parts) == len(cell.carries), cell
    return t


__all__ = ["CellTemplate", "Part", "template"]
