"""Two-level unrolled pictures: sequences inside sequences, read off the same tape.

A character encoder (``embed(x.chars) |> bilstm |> last``) runs one small RNN over the
characters of every word; ``spans(encoder)`` runs one over the words of every span. On the tape
the inner RNN is one layer whose batch holds all inner sequences at once (one column per word,
or per span). Here each inner sequence is drawn as its own small chain inside the column of the
word (span) it belongs to: its items as inputs, its steps linked as the tape links them, its
pooled vector feeding the outer level at that position. The inner parameters are shared by all
chains: the theta note says so once.

Columns: in a character model the columns are the words (the outer sequence is the sentence);
in a span model they are the spans (the outer RNN runs over the span vectors) and the words and
their embeddings sit inside their span's column. A column is as wide as its chain.

The size rule: long inner sequences keep their first and last items around an ellipsis
(``INNER_FOLD``); when all chains together would still need more than ``INNER_BUDGET`` nodes,
each word's (span's) encoder is drawn as one box, with a note naming ``--expand`` (``expand=``):
the listed positions (1-based) are drawn in full and the others stay boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..autodiff.backend import host, to_host
from ..nn.module import NestedValue, TokenValue
from ..nn.network import ordered_inputs
from .labels import esc, fmt_norm, small, sub
from .layout import DX, fold_range
from .tape import DIRECTIONS, RenderError, Trace
from .templates import template

# an inner sequence longer than this keeps this many items (first and last halves)
INNER_FOLD = {"layer": (12, 8), "cell": (6, 4)}
INNER_DX = {"layer": 0.7, "cell": 2.2}  # inches between the items of a chain
# all inner chains together drawn with more nodes than this collapse to one box per position
INNER_BUDGET = {"layer": 260, "cell": 240}
SUP = {0: "f", 1: "b"}


@dataclass
class Nest:
    """How inner sequences sit in the outer one (one entry per outer position p)."""

    mode: str  # 'chars' | 'spans'
    items: list[list[str]]  # the labels of p's inner items (characters, or words)
    seq: list[int]  # p's column in the inner layers' batch
    slots: list[list[int | None]]  # the items drawn (None: an ellipsis)
    claimed: set[str]  # IR nodes drawn here
    expanded: set[int] = field(default_factory=set)
    first_word: list[int] = field(default_factory=list)  # spans: index of p's first word
    notes: list[str] = field(default_factory=list)
    spacing: float = INNER_DX["layer"]  # inches between two items of a chain

    @property
    def m(self) -> int:
        return len(self.items)

    def dx(self, p: int, slot: int) -> float:
        """The offset of slot ``slot`` of p's chain from the centre of p's column (inches)."""
        return (slot - (len(self.slots[p]) - 1) / 2) * self.spacing


def plan(b: Any, expand: Sequence[int] | None = None) -> Nest | None:
    """The nesting of the builder's trace, or None for a one-level network."""
    tr: Trace = b.t
    graph = b.graph
    values = tr.values
    nested = [
        n
        for n in b.net.order
        if isinstance(values.get(n), NestedValue)
        or (isinstance(values.get(n), TokenValue) and values[n].outer is not None)
    ]
    if not nested:
        return None
    splits = [n for n in nested if graph.nodes[n]["kind"] == "split"]
    claimed = set(nested)
    for n in b.net.order:  # the poolings that end a nesting
        preds = ordered_inputs(graph, n)
        if n not in claimed and any(p in nested for p in preds):
            if graph.nodes[n]["kind"] != "pool":
                raise RenderError(
                    f"{n} reads nested sequences without pooling them; the unrolled picture "
                    "draws an inner sequence up to its pooling",
                    hint="draw the model graph instead (--model)",
                )
            claimed.add(n)
    if splits:
        if len(splits) > 1:
            raise RenderError("the unrolled picture draws one level of spans", hint="use --model")
        for a in nx.ancestors(graph, splits[0]):
            if graph.nodes[a]["kind"] == "rnn":
                raise RenderError(
                    f"{a} runs over the words before {splits[0]} cuts them into spans; the "
                    "two-level picture draws the words inside their spans only",
                    hint="draw the model graph instead (--model)",
                )
            claimed.add(a)
        nest = _spans_nest(tr, values[splits[0]], claimed)
    else:
        src = next(values[n] for n in nested if isinstance(values[n], TokenValue))
        nest = _chars_nest(tr, src, claimed)
    _size_rule(b, nest, expand)
    return nest


def _seq_of(outer_index: Any, m: int) -> list[int]:
    idx = [int(i) for i in to_host(outer_index).reshape(-1)]
    seq = [-1] * m
    for i, row in enumerate(idx):
        if 0 <= row < m:
            seq[row] = i
    assert all(s >= 0 for s in seq), idx
    return seq


def _chars_nest(tr: Trace, tok: TokenValue, claimed: set[str]) -> Nest:
    words = tr.source.words
    seq = _seq_of(tok.outer_index, len(words))
    lengths = [int(x) for x in tok.info.lengths]
    items = []
    for p, w in enumerate(words):
        chars = list(w) if w else ["<unk>"]
        if len(chars) != lengths[seq[p]]:
            raise RenderError(f"word {p + 1} {w!r} was read as {lengths[seq[p]]} characters")
        items.append(chars)
    return Nest("chars", items, seq, [], claimed)


def _spans_nest(tr: Trace, v: NestedValue, claimed: set[str]) -> Nest:
    words = tr.source.words
    index, _lens, _outer, outer_info = tr.source.inputs["__spans__"]
    index = host.asarray(to_host(index))
    lengths = [int(x) for x in v.inner.info.lengths]
    S = int(outer_info.T)
    seq = _seq_of(v.outer_index, S)
    items, first = [], []
    for p in range(S):
        rows = [int(index[j, seq[p]]) for j in range(lengths[seq[p]])]
        items.append([words[r] for r in rows])
        first.append(rows[0])
    return Nest("spans", items, seq, [], claimed, first_word=first)


def _size_rule(b: Any, nest: Nest, expand: Sequence[int] | None) -> None:
    level = b.level
    above, keep = INNER_FOLD[level]
    nest.spacing = INNER_DX[level] + (0.25 if b.t.grad and level == "layer" else 0.0)
    for its in nest.items:
        L = len(its)
        if L > above:
            head, tail = (keep + 1) // 2, keep // 2
            nest.slots.append(list(range(head)) + [None] + list(range(L - tail, L)))
        else:
            nest.slots.append(list(range(L)))
    per_item = 0
    for n in nest.claimed:
        kind = b.graph.nodes[n]["kind"]
        if kind == "rnn" and n in b.t.layers:
            lt = b.t.layers[n]
            parts = len(template(lt.module.cell).parts) if level == "cell" else 1
            per_item += lt.D * parts
        elif kind in ("input", "embed"):
            per_item += 1
    hidden = fold_range(nest.m, getattr(b, "steps", None), level) or (0, 0)
    total = per_item * sum(
        len(s) for p, s in enumerate(nest.slots) if not hidden[0] <= p < hidden[1]
    )
    what = "word" if nest.mode == "chars" else "span"
    if expand:
        bad = [k for k in expand if not 1 <= k <= nest.m]
        if bad:
            raise RenderError(
                f"--expand {bad[0]}: there is no {what} {bad[0]} (the picture has {nest.m})",
                hint=f"give a {what} index between 1 and {nest.m}",
            )
        nest.expanded = {k - 1 for k in expand}
    elif total <= INNER_BUDGET[level]:
        nest.expanded = set(range(nest.m))
    else:
        nest.expanded = set()
        nest.notes.append(
            f"the inner chains of {nest.m} {what}s would take {total} nodes at the {level} "
            f"level (more than {INNER_BUDGET[level]}): each {what}'s encoder is drawn as one "
            f"box; --expand K (expand=[K] in Python, K from 1 to {nest.m}) draws {what} K's chain"
        )
    folded = [p for p in sorted(nest.expanded) if None in nest.slots[p]]
    if folded:
        nest.notes.append(
            f"inner chains longer than {above} items keep their first and last "
            f"{keep // 2}: {what}(s) {', '.join(str(p + 1) for p in folded)}"
        )


class NestedDrawer:
    """Draws the claimed IR nodes of a two-level network into an ``UnrolledBuilder``."""

    def __init__(self, b: Any, nest: Nest):
        self.b = b
        self.nest = nest
        self.t: Trace = b.t
        # IR node -> outer position -> slot -> picture nodes (the inner level's outputs)
        self.out: dict[str, dict[int, dict[int | None, list[str]]]] = {}
        self.inner_states: dict[str, dict[tuple[int, int, int], str]] = {}
        widths = {
            p: max(DX[b.level], len(nest.slots[p]) * nest.spacing + 0.3)
            for p in range(nest.m)
            if p in nest.expanded or nest.mode == "spans"
        }
        b.G.graph["widths"] = widths

    def order(self) -> list[str]:
        """The network's order with a character encoder's nodes first, so that each chain sits
        right above its word (they read only the characters)."""
        order = self.b.net.order
        if self.nest.mode != "chars":
            return list(order)
        return [n for n in order if n in self.nest.claimed] + [
            n for n in order if n not in self.nest.claimed
        ]

    @property
    def draws_words(self) -> bool:
        return self.nest.mode == "spans"

    def claims(self, n: str) -> bool:
        return n in self.nest.claimed

    def expanded(self, p: int) -> bool:
        return p in self.nest.expanded

    # --- rows of inner items ----------------------------------------------------------------
    def words(self) -> None:
        """Spans: the words inside their span's column."""
        b, nest = self.b, self.nest
        row: dict[int, dict[int | None, list[str]]] = {}
        for p in range(nest.m):
            row[p] = {}
            for k, j in enumerate(nest.slots[p]):
                if j is None:
                    node = b.add(
                        f"words.s{p}.fold",
                        "fold",
                        f"⋯ {len(nest.items[p]) - len(nest.slots[p]) + 1} words ⋯",
                        pos=p,
                        group="words",
                        dx=nest.dx(p, k),
                    )
                else:
                    w = nest.first_word[p] + j
                    node = b.add(
                        f"words.p{w}",
                        "word",
                        esc(nest.items[p][j]),
                        pos=p,
                        group="words",
                        dx=nest.dx(p, k),
                    )
                row[p][j] = [node]
        self.out["words"] = row
        b.row_label("words")
        b.next_row(0.7)

    def draw(self, n: str) -> None:
        kind = self.b.graph.nodes[n]["kind"]
        preds = ordered_inputs(self.b.graph, n)
        if kind == "input":
            self._input(n)
        elif kind == "embed":
            self._embed(n, preds[0])
        elif kind == "rnn":
            self._rnn(n, preds[0])
        elif kind == "pool":
            self._pool(n, preds[0])
        elif len(preds) == 1 and (kind in ("split", "dropout") or n not in self.b.owners):
            self.out[n] = self.out[preds[0]]  # the same items (dropout is off at evaluation)
        else:
            raise RenderError(
                f"{n} ({kind}) inside a nested sequence is not drawn by the unrolled picture",
                hint="draw the model graph instead (--model)",
            )

    def _items_row(
        self, n: str, kind: str, label_of: Any, sources: dict | None, row_label: str
    ) -> None:
        b, nest = self.b, self.nest
        row: dict[int, dict[int | None, list[str]]] = {}
        for p in range(nest.m):
            if not (self.expanded(p) or nest.mode == "spans"):
                continue
            row[p] = {}
            for k, j in enumerate(nest.slots[p]):
                if j is None:
                    skipped = len(nest.items[p]) - len(nest.slots[p]) + 1
                    node = b.add(
                        f"{n}.p{p}.fold", "fold", f"⋯ {skipped} ⋯", pos=p, group=n, dx=nest.dx(p, k)
                    )
                else:
                    node = b.add(
                        f"{n}.p{p}.i{j}",
                        kind,
                        label_of(p, j),
                        pos=p,
                        group=n,
                        dx=nest.dx(p, k),
                    )
                if sources is not None:
                    for s in sources.get(p, {}).get(j, []):
                        b.edge(s, node, "word")
                row[p][j] = [node]
        self.out[n] = row
        b.row_label(row_label)
        b.next_row()

    def _input(self, n: str) -> None:
        if self.nest.mode == "spans":  # token ids of the words: the embedding draws x_i
            self.out[n] = self.out["words"]
            return
        field = self.b.graph.nodes[n].get("params", {}).get("field", "chars")
        self._items_row(
            n,
            "char",
            lambda p, j: esc(self.nest.items[p][j]),
            None,
            f"the characters of each word ({esc(field)})",
        )

    def _embed(self, n: str, pred: str) -> None:
        d = self.b.graph.nodes[n].get("params", {}).get("d", "")
        if self.nest.mode == "spans":
            self._items_row(
                n,
                "input",
                lambda p, j: sub("x", self.nest.first_word[p] + j + 1),
                self.out[pred],
                f"x<SUB>i</SUB> = E[w<SUB>i</SUB>]  (embed, d={d})",
            )
        else:
            self._items_row(
                n,
                "input",
                lambda p, j: sub("e", j + 1),
                self.out[pred],
                f"e<SUB>j</SUB> = E<SUP>c</SUP>[c<SUB>j</SUB>]  (embed characters, d={d})",
            )

    # --- the inner chains ---------------------------------------------------------------------
    def _rnn(self, n: str, pred: str) -> None:
        b, nest = self.b, self.nest
        lt = self.t.layers[n]
        cell = lt.module.cell
        tpl = template(cell) if b.level == "cell" else None
        self.inner_states[n] = {}
        what = "word" if nest.mode == "chars" else "span"
        inner = "characters" if nest.mode == "chars" else "words"
        sources = self.out[pred]
        for d in range(lt.D):
            middle = b.y + (tpl.height / 2 if tpl else 0.0)
            dirname = DIRECTIONS[d]
            group = f"{n}.{dirname}"
            sup = SUP[d] if lt.D == 2 else ""
            s0 = "learned s<SUB>0</SUB>" if lt.s0 == "learned" else "s<SUB>0</SUB> = 0"
            theta = (
                f"θ{'<SUP>' + sup + '</SUP>' if sup else ''}: {esc(cell.kind)} "
                f"{'→' if d == 0 else '←'} over the {inner}"
                + small(
                    (
                        f"shared by the chains of all {nest.m} {what}s; each"
                        if nest.m > 1
                        else f"the {what}'s chain; it"
                    )
                    + f" starts at {s0}",
                    9,
                )
            )
            if tpl is not None:
                theta += small(tpl.equations)
            b.add(f"{group}.theta", "param", theta, pos="label", y=middle)
            for p in range(nest.m):
                if self.expanded(p):
                    self._chain(n, lt, d, p, tpl, sup, group, sources)
            b.next_row(tpl.height + 0.95 + 0.55 if tpl else 0.95)
        if lt.D == 2 and self._needs_concat(n):
            row: dict[int, dict[int | None, list[str]]] = {}
            for p in sorted(nest.expanded):
                row[p] = {}
                for k, j in enumerate(nest.slots[p]):
                    if j is None:
                        node = b.add(
                            f"{n}.p{p}.fold", "fold", "⋯", pos=p, group=n, dx=nest.dx(p, k)
                        )
                        row[p][None] = [node]
                        continue
                    y = b.add(
                        f"{n}.p{p}.i{j}",
                        "concat",
                        sub("y", j + 1),
                        pos=p,
                        group=n,
                        dx=nest.dx(p, k),
                    )
                    for dd in range(2):
                        b.edge(self.inner_states[n][(dd, p, j)], y)
                    row[p][j] = [y]
            self.out[n] = row
            b.row_label("y<SUB>j</SUB> = [s<SUB>j</SUB><SUP>f</SUP>; s<SUB>j</SUB><SUP>b</SUP>]")
            b.next_row()
        else:
            self.out[n] = {
                p: {
                    j: [self.inner_states[n][(dd, p, j)] for dd in range(lt.D)]
                    if j is not None
                    else [self.inner_states[n][(dd, p, -1)] for dd in range(lt.D)]
                    for j in nest.slots[p]
                }
                for p in sorted(nest.expanded)
            }

    def _chain(
        self, n: str, lt: Any, d: int, p: int, tpl: Any, sup: str, group: str, sources: dict
    ) -> None:
        b, nest = self.b, self.nest
        L = len(nest.items[p])
        i = nest.seq[p]
        slots = nest.slots[p]
        slot_of = {j: k for k, j in enumerate(slots)}
        carries = len(lt.module.cell.carries)
        prev: dict[str, str] | None = None
        prev_norms: list[float | None] = [None] * carries
        fold_node: str | None = None
        fold_norms: list[float] = []
        for k in range(L):
            j = lt.inner_position(d, k, L)
            norms = (
                [self.t.inner_norm(n, d, i, k, part) for part in range(carries)]
                if self.t.grad
                else [None] * carries
            )
            if j not in slot_of:  # inside the ellipsis of a long word
                if fold_node is None:
                    fold_node = b.add(
                        f"{n}.p{p}.{DIRECTIONS[d]}.fold",
                        "fold",
                        "",
                        pos=p,
                        group=group,
                        dx=nest.dx(p, slot_of[None]),
                        dy=(tpl.height / 2 if tpl else 0.0),
                    )
                    if prev is not None:
                        for src in set(prev.values()):
                            b.edge(src, fold_node, "recurrent", norm=self._total(prev_norms))
                    self.inner_states[n][(d, p, -1)] = fold_node
                if self.t.grad:
                    fold_norms.append(self._total(norms))
                prev, prev_norms = {"": fold_node}, norms  # every carry part leaves the ellipsis
                continue
            name = f"{n}.p{p}.t{k}.{DIRECTIONS[d]}"
            tooltip = (
                f"{name}: direction {d}, column {i} of the {lt.nodes[k].op} node of scope "
                f"{lt.nodes[k].scope}"
            )
            if tpl is None:
                total = self._total(norms)
                label = sub("s", j + 1, sup) + (small(fmt_norm(total)) if total is not None else "")
                out = b.add(
                    name,
                    "state",
                    label,
                    pos=p,
                    group=group,
                    dx=nest.dx(p, slot_of[j]),
                    norm=total,
                    tooltip=tooltip,
                )
                ins = {"": out}
                inputs, recurrent = ("",), ((0, ""),)
            else:
                ins, out = b._cell_step(name, tpl, j, sup, group, norms, tooltip)
                for node in set(ins.values()):
                    b.G.nodes[node]["pos"] = p
                    b.G.nodes[node]["dx"] = b.G.nodes[node].get("dx", 0.0) + nest.dx(p, slot_of[j])
                inputs, recurrent = tpl.inputs, tpl.recurrent
            for s in sources.get(p, {}).get(j, []):
                for key in inputs:
                    b.edge(s, ins[key])
            if prev is not None and lt.linked[k]:
                for c, key in recurrent:
                    src = prev.get(tpl.carry_part(c) if tpl else "", prev.get(""))
                    norm = self._total(prev_norms) if tpl is None else prev_norms[c]
                    b.edge(src, ins[key], "recurrent", norm=norm)
            self.inner_states[n][(d, p, j)] = out
            prev, prev_norms = ins, norms
        if fold_node is not None:
            skipped = L - len(slots) + 1
            label = f"⋯ {skipped} steps ⋯"
            positive = [x for x in fold_norms if x]
            if positive:
                label += small(f"{min(positive):.1e} … {max(positive):.1e}", 7)
                b.G.nodes[fold_node]["norm"] = sum(positive) / len(positive)
            b.G.nodes[fold_node]["label"] = label

    @staticmethod
    def _total(norms: Sequence[float | None]) -> float | None:
        if any(x is None for x in norms):
            return None
        return float(sum(x * x for x in norms) ** 0.5)

    def _needs_concat(self, n: str) -> bool:
        consumers = [s for s in self.b.graph.successors(n) if s in self.nest.claimed]
        return not consumers or any(
            self.b.graph.nodes[s]["kind"] != "pool"
            or self.b.graph.nodes[s].get("params", {}).get("mode") != "last"
            for s in consumers
        )

    # --- pooling: the inner chain's vector at the outer position ------------------------------
    def _pool(self, n: str, pred: str) -> None:
        b, nest = self.b, self.nest
        mode = b.graph.nodes[n].get("params", {}).get("mode", "pool")
        letter = "c" if nest.mode == "chars" else "v"
        what = "word" if nest.mode == "chars" else "span"
        src_layer = self._layer_of(pred)
        out = []
        for p in range(nest.m):
            if not self.expanded(p):
                out.append([self._collapsed(n, p, pred)])
                continue
            node = b.add(f"{n}.p{p}", "pool", sub(letter, p + 1), pos=p, group=n)
            first, last = nest.slots[p][0], nest.slots[p][-1]
            outs = self.out[pred][p]
            if mode == "last" and src_layer is not None and self.t.layers[src_layer].D == 2:
                b.edge(self.inner_states[src_layer][(0, p, last)], node)
                b.edge(self.inner_states[src_layer][(1, p, first)], node)
            elif mode == "last":
                for s in outs[last]:
                    b.edge(s, node)
            elif mode == "first":
                for s in outs[first]:
                    b.edge(s, node)
            else:
                for j in nest.slots[p]:
                    for s in outs[j]:
                        b.edge(s, node)
            out.append([node])
        b.seq_out[n] = out
        how = {"last": "the final states", "first": "the first state"}.get(mode, f"{mode} pooling")
        b.row_label(
            sub(letter, "i") + small(f"{esc(how)} of {what} i's chain, fed to position i", 9)
        )
        b.next_row()
        if nest.mode == "spans":
            b.G.graph["spans"] = [" ".join(its) for its in nest.items]

    def _collapsed(self, n: str, p: int, pred: str) -> str:
        b, nest = self.b, self.nest
        letter = "c" if nest.mode == "chars" else "v"
        text = "".join(nest.items[p]) if nest.mode == "chars" else " ".join(nest.items[p])
        if len(text) > 18:
            text = text[:17] + "…"
        unit = "characters" if nest.mode == "chars" else "words"
        label = f"{sub(letter, p + 1)} = enc(‘{esc(text)}’)" + small(
            f"{len(nest.items[p])} {unit} · --expand {p + 1}", 8
        )
        norm = self._chain_norm(p)
        if norm is not None:
            label += small(f"max ‖∂L/∂s‖ {fmt_norm(norm)}", 8)
        node = b.add(f"{n}.p{p}", "collapsed", label, pos=p, group=n, norm=norm)
        if nest.mode == "chars":
            b.edge(f"words.p{p}", node, "word")
        else:
            for j in nest.slots[p]:
                for s in self._last_inner_row(pred, p).get(j, []):
                    b.edge(s, node)
        return node

    def _chain_norm(self, p: int) -> float | None:
        """The largest ||dL/ds|| in p's inner chains (a collapsed box shows it)."""
        if not self.t.grad:
            return None
        L, i = len(self.nest.items[p]), self.nest.seq[p]
        norms = [
            self.t.inner_norm(n, d, i, k)
            for n in self.nest.claimed
            if n in self.t.inner_norms
            for d in range(self.t.layers[n].D)
            for k in range(L)
        ]
        return max(norms) if norms else None

    def _last_inner_row(self, n: str, p: int) -> dict:
        """The nearest row below ``n`` drawn at position ``p`` (a collapsed span's words)."""
        while p not in self.out.get(n, {}):
            preds = ordered_inputs(self.b.graph, n)
            if not preds:
                return {}
            n = preds[0]
        return self.out[n][p]

    def _layer_of(self, n: str) -> str | None:
        """The nested recurrent layer whose states ``n`` passes on (through dropouts)."""
        while n in self.nest.claimed:
            if n in self.inner_states:
                return n
            kind = self.b.graph.nodes[n]["kind"]
            preds = ordered_inputs(self.b.graph, n)
            if kind not in ("dropout", "split") or len(preds) != 1:
                return None
            n = preds[0]
        return None


def nested_drawer(b: Any, expand: Sequence[int] | None = None) -> NestedDrawer | None:
    """The drawer of a two-level network's inner chains (None for one level); in a span
    model the builder's positions become the spans."""
    nest = plan(b, expand)
    if nest is None:
        return None
    if nest.mode == "spans":
        b.n = nest.m
    return NestedDrawer(b, nest)


def is_nested(value: Any) -> bool:
    return isinstance(value, NestedValue) or (
        isinstance(value, TokenValue) and value.outer is not None
    )


__all__ = [
    "INNER_BUDGET",
    "INNER_FOLD",
    "Nest",
    "NestedDrawer",
    "is_nested",
    "nested_drawer",
    "plan",
]
