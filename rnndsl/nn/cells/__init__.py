"""Recurrent cells: s_i = R(s_{i-1}, x_i), y_i = O(s_i), each as ``step(params, carry, x_t)``.

``CELLS`` maps each cell name to one cell object (a ``CellType``, one module per cell beside this
file): its fused step op, the same step written with primitive ops (``reference``, used to check
the fused op and to draw the op level) and its PyTorch layout. Its facts (gates, gate names,
state parts, parameter count, picture) are its entry in ``rnndsl.lang.cells`` under the same
name. ``Cell`` is a cell with its options, as a layer uses it; it asks the table and never
branches on the kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...autodiff import functional as F
from ...autodiff.backend import namespace_of
from ...autodiff.ops import OPS, apply
from ...autodiff.tensor import Tensor
from ...lang.cells import CellDef, CellTemplate
from .gru import GRUCell
from .indrnn import IndRNNCell
from .lstm import LSTMCell
from .srnn import SRNNCell
from .step import CellType, TorchLayout

CELLS: dict[str, CellType] = {
    c.name: c for c in (SRNNCell(), LSTMCell(), GRUCell(), IndRNNCell())
}


@dataclass(frozen=True)
class Cell:
    """A recurrent cell type and its options.

    kind: a name of ``CELLS``; act: 'tanh' | 'relu' (srnn); reset: 'before' | 'after' (gru).
    An option left out (None) takes the cell's default from the cell table, "tanh" / "before"
    for a cell without that option.
    """

    kind: str
    act: str | None = None
    reset: str | None = None

    def __post_init__(self) -> None:
        for name, fallback in (("act", "tanh"), ("reset", "before")):
            if getattr(self, name) is None:
                param = next((p for p in self.spec.params if p.name == name), None)
                object.__setattr__(self, name, param.default if param else fallback)

    @property
    def type(self) -> CellType:
        return CELLS[self.kind]

    @property
    def spec(self) -> CellDef:
        return self.type.spec

    @property
    def gates(self) -> int:
        return self.spec.gates

    @property
    def carries(self) -> tuple[str, ...]:
        """Names of the state parts: the LSTM state is [c; h], the others just h."""
        return self.spec.carries

    @property
    def has_hidden_bias(self) -> bool:
        """Whether b_h enters the step itself (GRU reset-after) instead of the input projection."""
        return self.type.hidden_bias(self)

    @property
    def gate_names(self) -> tuple[str, ...]:
        return self.spec.gate_names

    @property
    def torch_module(self) -> str | None:
        return self.type.torch.module if self.type.torch else None

    @property
    def picture(self) -> CellTemplate:
        """The picture of one step at the cell level (rnndsl.render)."""
        return self.spec.picture({"act": self.act, "reset": self.reset})

    def recurrent_rows(self, d: int) -> int:
        """Rows of the recurrent weight: d for a matrix W^s (d, G), 1 for a vector u (1, G)."""
        return 1 if self.spec.diagonal else d

    def forget_gate(self) -> tuple[int, float] | None:
        """(gate block, sign) that the ``forget_bias`` option initialises, or None."""
        return self.type.forget_gate(self)

    # --- one step -------------------------------------------------------------------------------
    def step_call(self, params: dict[str, Any], carry: tuple, xg: Any, mask: Any,
                  n: int | None = None) -> tuple[str, tuple, dict]:
        """(op name, arguments, static options) of the fused op for one time step."""
        if n is not None:
            mask = None
        return self.type.step_call(self, params, carry, xg, mask, n)

    def step(self, params: dict[str, Tensor], carry: tuple, xg: Tensor, mask: Any,
             n: int | None = None) -> tuple:
        """(carry, y_t) for one time step; xg is the input projection x_t W^x + b.

        ``mask`` (B, 1) marks the sequences still running; with a batch sorted longest first,
        ``n`` (their number) is used instead and the step computes on them only.
        """
        name, args, static = self.step_call(params, carry, xg, mask, n)
        new = apply(name, *args, **static)
        return new, new[0]

    def small_step(self, xp: Any, params: dict[str, Any], rows: int) -> Any:
        """A faster tape-free step f(xg, *carry, W) -> carry for a few rows (directions x
        sequences) where every sequence runs (no mask), or None: the LSTM's fused kernel."""
        return self.type.small_step(xp, params, rows)

    def step_arrays(self, xp: Any, params: dict[str, Any], carry: tuple, xg: Any, mask: Any,
                    n: int | None = None) -> tuple:
        """The same step on plain arrays with no tape (inference): the new carry."""
        name, args, static = self.step_call(params, carry, xg, mask, n)
        return OPS[name].fn(xp, *args, **static)[0]

    def reference_step(self, params: dict[str, Tensor], carry: tuple, xg: Tensor, mask: Any,
                       n: int | None = None):
        """The same step from primitive ops only (matmul, sigmoid, tanh, mul, add, where)."""
        new = self.type.reference(self, params, carry, xg)
        if mask is not None:
            new = tuple(F.where(mask, s, old) for s, old in zip(new, carry))
        return new, new[0]

    # --- PyTorch layouts ------------------------------------------------------------------------
    def torch_block_order(self) -> list[int]:
        """Our gate block k comes from PyTorch's gate block order[k]."""
        layout = self.type.torch
        if layout is not None and layout.block_order is not None:
            return list(layout.block_order)
        return list(range(self.gates))

    def check_torch_compatible(self) -> None:
        self.type.check_torch(self)


def permute_blocks(a: Any, order: list[int], axis: int) -> Any:
    """Reorder equal gate blocks of ``a`` along ``axis``: block k of the result = block order[k]."""
    xp_blocks = _split(a, len(order), axis)
    return _concat([xp_blocks[k] for k in order], axis)


def _split(a: Any, n: int, axis: int) -> list[Any]:
    size = a.shape[axis] // n
    idx = [slice(None)] * a.ndim
    out = []
    for k in range(n):
        idx[axis] = slice(k * size, (k + 1) * size)
        out.append(a[tuple(idx)])
    return out


def _concat(parts: list[Any], axis: int) -> Any:
    return namespace_of(parts[0]).concatenate(parts, axis=axis)


def inverse_order(order: list[int]) -> list[int]:
    inv = [0] * len(order)
    for k, j in enumerate(order):
        inv[j] = k
    return inv


__all__ = ["CELLS", "Cell", "CellType", "TorchLayout", "inverse_order", "permute_blocks"]
