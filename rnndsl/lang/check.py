"""Semantic checks: names, arguments, types and shapes. Builds the IR graph of each model.

The checker reads the AST and never changes it. It collects every error (sorted by position
when raised) instead of stopping at the first; after an error, the value it was computing
becomes the unknown type ``?``, which fits everywhere, so one mistake gives one message.

Pipelines: a definition either starts from data (``embed(ewt.words, d=100) |> ...``: it is
*closed*, one value, shared by every model that uses it) or needs an input (``bilstm(d=50) |>
last``: it is *open*, a function that each use applies to its own input, with its own
parameters).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import Diagnostic, ShapeError, Span, SpecError, did_you_mean
from . import catalogue as C
from . import syntax as S
from . import types as T
from .ir import GraphBuilder
from .parser import parse_pipeline
from .values import INVALID, FieldRef, FuncValue, Guarded, InvalidArgument, bind, check_value, valid

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
    bptt: int | None = _default(C.TRAIN_SETTINGS, "bptt")
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


@dataclass(frozen=True)
class EvalConfig:
    model: str
    data: str
    metrics: tuple[str, ...] = ("accuracy",)
    split: str = "dev"
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class OutputConfig:
    dir: str | None = None  # absolute
    predictions: bool = False
    plot: bool = True
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


# ---------------------------------------------------------------------------------------------
# Values flowing through a pipeline while it is checked


@dataclass(frozen=True)
class _Rnn:
    """The recurrent layer a value comes out of: what stack(k) repeats."""

    node: str | None  # None when the layer has a wrong argument (no graph is built then)
    layer: str
    params: Mapping[str, Any]
    label: str
    in_node: str | None
    in_type: T.Type


@dataclass(frozen=True)
class _Head:
    name: str
    span: Span
    target: FieldRef | None


@dataclass(frozen=True)
class _Out:
    node: str | None  # the IR node computing this value; None after an error
    type: T.Type
    label: str = ""  # the stage that made it, for messages
    pooled_by: str | None = None  # the pooling that made it a Vec (for hints)
    source: str | None = None  # the data field of token ids
    rnn: _Rnn | None = None
    head: _Head | None = None


_UNKNOWN = _Out(None, T.UNKNOWN)
_STRUCTURAL = ("stack", "bi", "skip", "concat", "spans")


def _stage_name(st: S.Expr) -> str:
    if isinstance(st, S.Call):
        return st.func.dotted
    if isinstance(st, S.Ref):
        return st.dotted
    return S.to_source(st)


def _arg_span(args: Sequence[S.Arg], name: str, default: Span) -> Span:
    for a in args:
        if a.name is not None and a.name.name == name:
            return a.value.span
    return default


# ---------------------------------------------------------------------------------------------
# Peeking into files (only the first line): vector sizes and column headers


def _first_line(path: str, skip_blank: bool = True) -> str | None:
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as raw:
            for _ in range(1000):
                line = raw.readline(1 << 20)
                if not line:
                    return None
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                if text.strip() or not skip_blank:
                    return text
    except (OSError, EOFError, ValueError):
        return None
    return None


def vector_format(path: str, fmt: str) -> str:
    """Resolve format=auto: word2vec-bin by the name, word2vec if a "count dim" header."""
    if fmt != "auto":
        return fmt
    name = path[:-3] if path.endswith(".gz") else path
    if name.endswith(".bin"):
        return "word2vec-bin"
    first = _first_line(path)
    parts = first.split() if first else []
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return "word2vec"
    return "glove"


def vector_dim(path: str, fmt: str) -> int | None:
    """The size of the vectors in a pretrained file, from its first line, or None."""
    first = _first_line(path)
    if first is None:
        return None
    parts = first.split()
    if fmt in ("word2vec", "word2vec-bin"):
        return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None
    return len(parts) - 1 if len(parts) > 1 else None


# ---------------------------------------------------------------------------------------------
# The checker


@dataclass
class _Dataset:
    stmt: S.DataStmt
    reader: C.ReaderDef | None
    args: dict[str, Any] | None
    fields: dict[str, FieldRef] | None  # None: the reader is unknown, so are its fields


class Checker:
    """Checks one spec; also the value context for settings and data statements."""

    def __init__(self, spec: S.Spec, base_dir: Path | None, counts_ok: bool = False):
        self.spec = spec
        self.base_dir = base_dir
        self.counts_ok = counts_ok  # compile_pipeline: heads may take a class count
        self.diags: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()
        self.datasets: dict[str, _Dataset] = {}
        self.defs: dict[str, S.Definition] = {}
        self.cyclic: set[str] = set()
        self._open: dict[str, bool] = {}

    # -- the value context --------------------------------------------------------------------

    def report(self, kind: str, message: str, span: Span | None, hint: str | None = None) -> None:
        assert kind in C.DIAGNOSTIC_KINDS, kind
        d = Diagnostic(kind, message, span, hint)
        if d not in self._seen:
            self._seen.add(d)
            self.diags.append(d)

    def definition_names(self) -> Sequence[str]:
        return list(self.defs)

    def field(
        self, ref: S.Ref, ftype: C.FieldArg, owner: str, model_data: str | None = None
    ) -> FieldRef | None:
        f = self.resolve_field(ref, model_data, owner if ftype.count_ok else None)
        if f is None or f.role in ftype.roles:
            return f
        message, hint = self._role_message(f, ftype, owner)
        self.report("TypeMismatch", message, f.span, hint)
        return None

    def _role_message(self, f: FieldRef, ftype: C.FieldArg, owner: str) -> tuple[str, str | None]:
        what = C.ROLE_WORDS[f.role]
        ds = self.datasets.get(f.dataset or "")
        fields = (ds.fields or {}) if ds else {}
        if ftype.roles == ("tokens",):
            tokens = [x.dotted for x in fields.values() if x.role == "tokens"]
            return (
                f"{owner} needs a token field (words or chars), but {f.dotted} is {what}",
                f"embed {' or '.join(tokens)}; {f.dotted} is a target, for the head"
                if tokens
                else None,
            )
        if ftype.roles == ("tags",):
            message = f"{owner} needs per-token tags, but {f.dotted} is {what}"
            if f.role in ("labels", "next"):
                return message, f"use softmax({f.dotted}) instead"
        else:
            message = f"{owner} predicts a target (tags, labels or next), but {f.dotted} is {what}"
        targets = [x.dotted for x in fields.values() if x.role in ftype.roles]
        return message, f"predict {' or '.join(targets)}" if targets else None

    def resolve_field(
        self, ref: S.Ref, model_data: str | None, count_owner: str | None = None
    ) -> FieldRef | None:
        """``ewt.tags`` (or the shorthand ``tags`` when one dataset has it) -> FieldRef."""
        parts = ref.parts
        if len(parts) == 1:
            name = parts[0].name
            owners = [n for n, d in self.datasets.items() if d.fields and name in d.fields]
            if model_data in owners:
                return self._field_of(model_data, name, ref, model_data)  # type: ignore[arg-type]
            if len(owners) == 1:
                return self._field_of(owners[0], name, ref, model_data)
            if len(owners) > 1:
                self.report(
                    "UnknownName",
                    f"'{name}' is a field of several datasets ({', '.join(owners)})",
                    ref.span,
                    f"write {owners[0]}.{name}",
                )
                return None
            if not self.datasets:
                hint = (
                    f"give the number of classes instead, e.g. {count_owner}(5)"
                    if count_owner
                    else None
                )
                self.report(
                    "UnknownName", f"unknown name '{name}': there is no data here", ref.span, hint
                )
                return None
            dotted = [f"{n}.{f}" for n, d in self.datasets.items() for f in (d.fields or ())]
            hint = did_you_mean(name, [x.split(".")[1] for x in dotted])
            if hint and len(self.datasets) == 1:
                hint = did_you_mean(name, dotted) or hint
            if hint is None:
                hint = "a data field reads dataset.field: " + ", ".join(dotted[:6])
            self.report("UnknownName", f"unknown data field '{name}'", ref.span, hint)
            return None
        if len(parts) > 2:
            self.report(
                "UnknownField",
                f"'{ref.dotted}' is not a data field; a field reads dataset.field",
                ref.span,
                f"write {parts[0].name}.{parts[1].name}",
            )
            return None
        ds_name, fname = parts[0].name, parts[1].name
        if ds_name not in self.datasets:
            if ds_name in self.defs:
                msg = f"'{ds_name}' is a definition, not a dataset"
            else:
                msg = f"unknown dataset '{ds_name}'"
            hint = did_you_mean(ds_name, self.datasets) or (
                f'declare it first: data {ds_name} = conllu(train="...")'
                if not self.datasets
                else "datasets: " + ", ".join(self.datasets)
            )
            self.report("UnknownName", msg, parts[0].span, hint)
            return None
        return self._field_of(ds_name, fname, ref, model_data)

    def _field_of(
        self, ds_name: str, fname: str, ref: S.Ref, model_data: str | None
    ) -> FieldRef | None:
        ds = self.datasets[ds_name]
        if ds.fields is None:
            return None  # its data statement already has an error
        f = ds.fields.get(fname)
        if f is None:
            reader = ds.reader.name if ds.reader else "its reader"
            hint = did_you_mean(fname, ds.fields) or (
                f"{ds_name} ({reader}) has " + ", ".join(ds.fields)
            )
            self.report(
                "UnknownField", f"{ds_name} has no field '{fname}'", ref.parts[-1].span, hint
            )
            return None
        if model_data is not None and ds_name != model_data:
            other = self.datasets.get(model_data)
            hint = (
                f"use {model_data}.{fname}"
                if other and other.fields and fname in other.fields
                else None
            )
            self.report(
                "WrongDataset",
                f"the model runs on {model_data}, but this reads {f.dotted}",
                ref.span,
                hint,
            )
            return None
        return replace(f, span=ref.span)

    # -- definitions: open or closed, cycles --------------------------------------------------

    def needs_input(self, expr: S.Expr, seen: frozenset[str] = frozenset()) -> bool:
        """Whether a pipeline needs an input (it is open) or starts from data (closed)."""
        first = S.stages(expr)[0]
        if isinstance(first, S.Ref):
            if len(first.parts) != 1:
                return False
            name = first.dotted
            if name in self.defs:
                return self._def_needs_input(name, seen)
            return name in C.LAYERS
        if isinstance(first, S.Call):
            if len(first.func.parts) != 1:
                return False
            name = first.func.dotted
            if name == "embed":
                return not any(a.name is None or a.name.name == "source" for a in first.args)
            if name == "concat":
                return any(self.needs_input(a.value, seen) for a in first.args if a.name is None)
            if name in C.LAYERS:
                return True
            if name in self.defs:
                return self._def_needs_input(name, seen)
        return False

    def _def_needs_input(self, name: str, seen: frozenset[str]) -> bool:
        if name in seen or name in self.cyclic:
            return False
        return self.needs_input(self.defs[name].value, seen | {name})

    def is_open(self, name: str) -> bool:
        if name not in self._open:
            self._open[name] = self._def_needs_input(name, frozenset())
        return self._open[name]

    def _references(self, expr: S.Expr) -> list[S.Ident]:
        """Names of definitions an expression uses: stages and pipeline arguments."""
        out: list[S.Ident] = []
        for st in S.stages(expr):
            if isinstance(st, S.Ref) and len(st.parts) == 1:
                out.append(st.parts[0])
            elif isinstance(st, S.Call):
                if len(st.func.parts) == 1:
                    out.append(st.func.parts[0])
                layer = C.LAYERS.get(st.func.dotted)
                for a in st.args:
                    p = layer.param(a.name.name) if layer and a.name else None
                    if a.name is None or (p is not None and isinstance(p.type, C.PipelineArg)):
                        out.extend(self._references(a.value))
        return [i for i in out if i.name in self.defs]

    def _find_cycles(self) -> None:
        g = nx.DiGraph()
        where: dict[tuple[str, str], Span] = {}
        for name, d in self.defs.items():
            g.add_node(name)
            for ident in self._references(d.value):
                g.add_edge(name, ident.name)
                where.setdefault((name, ident.name), ident.span)
        order = list(self.defs)
        for comp in nx.strongly_connected_components(g):
            first = min(comp, key=order.index)
            if len(comp) == 1 and not g.has_edge(first, first):
                continue
            cycle = [first]
            while True:  # walk the cycle from the first definition, inside the component
                nxt = min((v for v in g.successors(cycle[-1]) if v in comp), key=order.index)
                if nxt == first or nxt in cycle:
                    cycle.append(nxt)
                    break
                cycle.append(nxt)
            self.cyclic |= comp
            self.report(
                "CyclicDefinition",
                "definitions refer to each other in a cycle: " + " -> ".join(cycle),
                where[(cycle[-2], cycle[-1])] if len(cycle) > 1 else self.defs[first].name.span,
                "a definition can only use definitions that do not use it",
            )

    # -- statements ---------------------------------------------------------------------------

    def check(self) -> tuple[dict[str, Any], bool]:
        train = evals = output = None
        for st in self.spec.statements:
            if isinstance(st, (S.DataStmt, S.Definition)):
                self._declare(st)
            elif isinstance(st, S.TrainStmt):
                train = self._once(train, st, "train")
            elif isinstance(st, S.EvalStmt):
                evals = self._once(evals, st, "eval")
            elif isinstance(st, S.OutputStmt):
                output = self._once(output, st, "output")
        data = {}
        for name, ds in list(self.datasets.items()):
            decl = self._data(name, ds)
            if decl is not None:
                data[name] = decl
        self._find_cycles()
        definitions = {name: self._definition(name, d) for name, d in self.defs.items()}
        models: dict[str, nx.DiGraph] = {}
        train_cfg = self._train(train, models) if train else None
        eval_cfg = self._eval(evals, models) if evals else None
        output_cfg = self._output(output) if output else None
        result = dict(
            data=data,
            definitions=definitions,
            models=models,
            train=train_cfg,
            eval=eval_cfg,
            output=output_cfg,
        )
        return result, not self.diags

    def _once(self, seen: Any, st: Any, word: str) -> Any:
        if seen is None:
            return st
        self.report(
            "DuplicateDefinition",
            f"a spec has one {word} statement; this is the second "
            f"(the first is at line {seen.span.line})",
            st.span,
            None,
        )
        return seen

    def _declare(self, st: S.DataStmt | S.Definition) -> None:
        name = st.name.name
        earlier = self.datasets.get(name) or self.defs.get(name)
        if earlier is not None:
            first = earlier.stmt.span if isinstance(earlier, _Dataset) else earlier.span
            self.report(
                "DuplicateDefinition",
                f"'{name}' is defined twice (first at line {first.line})",
                st.name.span,
                "rename one of them",
            )
            return
        if name in C.LAYERS or name == "none":
            what = "a layer" if name in C.LAYERS else "a word of the language"
            self.report(
                "DuplicateDefinition",
                f"'{name}' is already the name of {what}",
                st.name.span,
                f"choose another name, e.g. my_{name}",
            )  # still declared below, so that its uses give no further errors
        if isinstance(st, S.DataStmt):
            self.datasets[name] = _Dataset(st, None, None, None)
        else:
            self.defs[name] = st

    def _data(self, name: str, ds: _Dataset) -> DataDecl | None:
        st = ds.stmt
        expr = st.reader
        func = expr.func if isinstance(expr, S.Call) else expr
        if not isinstance(func, S.Ref) or len(func.parts) != 1:
            self.report(
                "BadValue",
                "a data statement reads data NAME = reader(...)",
                expr.span,
                'for example: data ewt = conllu(train="data/ewt/train.conllu.gz")',
            )
            return None
        rd = C.READERS.get(func.dotted)
        if rd is None:
            self.report(
                "UnknownReader",
                f"unknown reader '{func.dotted}'",
                func.span,
                did_you_mean(func.dotted, C.READERS) or "readers: " + ", ".join(C.READERS),
            )
            return None
        args = expr.args if isinstance(expr, S.Call) else ()
        bound = bind(self, rd.name, rd.params, args, expr.span, rd.example)
        known = {k: v for k, v in bound.items() if v is not INVALID}
        scheme = rd.scheme(known) if rd.scheme else None
        fields = {
            f.name: FieldRef(name, f.name, f.role, f.depth, scheme if f.role == "tags" else None)
            for f in rd.fields
        }
        self.datasets[name] = _Dataset(st, rd, bound, fields)
        if not valid(bound):
            return None
        if not self._data_files(rd, bound, args, expr.span):
            return None
        return DataDecl(name, rd.name, bound, fields, st.span)

    def _data_files(
        self, rd: C.ReaderDef, a: Mapping[str, Any], args: Sequence[S.Arg], span: Span
    ) -> bool:
        """Look at the first line of the files for what the arguments promise."""
        ok = True
        if rd.name == "labelled_files":
            for split in ("train", "dev"):
                files = a[split]
                if files is not None and len(files) != len(a["labels"]):
                    ok = False
                    self.report(
                        "ShapeMismatch",
                        f"labelled_files: {split} has {len(files)} file(s) but labels has "
                        f"{len(a['labels'])}; give one label per file, in order",
                        _arg_span(args, split, span),
                    )
        if rd.name == "classification" and a["format"] in ("tsv", "csv"):
            for split in ("train", "dev"):
                if a[split] is None:
                    continue
                header = _first_line(a[split])
                if header is None:
                    continue
                delim = "\t" if a["format"] == "tsv" else ","
                columns = [
                    c.strip() for c in next(csv.reader(io.StringIO(header), delimiter=delim))
                ]
                for key in ("label_column", "text_column"):
                    if a[key] not in columns:
                        ok = False
                        shown = os.path.basename(a[split])
                        self.report(
                            "MissingColumn",
                            f"classification: no column '{a[key]}' in the header of {shown} "
                            f"(columns: {', '.join(columns)})",
                            _arg_span(args, key, _arg_span(args, split, span)),
                            did_you_mean(a[key], columns),
                        )
        if rd.name == "conll":
            for split in ("train", "dev"):
                if a[split] is None:
                    continue
                line = _first_line(a[split])
                if line is None:
                    continue
                n = len(line.split())
                for key in ("word_column", "tag_column"):
                    if not -n <= a[key] < n:
                        ok = False
                        shown = os.path.basename(a[split])
                        self.report(
                            "MissingColumn",
                            f"conll: {key}={a[key]}, but the lines of {shown} have {n} "
                            f"columns (0 to {n - 1}, or -1 to -{n} from the end)",
                            _arg_span(args, key, span),
                        )
        return ok

    def _definition(self, name: str, d: S.Definition) -> DefinitionInfo:
        is_open = self.is_open(name)
        out_type: T.Type = T.UNKNOWN
        if name not in self.cyclic:
            b = _Builder(self, name, None)
            inp = b.placeholder() if is_open else None
            out = b.run(d.value, inp, name)
            if not is_open:
                out_type = out.type
        return DefinitionInfo(name, d.value, is_open, out_type, d.span)

    # -- models, train, eval, output ----------------------------------------------------------

    def _model(
        self, st: S.TrainStmt | S.EvalStmt, word: str, models: dict[str, nx.DiGraph]
    ) -> tuple[_Builder, _Out] | None:
        model, data = st.model.name, st.data.name
        ok = True
        if model not in self.defs:
            what = "a dataset" if model in self.datasets else None
            self.report(
                "UndefinedModel",
                f"no model named '{model}'" + (f" ('{model}' is {what})" if what else ""),
                st.model.span,
                did_you_mean(model, self.defs)
                or f"define it first: {model} = embed(...) |> ... |> softmax(...)",
            )
            ok = False
        if data not in self.datasets:
            what = f"'{data}' is a definition, not a dataset" if data in self.defs else None
            self.report(
                "UnknownName",
                what or f"unknown dataset '{data}'",
                st.data.span,
                did_you_mean(data, self.datasets)
                or ("datasets: " + ", ".join(self.datasets) if self.datasets else None),
            )
            ok = False
        if not ok or model in self.cyclic:
            return None
        d = self.defs[model]
        if self.is_open(model):
            first = _stage_name(S.stages(d.value)[0])
            self.report(
                "NoInput",
                f"model '{model}' has no input: it starts with {first}, which needs one",
                st.model.span,
                f"start it from data, e.g. embed({data}.words, d=100) |> ...",
            )
            return None
        b = _Builder(self, model, data)
        out = b.run(d.value, None, model)
        if out.head is None and not isinstance(out.type, T.Unknown):
            self.report(
                "NoHead",
                f"model '{model}' has no head: it ends with {out.label or 'a stage'} "
                f"and gives {out.type}",
                st.model.span,
                self._head_hint(data, out.type),
            )
        models.setdefault(model, b.g.finish(out.node))
        return b, out

    def _head_hint(self, data: str, t: T.Type) -> str:
        ds = self.datasets.get(data)
        fields = ds.fields or {} if ds else {}
        if isinstance(t, T.Seq) and t.depth == 1:
            heads = [f"softmax({f.dotted})" for f in fields.values() if f.per == "token"]
            heads += [f"crf({f.dotted})" for f in fields.values() if f.role == "tags"]
        elif isinstance(t, T.Vec):
            heads = [f"softmax({f.dotted})" for f in fields.values() if f.per == "sequence"]
        else:
            heads = []
        if heads:
            return "end it with " + " or ".join(heads)
        return "end it with a head: softmax(dataset.field) or crf(dataset.tags)"

    def _settings(
        self,
        settings: Sequence[S.Setting],
        table: Mapping[str, C.SettingDef],
        owner: str,
        ctx: Any,
    ) -> tuple[dict[str, Any], dict[str, Span]]:
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        for s in settings:
            key = s.key.name
            sd = table.get(key)
            if sd is None:
                self.report(
                    "UnknownSetting",
                    f"{owner} has no setting '{key}'",
                    s.key.span,
                    did_you_mean(key, table) or f"{owner} settings: " + ", ".join(table),
                )
                continue
            if key in spans:
                self.report(
                    "DuplicateArgument",
                    f"{owner}: {key} is set twice (first at line {spans[key].line})",
                    s.key.span,
                )
                continue
            spans[key] = s.value.span
            v = check_value(ctx, sd.type, s.value, owner, key)
            if v is not INVALID:
                values[key] = v
        for key, sd in table.items():
            values.setdefault(key, default_setting(sd))
        return values, spans

    def _target(self, built: tuple[_Builder, _Out] | None) -> FieldRef | None:
        if built is None or built[1].head is None:
            return None
        return built[1].head.target

    def _check_metric(
        self, metric: str, target: FieldRef | None, model: str, span: Span, owner: str
    ) -> None:
        if target is None:
            return
        if metric == "perplexity" and target.role != "next":
            self.report(
                "BadValue",
                f"{owner}: perplexity needs a language model (a softmax over a next-token "
                f"field), but {model} predicts {target.dotted}",
                span,
                "use accuracy or loss",
            )
        if metric in ("f1", "macro_f1") and target.role == "labels":
            ds = self.datasets.get(target.dataset or "")
            reader = ds.reader.name if ds is not None and ds.reader is not None else None
            if metric == "f1" and reader not in (None, "tweeteval"):
                self.report(
                    "BadValue",
                    f"{owner}: f1 of a sentence label is defined for TweetEval's two-class tasks "
                    f"(the F1 of label 1), but {target.dataset} is read by {reader}",
                    span,
                    "use macro_f1 or accuracy",
                )
        elif metric == "macro_f1":
            self.report(
                "BadValue",
                f"{owner}: macro_f1 averages the F1 of sentence labels, but {model} predicts "
                f"{target.dotted}",
                span,
                "use f1 (span F1 with a tag scheme) or accuracy",
            )
        if metric == "f1" and target.role == "tags" and target.scheme == "none":
            self.report(
                "BadValue",
                f"{owner}: f1 is span F1 and needs tags with a span scheme (bio, iob1, iobes), "
                f"but {target.dotted} has none",
                span,
                "use accuracy",
            )

    def _has_dev(self, data: str) -> bool:
        ds = self.datasets.get(data)
        if ds is None or ds.reader is None or ds.args is None or ds.reader.param("dev") is None:
            return True
        return ds.args.get("dev") is not None and ds.args.get("dev") is not INVALID

    def _train(self, st: S.TrainStmt, models: dict[str, nx.DiGraph]) -> TrainConfig | None:
        built = self._model(st, "train", models)
        ctx = built[0] if built else self
        v, spans = self._settings(st.settings, C.TRAIN_SETTINGS, "train", ctx)
        target = self._target(built)
        model, data = st.model.name, st.data.name
        early = v["early_stop"]
        early_stop = None
        if isinstance(early, FuncValue):
            early_stop = EarlyStop(early.name.split(".", 1)[1], early.args["patience"])
            span = spans["early_stop"]
            self._check_metric(early_stop.metric, target, model, span, "train: early_stop")
            if not self._has_dev(data):
                self.report(
                    "BadValue",
                    f"train: early stopping needs a dev set, but {data} has none",
                    span,
                    f'add dev="..." to data {data}',
                )
        if v["bptt"] is not None and target is not None and target.role != "next":
            self.report(
                "BadValue",
                f"train: bptt applies to language models (a softmax over a next-token field), "
                f"but {model} predicts {target.dotted}",
                spans["bptt"],
                "remove bptt",
            )
        if built is not None:
            used = built[0].used
            for name in v["freeze"]:
                if name != model and name not in used:
                    self.report(
                        "BadValue",
                        f"train: freeze names '{name}', which is not part of model '{model}'",
                        spans["freeze"],
                        "parts of the model: " + ", ".join(used) if used else None,
                    )
        return TrainConfig(
            model=model,
            data=data,
            optimizer=v["optimizer"],
            epochs=v["epochs"],
            batch=v["batch"],
            clip=None if v["clip"] is None else float(v["clip"]),
            schedule=v["schedule"],
            early_stop=early_stop,
            seed=v["seed"],
            bptt=v["bptt"],
            init=v["init"],
            freeze=tuple(v["freeze"]),
            chain_thaw=v["chain_thaw"],
            pretrained=v["pretrained"],
            weight_decay=float(v["weight_decay"]),
            reduction=v["reduction"],
            eval_every=v["eval_every"],
            checkpoint_every=v["checkpoint_every"],
            span=st.span,
            setting_spans=spans,
        )

    def _eval(self, st: S.EvalStmt, models: dict[str, nx.DiGraph]) -> EvalConfig | None:
        built = self._model(st, "eval", models)
        v, spans = self._settings(st.settings, C.EVAL_SETTINGS, "eval", built[0] if built else self)
        target = self._target(built)
        metrics = v["metrics"]
        if metrics is None:
            if target is not None and target.role == "next":
                metrics = ["perplexity"]
            elif (
                target is not None and target.role == "tags" and target.scheme not in ("none", None)
            ):
                metrics = ["f1", "accuracy"]
            else:
                metrics = ["accuracy"]
        else:
            for m in dict.fromkeys(metrics):
                self._check_metric(m, target, st.model.name, spans["metrics"], "eval")
        if v["split"] == "dev" and not self._has_dev(st.data.name):
            self.report(
                "BadValue",
                f"eval: {st.data.name} has no dev set to evaluate on",
                spans.get("split", st.data.span),
                f'add dev="..." to data {st.data.name}, or set split = train',
            )
        return EvalConfig(st.model.name, st.data.name, tuple(metrics), v["split"], st.span)

    def _output(self, st: S.OutputStmt) -> OutputConfig:
        v, _ = self._settings(st.settings, C.OUTPUT_SETTINGS, "output", self)
        return OutputConfig(v["dir"], v["predictions"], v["plot"], st.span)


# ---------------------------------------------------------------------------------------------
# Pipelines -> types and IR nodes


class _Builder:
    """Checks pipelines and adds their nodes to one graph (one model, or one definition alone).

    Also the value context for arguments: fields must come from ``data`` when it is set."""

    def __init__(self, checker: Checker, name: str, data: str | None):
        self.c = checker
        self.g = GraphBuilder(name, data)
        self.data = data
        self.base_dir = checker.base_dir
        self.counts_ok = checker.counts_ok
        self.instances: dict[str, _Out] = {}  # closed definitions, shared by every use
        self.used: list[str] = []  # definitions this graph uses, in order

    # value context
    def report(self, kind: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.c.report(kind, message, span, hint)

    def field(self, ref: S.Ref, ftype: C.FieldArg, owner: str) -> FieldRef | None:
        return self.c.field(ref, ftype, owner, self.data)

    def definition_names(self) -> Sequence[str]:
        return self.c.definition_names()

    def placeholder(self) -> _Out:
        """The input of an open definition checked on its own: of unknown type."""
        node = self.g.add(
            f"{self.g.graph.graph['name']}.input",
            "input",
            "input",
            {},
            [],
            T.UNKNOWN,
            None,
            "input",
        )
        return _Out(node, T.UNKNOWN, label="its input")

    # pipelines
    def run(self, expr: S.Expr, inp: _Out | None, scope: str) -> _Out:
        cur = inp
        for i, st in enumerate(S.stages(expr), 1):
            if cur is not None and cur.head is not None:
                h = cur.head
                self.report(
                    "HeadNotLast",
                    f"{h.name} must be the last stage of a model, but {_stage_name(st)} follows it",
                    h.span,
                    f"move {h.name}(...) to the end of the pipeline",
                )
                cur = _UNKNOWN
            cur = self.stage(st, cur, scope, i)
        assert cur is not None
        return cur

    def stage(self, st: S.Expr, inp: _Out | None, scope: str, i: int) -> _Out:
        if isinstance(st, S.Pipe):
            return self.run(st, inp, f"{scope}.{i}")
        if isinstance(st, S.Ref):
            if len(st.parts) > 1:
                return self._field_stage(st, inp)
            return self._name_stage(st, inp, scope, i)
        if isinstance(st, S.Call):
            name = st.func.dotted
            if len(st.func.parts) > 1:
                self.report(
                    "UnknownLayer",
                    f"'{name}' is not a layer",
                    st.func.span,
                    f"a data field takes no arguments; to embed it write embed({name}, d=100)",
                )
                return _UNKNOWN
            if name in C.LAYERS:
                return self._layer(C.LAYERS[name], st, st.args, inp, scope, i)
            if name in self.c.defs:
                self.report(
                    "UnknownArgument",
                    f"'{name}' is a definition and takes no arguments",
                    st.span,
                    f"write {name} without parentheses",
                )
                return _UNKNOWN
            self._unknown_layer(st.func.parts[0], call=True)
            return _UNKNOWN
        kind = {S.Num: "a number", S.Str: "a string", S.Bool: "a boolean", S.ListExpr: "a list"}
        self.report(
            "TypeMismatch",
            f"a pipeline stage is a layer, a definition or a data field, not {kind[type(st)]}",
            st.span,
        )
        return _UNKNOWN

    def _unknown_layer(self, ident: S.Ident, call: bool) -> None:
        name = ident.name
        layers = did_you_mean(name, C.LAYERS)
        if name in C.READERS:
            self.report(
                "UnknownLayer",
                f"'{name}' is a reader, not a layer",
                ident.span,
                f"readers go in data statements: data x = {C.READERS[name].example}",
            )
            return
        if call or layers:
            self.report(
                "UnknownLayer",
                f"unknown layer '{name}'",
                ident.span,
                layers or did_you_mean(name, self.c.defs) or "see docs/language.md for the layers",
            )
            return
        choices = list(self.c.defs) + list(self.c.datasets)
        self.report(
            "UnknownName", f"unknown name '{name}'", ident.span, did_you_mean(name, choices)
        )

    def _name_stage(self, ref: S.Ref, inp: _Out | None, scope: str, i: int) -> _Out:
        name = ref.dotted
        if name in self.c.defs:
            return self._definition(ref, inp, scope, i)
        if name in C.LAYERS:
            return self._layer(C.LAYERS[name], ref, (), inp, scope, i)
        ds = self.c.datasets.get(name)
        if ds is not None:
            fields = ", ".join(f"{name}.{f}" for f in ds.fields or ())
            self.report(
                "UnknownField",
                f"'{name}' is a dataset; a pipeline starts from one of its fields",
                ref.span,
                f"fields: {fields}" if fields else None,
            )
            return _UNKNOWN
        if any(d.fields and name in d.fields for d in self.c.datasets.values()):
            return self._field_stage(ref, inp)
        self._unknown_layer(ref.parts[0], call=False)
        return _UNKNOWN

    def _field_stage(self, ref: S.Ref, inp: _Out | None) -> _Out:
        f = self.c.resolve_field(ref, self.data)
        if f is None:
            return _UNKNOWN
        if inp is not None:
            self.report(
                "TypeMismatch",
                f"the data field {f.dotted} can only start a pipeline",
                ref.span,
                f"start with it: {f.dotted} |> embed(d=100) |> ...",
            )
            return _UNKNOWN
        if f.role != "tokens":
            self.report(
                "TypeMismatch",
                f"{f.dotted} is {C.ROLE_WORDS[f.role]}, a target; a pipeline starts from token ids",
                ref.span,
                f"predict it with a head at the end: softmax({f.dotted})",
            )
            return _UNKNOWN
        return self._input(f)

    def _input(self, f: FieldRef) -> _Out:
        node = f.dotted
        assert node is not None
        t = T.Tokens(f.depth)
        if not self.g.has(node):
            params = {"dataset": f.dataset, "field": f.field, "level": f.depth}
            self.g.add(node, "input", "input", params, [], t, f.span, node)
        return _Out(node, t, label=node, source=node)

    def _definition(self, ref: S.Ref, inp: _Out | None, scope: str, i: int) -> _Out:
        name = ref.dotted
        if name in self.c.cyclic:
            return _UNKNOWN
        if name not in self.used:
            self.used.append(name)
        d = self.c.defs[name]
        if not self.c.is_open(name):
            if inp is not None:
                self.report(
                    "TypeMismatch",
                    f"'{name}' starts from data and takes no input",
                    ref.span,
                    f"join it with concat(..., {name}), or start the pipeline with {name}",
                )
                return _UNKNOWN
            if name not in self.instances:
                self.instances[name] = self.run(d.value, None, name)
            out = self.instances[name]
        else:
            if inp is None:
                self.report(
                    "NoInput",
                    f"'{name}' needs an input, but nothing comes before it",
                    ref.span,
                    f"start from data: embed(dataset.words, d=100) |> {name}",
                )
                return _UNKNOWN
            out = self.run(d.value, inp, f"{scope}.{i}.{name}")
        return replace(out, rnn=None, label=f"'{name}'")

    # layers
    def _layer(
        self,
        ld: C.LayerDef,
        st: S.Expr,
        args: Sequence[S.Arg],
        inp: _Out | None,
        scope: str,
        i: int,
    ) -> _Out:
        if ld.name in _STRUCTURAL:
            handler = getattr(self, f"_{ld.name}")
            return handler(ld, st, args, inp, scope, i)
        bound = bind(self, ld.name, ld.params, args, st.span, ld.example)
        if ld.kind == "embed":
            return self._embed(ld, st, args, bound, inp, scope, i)
        if inp is None:
            self.report(
                "NoInput",
                f"{ld.name} needs an input, but nothing comes before it",
                st.span,
                "start the pipeline from data, e.g. embed(ewt.words, d=100) |> ...",
            )
            return _UNKNOWN
        if ld.name == "mlp" and isinstance(bound["d"], list):
            given = [a for a in args if a.name is not None and a.name.name == "layers"]
            if given and bound["layers"] != len(bound["d"]):
                self.report(
                    "BadValue",
                    f"mlp: layers={bound['layers']} but d lists {len(bound['d'])} sizes",
                    given[0].value.span,
                    "give either a list of sizes or layers=, not both",
                )
                bound = {**bound, "layers": INVALID}
        return self._emit(ld, ld.name, f"{scope}.{i}.{ld.name}", bound, {}, inp, st)

    def _emit(
        self,
        ld: C.LayerDef,
        layer: str,
        node: str,
        bound: Mapping[str, Any],
        fixed: Mapping[str, Any],
        inp: _Out,
        st: S.Expr,
    ) -> _Out:
        """Apply ``ld``'s shape rule and add its node: the common tail of every simple layer.

        With a wrong argument the node is left out (the graph is dropped anyway), but the type
        is still inferred when it does not depend on that argument, to find later errors."""
        args = {**ld.fixed, **fixed, **bound}
        assert ld.rule is not None
        out_t: T.Type = T.UNKNOWN
        if not isinstance(inp.type, T.Unknown):
            try:
                out_t = ld.rule(
                    C.StageIn(ld.name, inp.type, Guarded(args), inp.pooled_by, inp.source)
                )
            except InvalidArgument:
                pass
            except C.Mismatch as m:
                self.report(m.kind, m.message, st.span, m.hint)
                return replace(_UNKNOWN, label=ld.name)
        label = S.to_source(st)
        made: str | None = None
        params: dict[str, Any] = {}
        if valid(args):
            params = self._ir_params(ld, args, inp.type)
            made = self.g.add(
                node, ld.kind, layer, params, [(inp.node, inp.type)], out_t, st.span, label
            )
        pooled_by = None
        if ld.category == "pooling":
            pooled_by = ld.name
        elif ld.category == "feedforward":
            pooled_by = inp.pooled_by
        rnn = None
        if ld.category == "recurrent":
            rnn = _Rnn(made, layer, params, label, inp.node, inp.type)
        head = None
        if ld.category == "head":
            target = args.get("target")
            head = _Head(ld.name, st.span, target if isinstance(target, FieldRef) else None)
        return _Out(made, out_t, ld.name, pooled_by, None, rnn, head)

    def _ir_params(self, ld: C.LayerDef, args: Mapping[str, Any], t: T.Type) -> dict[str, Any]:
        params = {k: v for k, v in args.items() if not isinstance(v, FieldRef)}
        if ld.kind == "embed":
            src: FieldRef = args["source"]
            params.update(source=src.dotted, dataset=src.dataset, field=src.field, level=src.depth)
            if params["pretrained"] in C.PRETRAINED_VECTORS:
                params["format"] = "package"  # a named set: the loader needs no file format
            elif params["pretrained"] is not None:
                params["format"] = vector_format(params["pretrained"], params["format"])
        elif ld.kind in ("softmax", "crf"):
            target: FieldRef = args["target"]
            per = target.per or ("sequence" if isinstance(t, T.Vec) else "token")
            params.update(
                target=target.dotted,
                dataset=target.dataset,
                field=target.field,
                per=per,
                classes=target.classes,
            )
            if ld.kind == "crf" and params["scheme"] == "auto":
                params["scheme"] = target.scheme or "none"
        elif ld.kind == "mlp":
            sizes = C._mlp_sizes(args)
            params.update(d=sizes[-1], layers=len(sizes), sizes=sizes)
        return params

    def _embed(
        self,
        ld: C.LayerDef,
        st: S.Expr,
        args: Sequence[S.Arg],
        bound: dict[str, Any],
        inp: _Out | None,
        scope: str,
        i: int,
    ) -> _Out:
        src = bound["source"]
        if src is INVALID:
            return replace(_UNKNOWN, label="embed")
        if src is not None and inp is not None:
            self.report(
                "TypeMismatch",
                f"embed gets tokens from the pipeline ({inp.label}) and from {src.dotted}",
                st.span,
                f"give one: {src.dotted} |> embed(d=...) or embed({src.dotted}, d=...) alone",
            )
            return replace(_UNKNOWN, label="embed")
        if src is not None:
            inp = self._input(src)
        elif inp is None:
            self.report(
                "MissingArgument",
                "embed needs a source: a token field like ewt.words",
                st.span,
                "for example: embed(ewt.words, d=100)",
            )
            return replace(_UNKNOWN, label="embed")
        elif inp.source is not None:
            ds, fname = inp.source.split(".", 1)
            data = self.c.datasets.get(ds)
            src = (data.fields or {}).get(fname) if data else None
        d, pre = bound["d"], bound["pretrained"]
        if pre is not None and pre is not INVALID and d is not INVALID:
            fmt = bound["format"]
            named = C.PRETRAINED_VECTORS.get(pre)
            if named is not None:
                dim = named.dim
            else:
                dim = vector_dim(pre, vector_format(pre, fmt)) if fmt is not INVALID else None
            if named is not None and _arg_span(args, "format", None) is not None:
                self.report(
                    "UnknownArgument",
                    f"embed: format applies to a vector file, not to the named set '{pre}'",
                    _arg_span(args, "format", st.span),
                    "leave format out",
                )
            if d is None and dim is None:
                self.report(
                    "MissingArgument",
                    "embed needs d: the vector size could not be read from the pretrained file",
                    st.span,
                    "give it: d=100",
                )
                d = INVALID
            elif d is not None and dim is not None and d != dim:
                self.report(
                    "ShapeMismatch",
                    f"embed: d={d}, but the vectors "
                    + (f"in {os.path.basename(pre)}" if named is None else pre)
                    + f" have {dim} dimensions",
                    _arg_span(args, "d", st.span),
                    f"set d={dim} or leave d out to take the size from the file",
                )
                d = INVALID
            elif d is None:
                d = dim
        elif pre is INVALID and d is None:
            d = INVALID  # the size would come from the missing file
        elif d is None:
            self.report(
                "MissingArgument",
                "embed needs d (the vector size)",
                st.span,
                "for example: embed(ewt.words, d=100)",
            )
            d = INVALID
        if src is None:  # tokens of unknown origin (an open definition checked alone)
            src = FieldRef(None, None, "tokens", inp.type.depth or 1)
        bound = {**bound, "d": d, "source": src}
        return self._emit(ld, "embed", f"{scope}.{i}.embed", bound, {}, inp, st)

    # structural layers
    def _stack(
        self,
        ld: C.LayerDef,
        st: S.Expr,
        args: Sequence[S.Arg],
        inp: _Out | None,
        scope: str,
        i: int,
    ) -> _Out:
        bound = bind(self, "stack", ld.params, args, st.span, ld.example)
        if inp is None:
            self.report("NoInput", "stack needs a recurrent layer before it", st.span, ld.example)
            return _UNKNOWN
        rnn = inp.rnn
        if rnn is None:
            if isinstance(inp.type, T.Unknown) and inp.node is None:
                return _UNKNOWN  # the stage before already has an error
            if inp.label == "stack":
                msg = "stack follows another stack"
                hint = "write one stack(k) with the number of layers in all"
            else:
                before = inp.label or "the stage before it"
                if before.startswith("'"):
                    before += " (a definition)"
                msg = f"stack repeats the recurrent layer before it, but {before} is not recurrent"
                hint = (
                    "put stack right after srnn, lstm, gru or a bi layer: bilstm(d=128) |> stack(2)"
                )
            self.report("NotRecurrent", msg, st.span, hint)
            return _UNKNOWN
        if not valid(bound):
            return replace(_UNKNOWN, label="stack")
        k, p, skip = bound["k"], bound["dropout"], bound["skip"]
        where = f"{scope}.{i}.stack"
        x_node, x_t = rnn.in_node, rnn.in_type
        h_node, h_t = rnn.node, inp.type
        if not isinstance(h_t, T.Seq) or not isinstance(x_t, T.Seq):
            return replace(_UNKNOWN, label="stack")
        depth, out_dim = h_t.depth, h_t.dim
        if h_node is None:  # the layer has a wrong argument: only the type
            dim = T.add_dims(x_t.dim, k * out_dim) if skip and out_dim is not None else None
            return _Out(None, T.Seq(dim if skip else out_dim, depth), "stack")

        def join(j: int, x: tuple, h: tuple) -> tuple:
            t = T.Seq(T.add_dims(x[1].dim, h[1].dim), depth)
            node = self.g.add(
                f"{where}.skip.{j}", "concat", "concat", {}, [x, h], t, st.span, "skip"
            )
            return node, t

        cur = join(0, (x_node, x_t), (h_node, h_t)) if skip else (h_node, h_t)
        for j in range(1, k):
            x = cur
            if p > 0:
                t = x[1]
                node = self.g.add(
                    f"{where}.dropout.{j}",
                    "dropout",
                    "dropout",
                    {"p": p},
                    [x],
                    t,
                    st.span,
                    f"dropout({p})",
                )
                x = (node, t)
            copy_t = T.Seq(out_dim, depth)
            copy = self.g.add(
                f"{rnn.node}.{j}",
                "rnn",
                rnn.layer,
                dict(rnn.params),
                [x],
                copy_t,
                st.span,
                f"{rnn.label} (layer {j + 1})",
            )
            cur = join(j, cur, (copy, copy_t)) if skip else (copy, copy_t)
        return _Out(cur[0], cur[1], "stack")

    def _bi(
        self,
        ld: C.LayerDef,
        st: S.Expr,
        args: Sequence[S.Arg],
        inp: _Out | None,
        scope: str,
        i: int,
    ) -> _Out:
        bound = bind(self, "bi", ld.params, args, st.span, ld.example)
        cell = bound["cell"]
        if cell is INVALID:
            return replace(_UNKNOWN, label="bi")
        ref = cell.func if isinstance(cell, S.Call) else cell
        name = ref.dotted if isinstance(ref, S.Ref) else None
        if name not in C.UNI_CELLS:
            if name == "bi":
                msg = "bi takes a one-directional layer, but bi(...) is already bidirectional"
                hint = "write bi(...) once"
            elif name in ("bisrnn", "bilstm", "bigru"):
                msg = f"bi takes a one-directional layer, but {name} is already bidirectional"
                hint = f"write {name}(...) alone, or bi({name[2:]}(...))"
            elif name in C.LAYERS:
                msg = f"bi takes a recurrent layer (srnn, lstm or gru), got {name}"
                hint = "for example: bi(lstm(d=64))"
            elif name is not None and len(ref.parts) == 1:
                self.report(
                    "UnknownLayer",
                    f"unknown layer '{name}'",
                    ref.span,
                    did_you_mean(name, C.UNI_CELLS) or "bi takes srnn, lstm or gru",
                )
                return replace(_UNKNOWN, label="bi")
            else:
                msg = f"bi takes a recurrent layer like lstm(d=64), got {S.to_source(cell)}"
                hint = None
            self.report("BadValue", msg, cell.span, hint)
            return replace(_UNKNOWN, label="bi")
        inner = C.LAYERS[name]
        cell_args = cell.args if isinstance(cell, S.Call) else ()
        inner_bound = bind(self, name, inner.params, cell_args, cell.span, inner.example)
        if inp is None:
            self.report("NoInput", "bi needs an input, but nothing comes before it", st.span)
            return _UNKNOWN
        fixed = {"bidirectional": True}
        return self._emit(inner, "bi", f"{scope}.{i}.bi", inner_bound, fixed, inp, st)

    def _skip(
        self,
        ld: C.LayerDef,
        st: S.Expr,
        args: Sequence[S.Arg],
        inp: _Out | None,
        scope: str,
        i: int,
    ) -> _Out:
        bound = bind(self, "skip", ld.params, args, st.span, ld.example)
        if inp is None:
            self.report("NoInput", "skip needs an input, but nothing comes before it", st.span)
            return _UNKNOWN
        pipe = bound["pipeline"]
        if pipe is INVALID:
            return replace(_UNKNOWN, label="skip")
        r = self.run(pipe, inp, f"{scope}.{i}.skip")
        self._no_head_inside(r, "skip")
        t = self._joined("skip", [(inp, st.span, "its input"), (r, pipe.span, "its pipeline")])
        if t is None:
            return replace(_UNKNOWN, label="skip")
        node = self.g.add(
            f"{scope}.{i}.skip",
            "concat",
            "skip",
            {},
            [(inp.node, inp.type), (r.node, r.type)],
            t,
            st.span,
            S.to_source(st),
        )
        return _Out(node, t, "skip", inp.pooled_by if isinstance(t, T.Vec) else None)

    def _concat(
        self,
        ld: C.LayerDef,
        st: S.Expr,
        args: Sequence[S.Arg],
        inp: _Out | None,
        scope: str,
        i: int,
    ) -> _Out:
        bound = bind(self, "concat", ld.params, args, st.span, ld.example)
        inputs: list[S.Expr] = bound["inputs"]
        if len(inputs) < 2:
            self.report(
                "MissingArgument",
                f"concat needs at least two inputs, got {len(inputs)}",
                st.span,
                "for example: concat(words, chars)",
            )
        outs = []
        any_open = False
        for j, a in enumerate(inputs, 1):
            needs = self.c.needs_input(a)
            any_open |= needs
            if needs and inp is None:
                self.report(
                    "NoInput",
                    f"concat's input {j} needs an input, but nothing comes before concat",
                    a.span,
                )
                outs.append((_UNKNOWN, a.span, f"input {j}"))
                continue
            r = self.run(a, inp if needs else None, f"{scope}.{i}.concat.{j}")
            self._no_head_inside(r, "concat")
            outs.append((r, a.span, f"input {j}"))
        if inp is not None and inputs and not any_open:
            self.report(
                "TypeMismatch",
                f"concat drops its input ({inp.label}): each of its inputs starts from data",
                st.span,
                "start the pipeline with concat(...), or use skip(...) to join the input",
            )
            return replace(_UNKNOWN, label="concat")
        seen: dict[str, Span] = {}
        for r, span, _ in outs:
            if r.node is not None and r.node in seen:
                self.report(
                    "BadValue",
                    f"concat joins the same value twice ({r.label})",
                    span,
                    "each input of concat must be different",
                )
                return replace(_UNKNOWN, label="concat")
            if r.node is not None:
                seen[r.node] = span
        t = self._joined("concat", outs)
        if t is None or len(inputs) < 2:
            return replace(_UNKNOWN, label="concat")
        node = self.g.add(
            f"{scope}.{i}.concat",
            "concat",
            "concat",
            {},
            [(r.node, r.type) for r, _, _ in outs],
            t,
            st.span,
            f"concat({', '.join(S.to_source(a) for a in inputs)})",
        )
        return _Out(node, t, "concat")

    def _spans(
        self,
        ld: C.LayerDef,
        st: S.Expr,
        args: Sequence[S.Arg],
        inp: _Out | None,
        scope: str,
        i: int,
    ) -> _Out:
        bound = bind(self, "spans", ld.params, args, st.span, ld.example)
        if inp is None:
            self.report("NoInput", "spans needs an input, but nothing comes before it", st.span)
            return _UNKNOWN
        encoder = bound["encoder"]
        if encoder is INVALID:
            return replace(_UNKNOWN, label="spans")
        split_t: T.Type = T.UNKNOWN
        if not isinstance(inp.type, T.Unknown):
            try:
                split_t = C.LAYERS["split"].rule(  # type: ignore[misc]
                    C.StageIn("spans", inp.type, Guarded(bound), inp.pooled_by, inp.source)
                )
            except C.Mismatch as m:
                self.report(m.kind, m.message, st.span, m.hint)
                return replace(_UNKNOWN, label="spans")
        where = f"{scope}.{i}.spans"
        node = self.g.add(
            f"{where}.split",
            "split",
            "spans",
            {"on": bound["on"]},
            [(inp.node, inp.type)],
            split_t,
            st.span,
            f"split(on={bound['on']})",
        )
        r = self.run(encoder, _Out(node, split_t, "split"), where)
        self._no_head_inside(r, "spans")
        if isinstance(r.type, T.Seq) and r.type.depth == 2:
            self.report(
                "TypeMismatch",
                "spans needs an encoder that ends in a pooling (last, first, mean, max, "
                f"attention), so that each span becomes one vector; this one gives {r.type}",
                encoder.span,
                "end the encoder with |> last",
            )
            return replace(_UNKNOWN, label="spans")
        if isinstance(r.type, T.Vec):
            self.report(
                "ShapeMismatch",
                f"the encoder of spans pools twice and gives {r.type}; spans needs one vector "
                "per span (one pooling)",
                encoder.span,
                "keep one pooling in the encoder; pool over the spans after spans(...)",
            )
            return replace(_UNKNOWN, label="spans")
        return _Out(r.node, r.type, "spans")

    def _no_head_inside(self, r: _Out, where: str) -> None:
        if r.head is not None:
            self.report(
                "HeadNotLast",
                f"{r.head.name} cannot be inside {where}(...); a head ends the model",
                r.head.span,
                f"move {r.head.name}(...) to the end of the model's pipeline",
            )

    def _joined(self, who: str, items: list[tuple[_Out, Span, str]]) -> T.Type | None:
        """The type of joining ``items`` side by side, or None after reporting a mismatch."""
        known = [x for x in items if not isinstance(x[0].type, T.Unknown)]
        for r, span, what in known:
            if isinstance(r.type, T.Tokens):
                self.report(
                    "TypeMismatch",
                    f"{who} joins vectors, but {what} is {r.type} (token ids)",
                    span,
                    f"embed the tokens first: embed({r.source or 'ewt.words'}, d=100)",
                )
                return None
        if len(known) != len(items) or not known:
            return T.UNKNOWN
        first, first_what = known[0][0].type, known[0][2]
        for r, span, what in known[1:]:
            t = r.type
            if isinstance(t, T.Vec) != isinstance(first, T.Vec):
                self.report(
                    "TypeMismatch",
                    f"{who} joins values of one kind, but {first_what} is {first} and {what} "
                    f"is {t}",
                    span,
                    "pool the sequence (e.g. |> last), or drop the pooling, so both are Seq "
                    "or both Vec",
                )
                return None
            if t.depth != first.depth:
                self.report(
                    "ShapeMismatch",
                    f"{who} joins values at the same nesting, but {first_what} is {first} and "
                    f"{what} is {t}",
                    span,
                    "pool the inner level of the nested one, e.g. |> last",
                )
                return None
        dim: int | None = 0
        for r, _, _ in known:
            dim = T.add_dims(dim, r.type.dim)
        return T.vectors(dim, first.depth)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Entry points


def check_spec(
    spec: S.Spec, source: str, base_dir: str | os.PathLike[str] | None = None
) -> tuple[CheckedSpec | None, list[Diagnostic]]:
    """Check a parsed spec. Returns the checked spec (None after any error) and the diagnostics,
    sorted by position."""
    base = Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))
    checker = Checker(spec, base)
    try:
        result, ok = checker.check()
    except RecursionError:
        span = Span(1, 1, 1, 2, spec.path)
        return None, [Diagnostic("ParseError", "the spec nests too deeply to check", span)]
    diags = sorted(checker.diags, key=Diagnostic.sort_key)
    if not ok:
        return None, diags
    return CheckedSpec(spec.path, source, spec, base_dir=str(base), **result), diags


def compile_pipeline(text: str, input_dim: int) -> nx.DiGraph:
    """The IR of a pipeline with no data: its input is node ``input`` of type Seq[input_dim].

    Heads may take a class count: ``softmax(5)``, ``crf(5)``. Raises SpecError, with positions
    in ``text``.
    """
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
        raise ShapeError(f"input_dim must be an int >= 1, got {input_dim!r}")
    expr = parse_pipeline(text)
    checker = Checker(S.Spec((), "<pipeline>"), None, counts_ok=True)
    b = _Builder(checker, "pipeline", None)
    t = T.Seq(input_dim, 1)
    params = {"dataset": None, "field": None, "level": 1, "dim": input_dim}
    b.g.add("input", "input", "input", params, [], t, None, "input")
    out = b.run(expr, _Out("input", t, "input"), "pipeline")
    if checker.diags:
        raise SpecError(checker.diags, text)
    return b.g.finish(out.node)
