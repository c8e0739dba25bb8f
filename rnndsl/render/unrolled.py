"""The unrolled graph at the layer and cell levels, read off a ``Trace``.

The result is a networkx DiGraph laid out on a grid the way the lecture draws it: time steps left
to right, one row per layer and direction (inputs at the bottom, the words under them, the loss
on top). Node names are stable, built from the tape's scopes: ``<layer>.t<step>.<fwd|bwd>`` for a
state (the fused step node of scope ``<layer>.t<step>``, one direction of it), ``<node>.p<i>``
for anything else at position i (0-based), ``<node>`` for a vector.

What comes from the tape: the steps and directions of every recurrent layer (``LayerTape``), the
recurrent links (a step node whose parents are the previous step's carry), whether s0 is a
constant or learned, which layers ran at all (a dropout is not on an evaluation tape, so it is not
drawn), the norms of dL/ds_t, the attention weights and the loss. What comes from the IR: how a
layer's output at position i feeds the next layer (position-wise, or pooled).

Node attributes: ``kind`` (word, input, state, gate, proposal, s0, param, concat, position,
vector, pool, output, tag, loss, total, rowlabel), ``label`` (HTML), ``pos`` (position, -1 / n
for the forward / backward s0, None for a vector), ``anchor`` (vectors: first, last or center),
``y`` and ``dx``/``dy`` (inches), ``group`` (what folds into one ellipsis), ``norm`` (||dL/ds||),
``cluster`` (cell level). Edge attributes: ``kind`` (data, word, recurrent, param, chain,
attention, loss) and ``norm`` / ``weight`` where they apply.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx

from ..autodiff.backend import to_host
from ..autodiff.tensor import no_grad
from ..nn.heads import CRFHead
from ..nn.module import SeqValue, VecValue
from ..nn.network import ordered_inputs
from .labels import esc, fmt_norm, small, sub
from .nested import NestedDrawer, nested_drawer
from .tape import DIRECTIONS, LayerTape, RenderError, Trace, head_of, owner_of
from .templates import CellTemplate, template

ROW = 0.95  # inches between rows
GAP = 0.55  # extra room between the rows of two cell-level layers
SUP = {0: "f", 1: "b"}


class UnrolledBuilder:
    """Builds the layer- or cell-level graph of one trace (see the module docstring)."""

    def __init__(
        self,
        trace: Trace,
        level: str = "layer",
        expand: Sequence[int] | None = None,
        steps: int | None = None,
    ):
        if level not in ("layer", "cell"):
            raise ValueError(level)
        self.t = trace
        self.level = level
        self.net = trace.net
        self.graph = trace.net.graph
        self.n = trace.n
        self.G = nx.DiGraph()
        self.y = 0.0  # the height of the current row (inches)
        self.rows = 0
        self.seq_out: dict[str, list[list[str]]] = {}
        self.vec_out: dict[str, list[str]] = {}
        self.state_src: dict[str, str] = {}  # node -> the recurrent layer its sequence comes from
        self.states: dict[str, dict[tuple[int, int], str]] = {}
        self.vec_anchor: str | None = None
        self.rnn_names = [n for n in self.net.order if n in trace.layers]
        self.predicted = self._predicted()
        ids = sorted(self.graph.nodes, key=len, reverse=True)
        self.owners = {owner_of(node.scope, ids) for node in trace.tape}
        self.expand = expand
        self.steps = steps  # the fold that will follow (the size rule counts what stays)
        self.nested: NestedDrawer | None = None  # draws sequences inside sequences

    # --- small helpers --------------------------------------------------------------------------
    def add(
        self,
        name: str,
        kind: str,
        label: str,
        *,
        pos: Any = None,
        group: str | None = None,
        **attrs: Any,
    ) -> str:
        assert name not in self.G, f"duplicate picture node {name}"
        self.G.add_node(
            name, kind=kind, label=label, pos=pos, y=attrs.pop("y", self.y), group=group, **attrs
        )
        return name

    def edge(self, a: str, b: str, kind: str = "data", **attrs: Any) -> None:
        if not self.G.has_edge(a, b):
            self.G.add_edge(a, b, kind=kind, **attrs)

    def row_label(self, label: str) -> str:
        """The text at the left of the current row."""
        self.rows += 1
        return self.add(f"row.{self.rows - 1}", "rowlabel", label, pos="label")

    def next_row(self, height: float = ROW) -> None:
        self.y += height

    def vector(
        self, name: str, kind: str, label: str, anchor: str | None = None, **attrs: Any
    ) -> str:
        """A node of the vector column (after a pooling), stacked upwards."""
        if self.vec_anchor is None:
            self.vec_anchor = anchor or "center"
        node = self.add(name, kind, label, pos=None, anchor=self.vec_anchor, **attrs)
        self.next_row()
        return node

    # --- the whole picture ----------------------------------------------------------------------
    def build(self) -> nx.DiGraph:
        self._check_tape_against_ir()
        self.nested = nested_drawer(self, self.expand)
        if self.nested is not None and self.nested.draws_words:
            self.nested.words()
        else:
            self._words()
        for n in self.net.order if self.nested is None else self.nested.order():
            if self.nested is not None and self.nested.claims(n):
                self.nested.draw(n)
                continue
            kind = self.graph.nodes[n]["kind"]
            preds = ordered_inputs(self.graph, n)
            draw, identity_ok = DRAW[kind]
            if identity_ok and n not in self.owners and len(preds) == 1:
                self._pass_through(n, preds[0])  # ran as the identity (dropout at evaluation)
            else:
                draw(self, n, preds)
        self._loss()
        G = self.G
        G.graph.update(
            n=self.n,
            level=self.level,
            words=list(self.t.source.words),
            loss=self.t.loss_info.text,
            grad=self.t.grad,
            layout="grid",
        )
        if self.nested is not None:
            G.graph.setdefault("notes", []).extend(self.nested.nest.notes)
        return G

    def _check_tape_against_ir(self) -> None:
        """Every data path on the tape between two layers is a path of the IR (self-check)."""
        ids = sorted(self.graph.nodes, key=len, reverse=True)
        seen: set[tuple[str, str]] = set()
        for node in self.t.tape:
            b = owner_of(node.scope, ids)
            for p in node.parents:
                if p is None or p.node is None:
                    continue
                a = owner_of(p.node.scope, ids)
                if a is None or b is None or a == b or (a, b) in seen:
                    continue
                seen.add((a, b))
                assert nx.has_path(self.graph, a, b), f"tape edge {a} -> {b} is not in the IR"

    def _words(self) -> None:
        attention = (
            next(iter(self.t.attention.values()), None) if len(self.t.attention) == 1 else None
        )
        for p, w in enumerate(self.t.source.words):
            label = esc(w)
            extra = {}
            if attention is not None and len(attention) == self.n:
                label += small(f"α {attention[p]:.2f}", 9)
                extra["weight"] = attention[p]
            self.add(f"words.p{p}", "word", label, pos=p, group="words", **extra)
        self.row_label("words")
        self.next_row(0.7)

    def _input(self, n: str) -> None:
        words = [[f"words.p{p}"] for p in range(self.n)]
        if self.t.source.leaf is None:
            self.seq_out[n] = words  # token ids: the embedding draws x_i
            return
        self._x_row(
            n,
            words,
            "x: input vectors"
            + (small(esc(self.t.source.input_note), 9) if self.t.source.input_note else ""),
        )

    def _embed(self, n: str, pred: str) -> None:
        d = self.graph.nodes[n].get("params", {}).get("d", "")
        self._x_row(n, self.seq_out[pred], f"x<SUB>i</SUB> = E[w<SUB>i</SUB>]  (embed, d={d})")

    def _x_row(self, n: str, sources: Sequence[Sequence[str]], label: str) -> None:
        out = []
        for p in range(self.n):
            x = self.add(f"{n}.p{p}", "input", sub("x", p + 1), pos=p, group=n)
            for s in sources[p]:
                self.edge(s, x, "word")
            out.append([x])
        self.seq_out[n] = out
        self.row_label(label)
        self.next_row()

    def _pass_through(self, n: str, pred: str) -> None:
        if pred in self.seq_out:
            self.seq_out[n] = self.seq_out[pred]
        if pred in self.vec_out:
            self.vec_out[n] = self.vec_out[pred]
        if pred in self.state_src:
            self.state_src[n] = self.state_src[pred]

    # --- recurrent layers -----------------------------------------------------------------------
    def _rnn(self, n: str, pred: str) -> None:
        lt = self.t.layers[n]
        if lt.steps != self.n:
            raise RenderError(f"{n} ran {lt.steps} steps over {self.n} words")
        self.states[n] = {}
        for d in range(lt.D):
            self._direction(n, lt, d, self.seq_out[pred])
        self.state_src[n] = n
        if lt.D == 1 or not self._needs_concat_row(n):
            self.seq_out[n] = [[self.states[n][(d, p)] for d in range(lt.D)] for p in range(self.n)]
            return
        out = []
        for p in range(self.n):
            y = self.add(f"{n}.p{p}", "concat", sub("y", p + 1, self._layer_sup(n)), pos=p, group=n)
            self.edge(self.states[n][(0, p)], y)
            self.edge(self.states[n][(1, p)], y)
            out.append([y])
        self.row_label("y<SUB>i</SUB> = [s<SUB>i</SUB><SUP>f</SUP>; s<SUB>i</SUB><SUP>b</SUP>]")
        self.next_row()
        self.seq_out[n] = out

    def _layer_sup(self, n: str) -> str:
        """The layer number j of s^j_i, when there are several recurrent layers."""
        return str(self.rnn_names.index(n) + 1) if len(self.rnn_names) > 1 else ""

    def _direction(self, n: str, lt: LayerTape, d: int, sources: Sequence[Sequence[str]]) -> None:
        """One row: theta, s0 and a state per step, linked as the tape links the steps."""
        cell = lt.module.cell
        tpl = template(cell) if self.level == "cell" else None
        middle = self.y + (tpl.height / 2 if tpl else 0.0)
        dirname = DIRECTIONS[d]
        group = f"{n}.{dirname}"
        sup = ",".join(x for x in (self._layer_sup(n), SUP[d] if lt.D == 2 else "") if x)
        theta_label = (
            f"θ{'<SUP>' + sup + '</SUP>' if sup else ''}: R, O of "
            f"{esc(cell.kind)}{self._layer_sup(n)} {'→' if d == 0 else '←'}"
        ) + small(f"shared by all {lt.steps} steps", 9)
        if tpl is not None:
            theta_label += small(tpl.equations)
        theta = self.add(f"{group}.theta", "param", theta_label, pos="label", y=middle)
        s0_label = sub("s", 0, sup) + (small("learned") if lt.s0 == "learned" else " = 0")
        s0 = self.add(
            f"{group}.s0", "s0", s0_label, pos=-1 if d == 0 else self.n, group=group, y=middle
        )
        prev: dict[str, str] | str = s0
        prev_norms: list[float | None] = [None] * len(cell.carries)
        for k in range(lt.steps):
            p = lt.position(d, k)
            name = f"{n}.t{k}.{dirname}"
            norms = self._norms(n, d, p, len(cell.carries))
            node = lt.nodes[k]
            tooltip = f"{name}: direction {d} of the {node.op} node of scope {node.scope}"
            if tpl is None:
                total = self._total(norms)
                label = sub("s", p + 1, sup)
                if total is not None:
                    label += small(fmt_norm(total))
                out = self.add(
                    name, "state", label, pos=p, group=group, norm=total, tooltip=tooltip
                )
                ins = {"": out}  # one node takes the input and the carry
                inputs, recurrent = ("",), ((0, ""),)
            else:
                ins, out = self._cell_step(name, tpl, p, sup, group, norms, tooltip)
                inputs, recurrent = tpl.inputs, tpl.recurrent
            for s in sources[p]:
                for key in inputs:
                    self.edge(s, ins[key])
            if k == 0 or lt.linked[k]:
                for c, key in recurrent:
                    src = prev if isinstance(prev, str) else prev[self._carry_key(tpl, c)]
                    norm = self._total(prev_norms) if tpl is None else prev_norms[c]
                    self.edge(src, ins[key], "recurrent", norm=norm)
            self.edge(theta, out, "param")
            self.states[n][(d, p)] = out
            prev, prev_norms = ins, norms
        self.next_row(tpl.height + ROW + GAP if tpl else ROW)

    @staticmethod
    def _carry_key(tpl: CellTemplate | None, c: int) -> str:
        return "" if tpl is None else tpl.carry_part(c)

    def _cell_step(
        self,
        name: str,
        tpl: CellTemplate,
        p: int,
        sup: str,
        group: str,
        norms: list[float | None],
        tooltip: str,
    ) -> tuple[dict[str, str], str]:
        nodes = {}
        for part in tpl.parts:
            label = part.label.format(i=p + 1)
            if part.kind == "state" and sup:
                label += f"<SUP>{sup}</SUP>"
            norm = norms[part.carry] if part.carry is not None else None
            if norm is not None:
                label += small(fmt_norm(norm))
            nodes[part.key] = self.add(
                f"{name}.{part.key}",
                part.kind,
                label,
                pos=p,
                group=group,
                dx=part.dx,
                dy=part.dy,
                norm=norm,
                cluster=name,
                tooltip=tooltip,
            )
        for a, b in tpl.edges:
            self.edge(nodes[a], nodes[b], "cell")
        self.G.graph.setdefault("clusters", {})[name] = f"t={p + 1}"
        return nodes, nodes[tpl.output]

    def _norms(self, n: str, d: int, p: int, parts: int) -> list[float | None]:
        if not self.t.grad:
            return [None] * parts
        return [self.t.norm(n, d, p, part) for part in range(parts)]

    @staticmethod
    def _total(norms: Sequence[float | None]) -> float | None:
        if any(x is None for x in norms):
            return None
        return float(sum(x * x for x in norms) ** 0.5)

    def _needs_concat_row(self, n: str) -> bool:
        """A bi layer gets a row of y_i = [s_i^f; s_i^b] unless only `last` pools read it."""
        stack, consumers = [n], []
        while stack:
            for s in self.graph.successors(stack.pop()):
                if s not in self.owners and self.graph.nodes[s]["kind"] == "dropout":
                    stack.append(s)
                else:
                    consumers.append(s)
        return not consumers or any(
            self.graph.nodes[s]["kind"] != "pool"
            or self.graph.nodes[s].get("params", {}).get("mode") != "last"
            for s in consumers
        )

    # --- everything else ------------------------------------------------------------------------
    def _positionwise(self, n: str, preds: list[str]) -> None:
        kind = self.graph.nodes[n]["kind"]
        value = self.t.values[n]
        short = {"concat": "[·;·]", "linear": "Wy+b", "mlp": "MLP", "softmax": "ŷ"}.get(kind, kind)
        if isinstance(value, VecValue):
            label = "ŷ" + self._prediction() if kind == "softmax" else esc(short)
            node = self.vector(n, "output" if kind == "softmax" else "vector", label)
            for p in preds:
                for s in self.vec_out.get(p, []):
                    self.edge(s, node)
            self.vec_out[n] = [node]
            return
        if not isinstance(value, SeqValue):
            raise RenderError(f"{n}: the unrolled picture cannot draw a {type(value).__name__}")
        out = []
        preds_out = [self.seq_out[p] for p in preds]
        for p in range(self.n):
            label = sub("ŷ", p + 1) if kind == "softmax" else sub(esc(short), p + 1)
            if kind == "softmax":
                label += self._prediction(p)
            node = self.add(
                f"{n}.p{p}", "output" if kind == "softmax" else "position", label, pos=p, group=n
            )
            for po in preds_out:
                for s in po[p]:
                    self.edge(s, node)
            out.append([node])
        self.seq_out[n] = out
        layer = self.graph.nodes[n].get("layer", kind)
        note = (
            "joined at every position" if kind == "concat" else "the same weights at every position"
        )
        self.row_label(esc(layer) + small(note, 9))
        self.next_row()

    def _pool(self, n: str, pred: str) -> None:
        mode = self.graph.nodes[n].get("params", {}).get("mode", "pool")
        anchor = {"last": "last", "first": "first"}.get(mode, "center")
        label = f"{esc(mode)}" + (" pooling" if mode not in ("last", "first") else "")
        if mode == "last":
            label = sub("y", "n")
        node = self.vector(n, "pool", label, anchor)
        src = self.state_src.get(pred)
        weights = self.t.attention.get(n)
        if mode == "last" and src is not None and self.t.layers[src].D == 2:
            self.edge(self.states[src][(0, self.n - 1)], node)
            self.edge(self.states[src][(1, 0)], node)
        elif mode == "last":
            for s in self.seq_out[pred][self.n - 1]:
                self.edge(s, node)
        elif mode == "first":
            for s in self.seq_out[pred][0]:
                self.edge(s, node)
        else:
            for p in range(self.n):
                for s in self.seq_out[pred][p]:
                    if weights is not None:
                        self.edge(
                            s, node, "attention", weight=weights[p], label=f"{weights[p]:.2f}"
                        )
                    else:
                        self.edge(s, node)
        self.vec_out[n] = [node]

    def _crf(self, n: str, pred: str) -> None:
        prev = None
        gold = self._gold_tags()
        pred_tags = self._predicted_tags()
        out = []
        for p in range(self.n):
            label = sub("t", p + 1)
            if gold is not None:
                label += f"<BR/>{esc(gold[p])}"
            if pred_tags is not None:
                label += small(f"viterbi: {esc(pred_tags[p])}")
            node = self.add(f"{n}.p{p}", "tag", label, pos=p, group=n)
            for s in self.seq_out[pred][p]:
                self.edge(s, node)
            if prev is not None:
                self.edge(prev, node, "chain")
            prev = node
            out.append([node])
        self.seq_out[n] = out
        self.row_label(
            "CRF: emissions + transitions" + small("A[t<SUB>i−1</SUB>, t<SUB>i</SUB>] shared", 9)
        )
        self.next_row()

    def _loss(self) -> None:
        info = self.t.loss_info
        out = self.net.output
        value = f" = {info.value:.4g}"  # on the same line: a subscript would run into the next
        if info.head == "crf":
            node = self.add(f"{out}.loss", "total", info.text + value, pos=None, anchor="last")
            self.edge(self.seq_out[out][self.n - 1][0], node, "loss")
            self.next_row()
            return
        if info.per_position:
            gold = self._gold_tags()
            locs = []
            for p in range(self.n):
                label = sub("L", p + 1)
                if info.kind == "gold" and gold is not None:
                    label += small(f"t={esc(gold[p])}")
                node = self.add(f"{out}.loss.p{p}", "loss", label, pos=p, group=f"{out}.loss")
                for s in self.seq_out[out][p]:
                    self.edge(s, node, "loss")
                locs.append(node)
            self.row_label("local losses" if info.kind == "gold" else "local surrogate terms")
            self.next_row()
            total = self.add(f"{out}.loss", "total", info.text + value, pos=None, anchor="center")
            for node in locs:
                self.edge(node, total, "loss")
            self.next_row()
            return
        node = self.vector(f"{out}.loss", "total", info.text + value)
        for s in self.vec_out.get(out, []):
            self.edge(s, node, "loss")

    # --- labels from the data -------------------------------------------------------------------
    def _gold_tags(self) -> Sequence[str] | None:
        gold = self.t.source.gold
        if isinstance(gold, (tuple, list)) and len(gold) == self.n:
            return [str(g) for g in gold]
        return None

    def _predicted(self) -> Any:
        """The head's prediction on this sentence (class / tag names when the data has them)."""
        head = head_of(self.net)
        if head is None:
            return None
        value = self.t.values[self.net.output]
        names = self.t.source.label_names
        with no_grad():
            scores = head.scores(value)
            if isinstance(head, CRFHead):
                xp = self.net.backend.xp
                pred = head.decode(scores, xp.ones((self.n, 1), dtype=bool))[0]
            else:
                pred = [int(v) for v in to_host(head.predict(scores)).reshape(-1)]
        if names is not None:
            pred = [names[i] if 0 <= i < len(names) else str(i) for i in pred]
        return [str(x) for x in pred]

    def _predicted_tags(self) -> list[str] | None:
        pred = self.predicted
        return pred if pred is not None and len(pred) == self.n else None

    def _prediction(self, p: int | None = None) -> str:
        pred = self.predicted
        if pred is None:
            return ""
        value = pred[0] if p is None else (pred[p] if p < len(pred) else None)
        return "" if value is None else small(f"→ {esc(value)}")



def _no_split(b: UnrolledBuilder, n: str, preds: list[str]) -> None:
    raise RenderError(
        f"{n} splits sentences into spans; the unrolled picture draws one level of sequence only",
        hint="use --model",
    )


# How each IR kind is drawn: (draw(builder, node, its inputs), whether a node of the kind that
# left nothing on the tape, with one input, is drawn as the identity it ran as). The meta-test
# (tests/test_tables.py) holds this table to lang.ir.NODE_KINDS.
DRAW: dict[str, tuple[Callable[[UnrolledBuilder, str, list[str]], None], bool]] = {
    "input": (lambda b, n, preds: b._input(n), False),
    "split": (_no_split, False),
    "embed": (lambda b, n, preds: b._embed(n, preds[0]), True),
    "rnn": (lambda b, n, preds: b._rnn(n, preds[0]), True),
    "pool": (lambda b, n, preds: b._pool(n, preds[0]), True),
    "crf": (lambda b, n, preds: b._crf(n, preds[0]), False),
    "dropout": (UnrolledBuilder._positionwise, True),
    "concat": (UnrolledBuilder._positionwise, True),
    "linear": (UnrolledBuilder._positionwise, True),
    "mlp": (UnrolledBuilder._positionwise, True),
    "softmax": (UnrolledBuilder._positionwise, False),
}

def build_unrolled(
    trace: Trace,
    level: str = "layer",
    expand: Sequence[int] | None = None,
    steps: int | None = None,
) -> nx.DiGraph:
    """The layer- or cell-level unrolled graph of a trace (not yet folded or laid out);
    ``expand`` lists the words (spans), 1-based, whose inner chains are drawn in full;
    ``steps`` is the fold that will follow."""
    return UnrolledBuilder(trace, level, expand, steps).build()
