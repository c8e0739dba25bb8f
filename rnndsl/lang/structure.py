"""The structural stages of a pipeline: stack, bi, skip, concat, spans (their checks, types and
IR nodes). A part of the pipeline checker (lang/pipeline.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..errors import Span, did_you_mean
from . import catalogue as C
from . import syntax as S
from . import types as T
from .flow import _UNKNOWN, _Out
from .values import INVALID, Guarded, bind, valid


class Structure:
    """stack(k), bi(...), skip(...), concat(...), spans(...) for ``_Builder``."""

    def _no_input(self, what: str, span: Span, hint: str | None = None) -> _Out:
        """A stage with nothing before it: the NoInput diagnostic and an unknown value."""
        self.report("NoInput", f"{what} needs an input, but nothing comes before it", span, hint)
        return _UNKNOWN

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
            elif name in {f"bi{c}" for c in C.UNI_CELLS}:
                msg = f"bi takes a one-directional layer, but {name} is already bidirectional"
                hint = f"write {name}(...) alone, or bi({name[2:]}(...))"
            elif name in C.LAYERS:
                msg = f"bi takes a one-directional recurrent layer like lstm, got {name}"
                hint = "for example: bi(lstm(d=64))"
            elif name is not None and len(ref.parts) == 1:
                self.report(
                    "UnknownLayer",
                    f"unknown layer '{name}'",
                    ref.span,
                    did_you_mean(name, C.UNI_CELLS) or "bi takes a recurrent cell like lstm",
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
            return self._no_input("bi", st.span)
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
            return self._no_input("skip", st.span)
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
            return self._no_input("spans", st.span)
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
