"""The statement checker: names, data statements, definitions, train, eval and output blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import Diagnostic, Span, did_you_mean
from . import catalogue as C
from . import syntax as S
from . import types as T
from .flow import _Out, _stage_name
from .pipeline import _Builder
from .probes import data_files_fit
from .results import (
    DataDecl,
    DefinitionInfo,
    EarlyStop,
    EvalConfig,
    OutputConfig,
    TrainConfig,
    default_setting,
)
from .values import INVALID, FieldRef, FuncValue, bind, check_value, valid

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

    def __init__(self, spec: S.Spec, base_dir: Path | None, counts_ok: bool = False,
                 check_paths: bool = True):
        self.spec = spec
        self.base_dir = base_dir
        self.check_paths = check_paths  # False: data files need not exist (a run's spec copy)
        self.counts_ok = counts_ok  # compile_pipeline: heads may take a class count
        self.diags: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()
        self.datasets: dict[str, _Dataset] = {}
        self.defs: dict[str, S.Definition] = {}
        self.cyclic: set[str] = set()
        self._open: dict[str, bool] = {}
        self.stages_built = 0  # pipeline stages checked, each use of a definition counted
        self.train_target: FieldRef | None = None  # what the trained model predicts

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
        if train_cfg is not None and evals is not None and \
                (evals.model.name, evals.data.name) != (train_cfg.model, train_cfg.data):
            self.report(
                "BadValue",
                f"eval {evals.model.name} on {evals.data.name}: `rnndsl run` evaluates the model "
                f"it trains, {train_cfg.model} on {train_cfg.data}",
                evals.span,
                f"write `eval {train_cfg.model} on {train_cfg.data} {{ ... }}`, or evaluate "
                "another trained run with `rnndsl eval RUN FILE`",
            )
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
        if not data_files_fit(self.report, rd, bound, args, expr.span):
            return None
        return DataDecl(name, rd.name, bound, fields, st.span)

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
        target = self.train_target = self._target(built)
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
        if "eval_every" in spans and not self._has_dev(data):
            self.report(
                "BadValue",
                f"train: eval_every evaluates on the dev set, but {data} has none",
                spans["eval_every"],
                f'add dev="..." to data {data}, or remove eval_every',
            )
        if "bptt" in spans and target is not None and target.role != "next":
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
        v, spans = self._settings(st.settings, C.OUTPUT_SETTINGS, "output", self)
        if "predictions" in spans and self.train_target is not None \
                and self.train_target.role == "next":
            self.report(
                "BadValue",
                "output: a language model writes no predictions (its dev metric is perplexity)",
                spans["predictions"],
                "remove predictions",
            )
        return OutputConfig(v["dir"], v["predictions"], v["plot"], st.span)
