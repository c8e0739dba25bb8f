"""Recurrent cells: s_i = R(s_{i-1}, x_i), y_i = O(s_i), each as ``step(params, carry, x_t)``.

A cell knows its gate count, how to take one step with the fused op (``step``), the same step
written with primitive ops (``reference_step``, used to check the fused op and to draw the op
level), and how its weights map to PyTorch's nn.RNN / nn.LSTM / nn.GRU layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..autodiff import functional as F
from ..autodiff.ops import OPS, apply
from ..autodiff.tensor import Tensor
from ..errors import TorchStateError
from . import kernels  # also registers the fused step ops


@dataclass(frozen=True)
class Cell:
    """A recurrent cell type and its options.

    kind: 'srnn' | 'lstm' | 'gru'; act: 'tanh' | 'relu' (srnn); reset: 'before' | 'after' (gru).
    """

    kind: str
    act: str = "tanh"
    reset: str = "before"

    @property
    def gates(self) -> int:
        return {"srnn": 1, "lstm": 4, "gru": 3}[self.kind]

    @property
    def carries(self) -> tuple[str, ...]:
        """Names of the state parts: the LSTM state is [c; h], the others just h."""
        return ("h", "c") if self.kind == "lstm" else ("h",)

    @property
    def has_hidden_bias(self) -> bool:
        """Whether b_h enters the step itself (GRU reset-after) instead of the input projection."""
        return self.kind == "gru" and self.reset == "after"

    @property
    def gate_names(self) -> tuple[str, ...]:
        return {"srnn": ("a",), "lstm": ("i", "f", "o", "z"), "gru": ("r", "z", "n")}[self.kind]

    @property
    def torch_module(self) -> str:
        return {"srnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[self.kind]

    # --- one step -------------------------------------------------------------------------------
    def step_call(self, params: dict[str, Any], carry: tuple, xg: Any, mask: Any,
                  n: int | None = None) -> tuple[str, tuple, dict]:
        """(op name, arguments, static options) of the fused op for one time step."""
        W = params["W_hh"]
        if n is not None:
            mask = None
        if self.kind == "lstm":
            return "lstm_step", (xg, carry[0], carry[1], W, mask), {"n": n}
        if self.kind == "srnn":
            return "srnn_step", (xg, carry[0], W, mask), {"n": n, "act": self.act}
        if self.reset == "after":
            return "gru_step", (xg, carry[0], W, params["b_hh"], mask), {"n": n}
        return "gru_lecture_step", (xg, carry[0], W, mask), {"n": n}

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
        if self.kind != "lstm":
            return None
        return kernels.lstm_small_step_kernel(xp, params["W_hh"], rows)

    def step_arrays(self, xp: Any, params: dict[str, Any], carry: tuple, xg: Any, mask: Any,
                    n: int | None = None) -> tuple:
        """The same step on plain arrays with no tape (inference): the new carry."""
        name, args, static = self.step_call(params, carry, xg, mask, n)
        return OPS[name].fn(xp, *args, **static)[0]

    def reference_step(self, params: dict[str, Tensor], carry: tuple, xg: Tensor, mask: Any,
                       n: int | None = None):
        """The same step from primitive ops only (matmul, sigmoid, tanh, mul, add, where)."""
        W = params["W_hh"]
        h = carry[0]
        H = h.shape[-1]
        if self.kind == "srnn":
            a = xg + F.matmul(h, W)
            new = (F.tanh(a) if self.act == "tanh" else F.relu(a),)
        elif self.kind == "lstm":
            c = carry[1]
            a = xg + F.matmul(h, W)
            i = F.sigmoid(a[..., :H])
            f = F.sigmoid(a[..., H : 2 * H])
            o = F.sigmoid(a[..., 2 * H : 3 * H])
            z = F.tanh(a[..., 3 * H :])
            c_new = f * c + i * z
            new = (o * F.tanh(c_new), c_new)
        elif self.reset == "after":
            hh = F.matmul(h, W) + params["b_hh"]
            r = F.sigmoid(xg[..., :H] + hh[..., :H])
            z = F.sigmoid(xg[..., H : 2 * H] + hh[..., H : 2 * H])
            n = F.tanh(xg[..., 2 * H :] + r * hh[..., 2 * H :])
            new = ((1.0 - z) * n + z * h,)
        else:
            rz = F.sigmoid(xg[..., : 2 * H] + F.matmul(h, W[..., : 2 * H]))
            r, z = rz[..., :H], rz[..., H:]
            n = F.tanh(xg[..., 2 * H :] + F.matmul(r * h, W[..., 2 * H :]))
            new = ((1.0 - z) * h + z * n,)
        if mask is not None:
            new = tuple(F.where(mask, s, old) for s, old in zip(new, carry))
        return new, new[0]

    # --- PyTorch layouts ------------------------------------------------------------------------
    def torch_block_order(self) -> list[int]:
        """Our gate block k comes from PyTorch's gate block order[k]."""
        if self.kind == "lstm":
            return [0, 1, 3, 2]  # torch (i, f, g, o) -> ours (i, f, o, z=g)
        return list(range(self.gates))

    def check_torch_compatible(self) -> None:
        if self.kind == "gru" and self.reset == "before":
            raise TorchStateError(
                "this GRU is the lecture's form (reset gate before the matrix), "
                "which PyTorch's nn.GRU does not compute",
                hint='use gru(d=..., reset="after") for PyTorch/cuDNN-compatible weights',
            )


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
    from ..autodiff.backend import namespace_of

    return namespace_of(parts[0]).concatenate(parts, axis=axis)


def inverse_order(order: list[int]) -> list[int]:
    inv = [0] * len(order)
    for k, j in enumerate(order):
        inv[j] = k
    return inv
