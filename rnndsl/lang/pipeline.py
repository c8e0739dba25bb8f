"""Pipelines -> types and IR nodes: the checker of one pipeline (a model or a definition)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .. import limits
from ..errors import Span, did_you_mean
from . import catalogue as C
from . import syntax as S
from . import types as T
from .flow import _STRUCTURAL, _UNKNOWN, _arg_span, _Head, _Out, _Rnn, _stage_name
from .ir import GraphBuilder
from .probes import vector_dim
from .structure import Structure
from .values import INVALID, FieldRef, Guarded, InvalidArgument, bind, valid

# ---------------------------------------------------------------------------------------------
# Pipelines -> types and IR nodes


class ExpansionLimit(Exception):
    """The models of a spec expand to more stages than ``limits.MAX_EXPANDED_STAGES``."""

    def __init__(self, span: Span):
        super().__init__(span)
        self.span = span


class _Builder(Structure):
    """Checks pipelines and adds their nodes to one graph (one model, or one definition alone).

    Also the value context for arguments: fields must come from ``data`` when it is set."""

    def __init__(self, checker: Any, name: str, data: str | None):  # a statements.Checker
        self.c = checker
        self.g = GraphBuilder(name, data)
        self.data = data
        self.base_dir = checker.base_dir
        self.check_paths = checker.check_paths
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
        self.c.stages_built += 1  # open definitions expand per use: a |> a doubles each level
        if self.c.stages_built > limits.MAX_EXPANDED_STAGES:
            raise ExpansionLimit(st.span)
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
                return self._no_input(f"'{name}'", ref.span,
                                      f"start from data: embed(dataset.words, d=100) |> {name}")
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
            hint = "start the pipeline from data, e.g. embed(ewt.words, d=100) |> ..."
            return self._no_input(ld.name, st.span, hint)
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
                dim = vector_dim(pre, fmt) if fmt is not INVALID else None
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
