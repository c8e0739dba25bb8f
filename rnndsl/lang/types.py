"""The types that flow through a pipeline, as the checker infers them.

    Tokens          token ids of a data field (``ewt.words``); only ``embed`` consumes them
    Seq[Tokens]     token ids nested one level deeper (``ewt.chars``: characters within words)
    Seq[d]          a sequence of d-vectors (one per position)
    Seq[Seq[d]]     a sequence of sequences (characters within words, spans within a sentence)
    Vec[d]          one d-vector per sequence
    ?               unknown (after an error, or the input of an unused open definition)

``depth`` counts the sequence levels: Vec 0, Seq[d] 1, Seq[Seq[d]] 2; Tokens 1, Seq[Tokens] 2.
Layers that work on sequences work on the innermost level; a pooling removes one level.
A ``dim`` of None is a size not known yet (a head's class count before the data is read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


def _dim(dim: int | None) -> str:
    return "?" if dim is None else str(dim)


@dataclass(frozen=True)
class Tokens:
    """Token ids; ``depth`` 1 for words, 2 for characters within words."""

    depth: int = 1

    @property
    def dim(self) -> None:
        return None

    def __str__(self) -> str:
        return "Seq[" * (self.depth - 1) + "Tokens" + "]" * (self.depth - 1)


@dataclass(frozen=True)
class Seq:
    """A sequence of ``dim``-vectors, nested ``depth`` levels deep."""

    dim: int | None
    depth: int = 1

    def __str__(self) -> str:
        return "Seq[" * self.depth + _dim(self.dim) + "]" * self.depth


@dataclass(frozen=True)
class Vec:
    """One ``dim``-vector per sequence."""

    dim: int | None

    @property
    def depth(self) -> int:
        return 0

    def __str__(self) -> str:
        return f"Vec[{_dim(self.dim)}]"


@dataclass(frozen=True)
class Unknown:
    """A type the checker could not infer; it fits everywhere, so one error does not cascade."""

    @property
    def dim(self) -> None:
        return None

    @property
    def depth(self) -> None:
        return None

    def __str__(self) -> str:
        return "?"


Type = Union[Tokens, Seq, Vec, Unknown]
UNKNOWN = Unknown()


def vectors(dim: int | None, depth: int) -> Seq | Vec:
    """Seq[dim] nested ``depth`` levels, or Vec[dim] for depth 0."""
    return Vec(dim) if depth == 0 else Seq(dim, depth)


def with_dim(t: Type, dim: int | None) -> Type:
    """The same kind and nesting with another vector size."""
    if isinstance(t, (Seq, Vec)):
        return vectors(dim, t.depth)
    if isinstance(t, Tokens):
        return Seq(dim, t.depth)
    return t


def pooled(t: Seq) -> Seq | Vec:
    """The type after a pooling: one level less (Seq[Seq[d]] -> Seq[d], Seq[d] -> Vec[d])."""
    return vectors(t.dim, t.depth - 1)


def add_dims(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b
