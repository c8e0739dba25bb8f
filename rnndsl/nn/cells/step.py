"""What every cell's step op shares: the batch's bookkeeping around a cell's core step.

Every step op works on a leading direction axis D (1 for a uni layer, 2 for a bi layer whose
backward direction reads each sequence reversed), so one call and one matrix product per step
serve both directions. Shapes: xg (D, B, G) is the precomputed input projection x_t W^x + b
(G = gates * H), h and c are (D, B, H), W is (D, H, G). ``mask`` is None when every sequence is
still running at this step, else a (B, 1) bool array: where it is False the state is carried
through unchanged, so a sequence's final state is the state at its own last token. When the
batch is sorted longest first, ``n`` (the number of sequences still running) replaces the mask
and the step computes on those rows only, as PyTorch's packed sequences do.

``CellType`` is the interface of one entry of the cell table (``rnndsl.nn.cells.CELLS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...autodiff import backend as Bk
from ...errors import TorchStateError
from ...lang.cells import CELLS as SPECS
from ...lang.cells import CellDef

FUSED_ENV = Bk.FUSED_ENV  # "0": always the generic gate arithmetic
FUSED_CPU = "rnndsl.kernels.cells_cpu"  # the optional Numba override of the gate arithmetic
FUSED_GPU = "rnndsl.kernels.gpu"  # the CuPy ElementwiseKernel override


def gpu_kernels(xp, a):
    """kernels.gpu for a contiguous CuPy array when the fused kernels are on, else None."""
    if xp is Bk.host or not a.flags.c_contiguous:
        return None
    return Bk.fused_module(FUSED_GPU)


def times_wt(xp, d, W):
    """d W^T per direction, d (D, B, G), W (D, H, G): the gradient reaching h_{t-1}.

    On the host it is computed as (W d^T)^T: with the small batch as the short side OpenBLAS
    spreads the product over the cores, 1.4x faster at B = 20-32 (measured; it does not for
    d W^T). The transpose back to (D, B, H) is a small copy.
    """
    if xp is Bk.host:
        return xp.ascontiguousarray(xp.swapaxes(xp.matmul(W, xp.swapaxes(d, -1, -2)), -1, -2))
    fused = Bk.fused_module(FUSED_GPU)
    if fused is not None:
        return fused.step_product_t(xp, d, W)
    return xp.matmul(d, xp.swapaxes(W, -1, -2))


def sigmoid_(xp, a):
    """In-place logistic through tanh: no overflow for large |a|."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def run_step(xp, core, xg, carry, params, mask, n, **static):
    """Run a cell's core step with the batch's bookkeeping; returns (new carry, vjp).

    ``mask`` (B, 1) bool: rows where it is False keep their state. ``n``: only the first n rows
    are still running (the batch is sorted by length, longest first), so the step computes on
    that prefix alone and the other rows keep their state, the way packed sequences do.
    The vjp returns cotangents for (xg, *carry, *params, mask).
    """
    B = xg.shape[1]
    if n is not None and n < B:
        new_a, vjp_a = core(xp, xg[:, :n], tuple(s[:, :n] for s in carry), params, **static)
        outs = []
        for s, s_a in zip(carry, new_a):
            o = s.copy()
            o[:, :n] = s_a
            outs.append(o)

        def vjp(gs):
            gx_a, gc_a, gp = vjp_a(tuple(None if g is None else g[:, :n] for g in gs))
            g_xg = xp.zeros(xg.shape, dtype=gx_a.dtype)
            g_xg[:, :n] = gx_a
            g_carry = []
            for g, g_a, s in zip(gs, gc_a, carry):
                full = xp.zeros(s.shape, dtype=s.dtype) if g is None else g.copy()
                full[:, :n] = g_a
                g_carry.append(full)
            return (g_xg, *g_carry, *gp, None)

        return tuple(outs), vjp
    new, vjp_c = core(xp, xg, carry, params, **static)
    if mask is None:
        return new, lambda gs: (*_flat(vjp_c(gs)), None)
    outs = tuple(xp.where(mask, a, s) for a, s in zip(new, carry))

    def vjp_masked(gs):
        gx, gc, gp = vjp_c(tuple(None if g is None else xp.where(mask, g, 0) for g in gs))
        g_carry = tuple(gci if g is None else gci + xp.where(mask, 0, g)
                        for g, gci in zip(gs, gc))
        return (gx, *g_carry, *gp, None)

    return outs, vjp_masked


def _flat(res):
    gx, gc, gp = res
    return (gx, *gc, *gp)


@dataclass(frozen=True)
class TorchLayout:
    """How a cell's weights map to PyTorch: the module (nn.RNN / nn.LSTM / nn.GRU) and the gate
    order: our gate block k is PyTorch's block ``block_order[k]`` (None: the same order)."""

    module: str
    block_order: tuple[int, ...] | None = None


class CellType:
    """One entry of the cell table: the numbers of a cell whose facts are ``lang.cells``.

    A subclass gives ``step_call`` (its fused step op) and ``reference`` (the same step from
    primitive ops); the rest has defaults. ``cell`` is the configured ``Cell`` (its options).
    """

    name: str = ""
    torch: TorchLayout | None = None  # None: PyTorch has no such cell

    @property
    def spec(self) -> CellDef:
        return SPECS[self.name]

    def step_call(self, cell: Any, params: dict[str, Any], carry: tuple, xg: Any, mask: Any,
                  n: int | None) -> tuple[str, tuple, dict]:
        """(op name, arguments, static options) of the fused op for one time step."""
        raise NotImplementedError

    def reference(self, cell: Any, params: dict[str, Any], carry: tuple, xg: Any) -> tuple:
        """The new carry from primitive ops only (matmul, sigmoid, tanh, mul, add), unmasked."""
        raise NotImplementedError

    def small_step(self, xp: Any, params: dict[str, Any], rows: int) -> Any:
        """A faster tape-free step f(xg, *carry, W) -> carry for a few rows, or None."""
        return None

    def layer_kernel(self, cell: Any) -> int | None:
        """The number of this form in the compiled layer op (kernels/layer_cpu.py), or None:
        the layer then runs the per-step tape."""
        return None

    def hidden_bias(self, cell: Any) -> bool:
        """Whether b_h enters the step itself instead of the input projection."""
        return False

    def forget_gate(self, cell: Any) -> tuple[int, float] | None:
        """(gate block, sign) that ``forget_bias`` initialises, or None (no such option)."""
        return None

    def check_torch(self, cell: Any) -> None:
        """Raise TorchStateError when this form of the cell has no PyTorch twin."""
        if self.torch is None:
            raise TorchStateError(
                f"PyTorch has no {self.name} cell, so this network has no PyTorch state",
                hint="torch_state / load_torch_state need cells PyTorch has (nn.RNN, nn.LSTM, "
                "nn.GRU)",
            )

    def torch_options(self, cell: Any) -> dict[str, Any]:
        """Extra constructor arguments of the PyTorch module for this form (tests build it)."""
        return {}
