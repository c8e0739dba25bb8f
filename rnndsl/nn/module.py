"""Parameters, modules, and the values that flow between layers (sequences, nested sequences).

Inside the network every sequence is time-major: data (T, B, d) with per-sequence lengths, so
one time step is a contiguous (B, d) slice. The public API is batch-first; network.py converts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.tensor import Tensor
from ..errors import ShapeError


class Parameter(Tensor):
    """A leaf tensor the optimizer updates; ``.value`` is its array, ``.frozen`` skips updates."""

    __slots__ = ("frozen", "sparse_grad")

    def __init__(self, data: Any, name: str | None = None):
        super().__init__(data, requires_grad=True, name=name)
        self.frozen = False
        self.sparse_grad = False  # an embedding table: its gradient is row-sparse

    @property
    def value(self) -> Any:
        return self.data

    @value.setter
    def value(self, v: Any) -> None:
        if tuple(v.shape) != tuple(self.data.shape):
            raise ValueError(f"{self.name}: shape {tuple(v.shape)} != {tuple(self.data.shape)}")
        self.data = Bk.namespace_of(self.data).asarray(v, dtype=self.data.dtype)


class Module:
    """Something with named parameters and sub-modules (no global registry, no hooks)."""

    def __init__(self, name: str = ""):
        self.name = name
        self.params: dict[str, Parameter] = {}
        self.children: dict[str, Module] = {}

    def add_param(self, key: str, value: Any) -> Parameter:
        p = Parameter(value, name=f"{self.name}.{key}" if self.name else key)
        self.params[key] = p
        return p

    def add_child(self, key: str, module: Module) -> Module:
        self.children[key] = module
        return module

    def named_parameters(self, prefix: str = "") -> dict[str, Parameter]:
        out: dict[str, Parameter] = {}
        for k, p in self.params.items():
            out[f"{prefix}{k}"] = p
        for k, m in self.children.items():
            out.update(m.named_parameters(f"{prefix}{k}."))
        return out

    def parameter_count(self) -> int:
        return sum(int(p.data.size) for p in self.named_parameters().values())


@dataclass
class RunContext:
    """Per-call settings: training mode (dropout on), the dropout generator, probes."""

    train: bool = False
    rng: Any = None
    reference: bool = False  # primitive-op cells instead of fused steps (checks, op-level pictures)
    record_states: bool = False  # retain dL/ds_t for every recurrent state (the gradient probe)
    states: dict[str, list] = field(default_factory=dict)  # layer -> per-step carries
    init_states: dict[str, tuple] = field(default_factory=dict)  # layer -> initial carry
    final_states: dict[str, tuple] = field(default_factory=dict)  # layer -> final carry
    attention: dict[str, Any] = field(default_factory=dict)  # pooling layer -> weights (B, T)


class SeqInfo:
    """Lengths of a batch of sequences and the index arrays every layer shares.

    mask (T, B, 1) bool; rev (T, B) int reverses each sequence within its own length.
    """

    def __init__(self, lengths: Any, T: int, xp: Any):
        lengths = Bk.host.asarray(lengths, dtype=Bk.host.int64).reshape(-1)
        if lengths.size and (lengths.min() < 1 or lengths.max() > T):
            raise ShapeError(f"lengths must be between 1 and the padded length {T}, "
                             f"got {lengths.tolist()}")
        self.lengths = lengths
        self.T = T
        self.B = int(lengths.size)
        self.xp = xp
        t = Bk.host.arange(T)[:, None]
        mask = t < lengths[None, :]
        rev = Bk.host.where(mask, lengths[None, :] - 1 - t, t)
        self.mask_host = mask
        self.mask = xp.asarray(mask[:, :, None])
        self.rev = xp.asarray(rev)
        # the same reversal as rows of the flattened (T*B) grid, for one-gather reversals
        self.rev_flat = xp.asarray((rev * self.B + Bk.host.arange(self.B)[None, :]).reshape(-1))
        self.min_len = int(lengths.min()) if lengths.size else 0
        self._step_masks: dict[int, Any] = {}
        # sorted longest first: at step t the first active[t] sequences are the running ones
        self.sorted = bool(lengths.size and Bk.host.all(lengths[:-1] >= lengths[1:]))
        self.active = [int((lengths > t).sum()) for t in range(T)]
        self._packing: Packing | None = None

    def step_mask(self, t: int) -> Any:
        """None while every sequence runs at step t (no masking cost), else (B, 1) bool."""
        if t < self.min_len:
            return None
        m = self._step_masks.get(t)
        if m is None:
            m = self._step_masks[t] = self.mask[t]
        return m

    def step_count(self, t: int) -> int | None:
        """For a sorted batch, how many sequences run at step t (None: all, or not sorted)."""
        if not self.sorted or self.active[t] == self.B:
            return None
        return self.active[t]

    def mask_as(self, dtype: Any) -> Any:
        return self.mask.astype(dtype)

    @property
    def packing(self) -> Packing | None:
        """The packed layout of a sorted batch with padding (None when every sequence fills all
        T steps, or the batch is not sorted longest first); computed once per batch."""
        if self.min_len == self.T or not self.sorted:
            return None
        if self._packing is None:
            self._packing = Packing(self.lengths, self.active, self.xp)
        return self._packing


class Packing:
    """A sorted batch's real positions in step order, as PyTorch's packed sequences hold them.

    Step t's n_t = counts[t] running sequences are the n_t rows after the earlier steps' rows
    in a (P, d) packed array (P = number of real tokens). ``flat`` (P,) is each packed row's
    position t*B + b in the padded (T, B) grid; ``rev`` (P,) maps packed row (t, b) to the
    packed row of (len_b - 1 - t, b), the same sequence read backwards (its own inverse).
    """

    def __init__(self, lengths: Any, active: list[int], xp: Any):
        np = Bk.host
        self.counts = counts = tuple(n for n in active if n)
        offsets = np.cumsum((0,) + counts[:-1])  # step t's first packed row
        t = np.repeat(np.arange(len(counts)), counts)
        b = np.arange(t.size) - offsets[t]
        self.flat = xp.asarray(t * lengths.size + b)
        self.rev = xp.asarray(offsets[lengths[b] - 1 - t] + b)


@dataclass
class SeqValue:
    """A batch of sequences of vectors: data (T, B, d), time-major."""

    data: Tensor
    info: SeqInfo
    bidirectional: bool = False  # the last layer was a bi layer: [forward half; backward half]

    @property
    def dim(self) -> int:
        return self.data.shape[-1]


@dataclass
class NestedValue:
    """Sequences within sequences (characters within words, spans within a sentence).

    ``inner`` holds the N inner sequences of the whole batch as one batch (T_in, N, d);
    inner sequence i belongs at row ``outer_index[i]`` of the flattened (T_out * B) outer grid.
    """

    inner: SeqValue
    outer_index: Any  # (N,) backend int
    outer: SeqInfo

    @property
    def dim(self) -> int:
        return self.inner.dim


@dataclass
class VecValue:
    """One vector per sequence: data (B, d)."""

    data: Tensor

    @property
    def dim(self) -> int:
        return self.data.shape[-1]


@dataclass
class TokenValue:
    """Token ids of a batch, time-major: ids (T, B); nested ones (chars) carry their outer grid."""

    ids: Any
    info: SeqInfo
    outer_index: Any = None  # (N,) for nested tokens: inner sequence i sits at outer row i
    outer: SeqInfo | None = None
