"""The result of checking a spec: the checked spec, its data statements and definitions, and the
resolved train, eval and output blocks (defaults from the catalogue)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..errors import Span
from . import catalogue as C
from . import syntax as S
from . import types as T
from .values import FieldRef, FuncValue

# ---------------------------------------------------------------------------------------------
# The result


def default_setting(sd: C.SettingDef) -> Any:
    """A setting's default as the checker would resolve it (``adam`` -> FuncValue)."""
    if isinstance(sd.type, C.Func) and isinstance(sd.default, str):
        fd = sd.type.get(sd.default)
        assert fd is not None, sd
        return FuncValue(fd.name, {p.name: p.default for p in fd.params})
    return sd.default


def _default(table: Mapping[str, C.SettingDef], key: str) -> Any:
    value = default_setting(table[key])
    return field(default_factory=lambda: value) if isinstance(value, FuncValue) else value


@dataclass(frozen=True)
class EarlyStop:
    metric: str  # accuracy | f1 | perplexity | loss, on the dev set
    patience: int


@dataclass(frozen=True)
class TrainConfig:
    """The train block, every key resolved; defaults come from ``catalogue.TRAIN_SETTINGS``."""

    model: str
    data: str
    optimizer: FuncValue = _default(C.TRAIN_SETTINGS, "optimizer")
    epochs: int = _default(C.TRAIN_SETTINGS, "epochs")
    batch: int = _default(C.TRAIN_SETTINGS, "batch")
    clip: float | None = _default(C.TRAIN_SETTINGS, "clip")
    schedule: FuncValue | None = _default(C.TRAIN_SETTINGS, "schedule")
    early_stop: EarlyStop | None = None
    seed: int = _default(C.TRAIN_SETTINGS, "seed")
    bptt: int = _default(C.TRAIN_SETTINGS, "bptt")
    init: FuncValue = _default(C.TRAIN_SETTINGS, "init")
    freeze: tuple[str, ...] = ()
    chain_thaw: bool = _default(C.TRAIN_SETTINGS, "chain_thaw")
    pretrained: str | None = _default(C.TRAIN_SETTINGS, "pretrained")
    weight_decay: float = _default(C.TRAIN_SETTINGS, "weight_decay")
    reduction: str = _default(C.TRAIN_SETTINGS, "reduction")
    eval_every: int | None = _default(C.TRAIN_SETTINGS, "eval_every")
    checkpoint_every: int | None = _default(C.TRAIN_SETTINGS, "checkpoint_every")
    span: Span | None = field(default=None, compare=False)
    setting_spans: Mapping[str, Span] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        """Every setting of the block by its catalogue key, as JSON values (config.json)."""

        def plain(v: Any) -> Any:
            if isinstance(v, FuncValue):
                return {"name": v.name, "args": dict(v.args)}
            if isinstance(v, EarlyStop):
                return {"metric": v.metric, "patience": v.patience}
            return list(v) if isinstance(v, tuple) else v

        return {"model": self.model, "data": self.data,
                **{key: plain(getattr(self, key)) for key in C.TRAIN_SETTINGS}}


@dataclass(frozen=True)
class EvalConfig:
    """The eval block; ``metrics`` always resolved by the checker (the catalogue's default
    depends on the model's target), ``split`` from ``catalogue.EVAL_SETTINGS``."""

    model: str
    data: str
    metrics: tuple[str, ...]
    split: str = _default(C.EVAL_SETTINGS, "split")
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class OutputConfig:
    """The output block; defaults come from ``catalogue.OUTPUT_SETTINGS``."""

    dir: str | None = _default(C.OUTPUT_SETTINGS, "dir")  # absolute
    predictions: bool = _default(C.OUTPUT_SETTINGS, "predictions")
    plot: bool = _default(C.OUTPUT_SETTINGS, "plot")
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DataDecl:
    """A checked data statement: ``args`` resolved, defaults filled, paths absolute."""

    name: str
    reader: str
    args: dict[str, Any]
    fields: dict[str, FieldRef]
    span: Span


@dataclass(frozen=True)
class DefinitionInfo:
    name: str
    value: S.Expr
    open: bool  # needs an input (a function); else it starts from data
    out_type: T.Type  # for a closed definition; ``?`` for an open one
    span: Span


@dataclass(frozen=True)
class CheckedSpec:
    path: str
    source: str
    spec: S.Spec
    data: dict[str, DataDecl]
    definitions: dict[str, DefinitionInfo]
    models: dict[str, nx.DiGraph]  # the IR of each model that is trained or evaluated
    train: TrainConfig | None
    eval: EvalConfig | None
    output: OutputConfig | None
    base_dir: str
