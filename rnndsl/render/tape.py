"""One real forward (and backward) pass over one sentence, kept for drawing.

Every unrolled picture starts here: the network runs on a batch of one sentence with the tape
recording, a loss is put on top (the gold one when labels are known, else a stated surrogate), and
with ``grad`` the loss is back-propagated with ``retain_graph=True`` so that the tape is still
there to be drawn. What the pictures show (steps, recurrent links, initial states, norms of
dL/ds_t, attention weights, the loss ops) is read from this tape, not re-derived.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.grad import topological_nodes
from ..autodiff.tensor import Node, Tensor, scope
from ..errors import RenderError, RnnError
from ..lang.ir import needs_of
from ..nn.batch import on_backend
from ..nn.heads import CRFHead, SoftmaxHead
from ..nn.layers import Recurrent
from ..nn.module import NestedValue, RunContext, SeqInfo, SeqValue
from ..nn.network import Network
from .labels import esc

STEP_OPS = frozenset({"lstm_step", "gru_step", "gru_lecture_step", "srnn_step"})
DIRECTIONS = ("fwd", "bwd")


@dataclass
class Source:
    """One sentence ready for ``Network.run``: its words, the network inputs, gold targets.

    ``targets``/``valid`` are shaped for the head (time-major (T, 1) per position, (1,) per
    sentence) or None; ``gold`` is the same in words (tags, a label, next tokens) for display.
    """

    words: tuple[str, ...]
    inputs: dict[str, Any]
    info: SeqInfo
    targets: Any = None
    valid: Any = None
    gold: Any = None
    gold_note: str = ""
    input_note: str = ""
    leaf: Tensor | None = None  # the input vectors, when the network reads vectors
    label_names: list[str] | None = None  # class / tag names of the head, from the data
    notes: list[str] = field(default_factory=list)  # said to the user: words outside the vocabulary


@dataclass
class LayerTape:
    """The steps of one recurrent layer on the tape.

    ``nodes[k]`` is the tape node that made the carry of step k (the fused step op, or the last
    primitive op of a reference step); ``carries[k]`` the new carry (h, c for an LSTM), each
    (D, 1, d). ``linked[k]`` says the tape feeds step k-1's carry into step k (k >= 1).
    ``s0`` is 'zeros' when the initial carry is a constant, else 'learned'.
    """

    layer: str
    module: Recurrent
    nodes: list[Node]
    carries: list[tuple[Tensor, ...]]
    linked: list[bool]
    s0: str
    nested: bool = False  # runs over inner sequences (characters of words, words of spans)

    @property
    def D(self) -> int:
        return self.module.D

    @property
    def steps(self) -> int:
        return len(self.nodes)

    def position(self, direction: int, step: int) -> int:
        """The input position step ``step`` of ``direction`` reads (0-based)."""
        return step if direction == 0 else self.steps - 1 - step

    @staticmethod
    def inner_position(direction: int, step: int, length: int) -> int:
        """The item an inner sequence of ``length`` items reads at ``step`` (its own reversal)."""
        return step if direction == 0 else length - 1 - step


@dataclass
class LossInfo:
    """What the loss on the picture is: 'gold' or 'surrogate', its formula, its value."""

    kind: str
    text: str
    value: float
    per_position: bool
    head: str | None  # 'softmax', 'crf' or None (a headless pipeline)


@dataclass
class Trace:
    """A network run once on one sentence, with its tape and (optionally) its gradients."""

    net: Network
    source: Source
    reference: bool
    values: dict[str, Any]
    loss: Tensor
    loss_info: LossInfo
    layers: dict[str, LayerTape]
    tape: list[Node]
    grad: bool
    # layer -> host array (D, n, parts): ||dL/d carry part|| by direction and input position
    part_norms: dict[str, Any] = field(default_factory=dict)
    # nested layer -> host array (D, N, T_inner, parts): ||dL/d carry part|| by direction,
    # inner sequence (its column in the layer's batch of N) and step
    inner_norms: dict[str, Any] = field(default_factory=dict)
    attention: dict[str, list[float]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.source.words)

    def norm(self, layer: str, direction: int, position: int, part: int | None = None) -> float:
        """||dL/ds|| of one state (all carry parts together unless ``part`` is given)."""
        a = self.part_norms[layer][direction, position]
        if part is not None:
            return float(a[part])
        return float(math.sqrt(float((a * a).sum())))

    def inner_norm(
        self, layer: str, direction: int, seq: int, step: int, part: int | None = None
    ) -> float:
        """||dL/ds|| of step ``step`` of inner sequence ``seq`` of a nested layer."""
        a = self.inner_norms[layer][direction, seq, step]
        if part is not None:
            return float(a[part])
        return float(math.sqrt(float((a * a).sum())))

    def scope_owner(self, node: Node) -> str | None:
        """The IR node whose scope recorded ``node`` (IR ids contain dots: longest prefix)."""
        return owner_of(node.scope, self._ids_by_length())

    def _ids_by_length(self) -> list[str]:
        return sorted(self.net.graph.nodes, key=len, reverse=True)


def owner_of(scope_name: str, ids_by_length: Sequence[str]) -> str | None:
    for n in ids_by_length:
        if scope_name == n or scope_name.startswith(n + "."):
            return n
    return None


# --- the input sentence ---------------------------------------------------------------------------
def split_words(text: str | Sequence[str]) -> tuple[str, ...]:
    words = tuple(text.split()) if isinstance(text, str) else tuple(str(w) for w in text)
    if not words:
        raise RenderError("the input sentence is empty", hint='give e.g. --input "the brown fox"')
    return words


def word_vector(word: str, dim: int) -> Any:
    """A fixed pseudo-random unit-scale vector for a word (a network that reads vectors)."""
    rng = Bk.host_rng([zlib.crc32(word.encode("utf-8")), dim])
    return rng.uniform(-1.0, 1.0, size=dim)


def _input_nodes(net: Network) -> list[str]:
    return [n for n in net.order if net.graph.nodes[n]["kind"] == "input"]


def embeds_words(net: Network) -> bool:
    return any(net.graph.nodes[n]["kind"] == "embed" for n in net.order)


def source_from_vectors(
    net: Network, x: Any, words: Sequence[str] | None = None, targets: Any = None, note: str = ""
) -> Source:
    """A sentence given as vectors (T, D) or (1, T, D) for a network without an embedding."""
    ins = _input_nodes(net)
    if len(ins) != 1:
        raise RenderError(f"this network has {len(ins)} inputs; draw it from a spec with data")
    xp = net.backend.xp
    arr = Bk.host.asarray(Bk.to_host(x.data if isinstance(x, Tensor) else x), dtype=net.dtype)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise RenderError(f"draw one sentence at a time, got a batch of {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim != 2:
        raise RenderError(f"input vectors must be (time, features), got shape {arr.shape}")
    T, D = arr.shape
    want = getattr(net.graph.nodes[ins[0]].get("out_type"), "dim", None)
    if want and D != want:
        raise RenderError(f"the input has {D} features per word, the network expects {want}")
    words = tuple(words) if words is not None else tuple(f"x{i + 1}" for i in range(T))
    if len(words) != T:
        raise RenderError(f"{len(words)} words for {T} input vectors")
    info = SeqInfo(Bk.host.array([T]), T, xp)
    leaf = Tensor(xp.asarray(arr[:, None, :]), requires_grad=True, name="x")
    src = Source(words, {ins[0]: SeqValue(leaf, info)}, info, leaf=leaf, input_note=note)
    if targets is not None:
        _set_given_targets(net, src, targets)
    return src


def source_from_words(
    net: Network, words: str | Sequence[str], data: Any = None, targets: Any = None
) -> Source:
    """A sentence of words: looked up in the data's vocabulary when the network embeds words,
    else turned into fixed pseudo-random vectors (one per distinct word)."""
    words = split_words(words)
    if not embeds_words(net):
        ins = _input_nodes(net)
        dim = int(getattr(net.graph.nodes[ins[0]].get("out_type"), "dim", 0) or 0)
        x = Bk.host.stack([word_vector(w, dim) for w in words])
        return source_from_vectors(
            net, x, words, targets, note="x_i: a fixed pseudo-random vector per word"
        )
    if data is None:
        raise RenderError(
            "this network embeds words, so drawing it needs the spec's data (its vocabulary)",
            hint="render the spec (rnndsl render SPEC), or pass data=rnndsl.run.prepare(spec).data",
        )
    from ..data.readers import Example

    gold_ex, where = find_example(data, words)
    ex = gold_ex if gold_ex is not None else Example(words=words)
    batch = on_backend(data.make_batch([ex], [0], needs_of(net.graph)), net.backend.xp)
    src = Source(
        words, batch.inputs, batch.inputs[f"{data.name}.words"].info, label_names=data.label_names()
    )
    src.notes = vocabulary_notes(net, data, words)
    if targets is not None:
        _set_given_targets(net, src, targets, data)
    elif gold_ex is not None and batch.targets is not None:
        src.targets, src.valid = batch.targets, batch.valid
        src.gold = gold_ex.tags if gold_ex.tags is not None else gold_ex.label
        src.gold_note = f"gold labels from {where}"
    elif data.kind == "lm":
        _set_next_tokens(net, src, data)
    return src


def vocabulary_notes(net: Network, data: Any, words: Sequence[str]) -> list[str]:
    """One note per input word (or character) the network reads as <unk>."""
    fields = {
        net.graph.nodes[n].get("params", {}).get("field")
        for n in net.order
        if net.graph.nodes[n]["kind"] == "input"
    }
    notes = []
    vocab = data.vocabs.get("words")
    if "words" in fields and vocab is not None and vocab.unk_index is not None:
        for i, w in enumerate(words):
            if w not in vocab:
                notes.append(
                    f"word {i + 1} {w!r} is not in the vocabulary of {data.name}.words: "
                    "it is read as <unk>"
                )
    chars = data.vocabs.get("chars")
    if "chars" in fields and chars is not None:
        for i, w in enumerate(words):
            unknown = sorted({c for c in w if c not in chars})
            if unknown:
                notes.append(
                    f"word {i + 1} {w!r}: character(s) {' '.join(map(repr, unknown))} are not in "
                    f"the character vocabulary of {data.name}.chars: read as <unk>"
                )
    return notes


def find_example(data: Any, words: Sequence[str]) -> tuple[Any, str]:
    """The data's example with exactly these words (dev first, then train), or (None, '').

    A split that was not read (a trained run rebuilt from its vocabulary) is read here.
    """

    def norm(ws: Sequence[str]) -> tuple[str, ...]:
        return tuple(w.lower() for w in ws) if getattr(data, "lowercase", False) else tuple(ws)

    key = norm(words)
    for split in ("dev", "train"):
        examples = getattr(data, split, None)
        if not examples and getattr(data, "args", {}).get(split) is not None:
            try:
                examples = data.read_split(split)
            except RnnError:
                examples = None
        for ex in examples or ():
            if len(ex.words) == len(key) and norm(ex.words) == key:
                where = f"{Path(ex.source).name}:{ex.line}" if ex.source else f"the {split} set"
                return ex, where
    return None, ""


def _set_next_tokens(net: Network, src: Source, data: Any) -> None:
    """A language model's gold is the input itself: predict word i+1 (then the end token)."""
    eos = str(data.args.get("eos", "<eos>"))
    nxt = list(src.words[1:]) + [eos]
    ids = Bk.host.asarray(data.vocabs["words"].encode(nxt), dtype=Bk.host.int64)
    xp = net.backend.xp
    src.targets = xp.asarray(ids[:, None])
    src.valid = xp.asarray(Bk.host.ones((len(nxt), 1), dtype=bool))
    src.gold = tuple(nxt)
    src.gold_note = "gold: the next word at each position"


def _set_given_targets(net: Network, src: Source, targets: Any, data: Any = None) -> None:
    """Targets given by the caller: a label / class index, or one tag / index per word."""
    xp = net.backend.xp
    n = len(src.words)
    per_position = net.graph.nodes[net.output]["kind"] == "crf" or _output_depth(net) == 1
    names = None
    if data is not None:
        names = data.vocabs.get("tags" if per_position else "labels")

    def index(t: Any) -> int:
        if isinstance(t, str):
            if names is None or t not in names:
                known = list(names.tokens) if names is not None else []
                raise RenderError(
                    f"unknown gold label {t!r}",
                    hint=("the labels of this model are: " + " ".join(known))
                    if known
                    else "give class indices: this network has no label names",
                )
            return names.index(t)
        return int(t)

    if per_position:
        seq = list(targets) if not isinstance(targets, str) else targets.split()
        if len(seq) != n:
            raise RenderError(
                f"{len(seq)} gold tags for {n} words ({' '.join(src.words)})",
                hint='give one tag per word, e.g. --labels "' + " ".join(["TAG"] * n) + '"',
            )
        ids = Bk.host.asarray([index(t) for t in seq], dtype=Bk.host.int64)
        src.targets = xp.asarray(ids[:, None])
        src.valid = xp.asarray(Bk.host.ones((n, 1), dtype=bool))
        src.gold = tuple(str(t) for t in seq)
    else:
        if not isinstance(targets, (str, int)) and len(list(targets)) != 1:
            raise RenderError(
                "this model predicts one label per sentence: give one label",
                hint="e.g. --label pos",
            )
        if not isinstance(targets, (str, int)):
            targets = list(targets)[0]
        src.targets = xp.asarray(Bk.host.asarray([index(targets)], dtype=Bk.host.int64))
        src.gold = str(targets)
    src.gold_note = "the gold labels given"


def _output_depth(net: Network) -> int | None:
    t = net.graph.nodes[net.output].get("out_type")
    return getattr(t, "depth", None)


# --- running -------------------------------------------------------------------------------------
def run_trace(
    net: Network, source: Source, *, grad: bool = False, reference: bool = False
) -> Trace:
    """Run ``net`` on ``source`` recording the tape; with ``grad`` also backward (kept).

    ``reference`` runs the cells as primitive ops (the op-level picture). The parameters'
    gradients are left as they were.
    """
    ctx = RunContext(train=False, reference=reference, record_states=True)
    values = net.run(source.inputs, ctx)
    nested = {
        n
        for n, v in values.items()
        if isinstance(v, NestedValue) and net.graph.nodes[n]["kind"] == "rnn"
    }
    with scope(net.output), scope("loss"):
        loss, info = _loss(net, values, source)
    if loss.node is None:
        raise RenderError("the network recorded no operations (it has no parameters?)")
    layers = _layer_tapes(net, ctx, nested)
    trace = Trace(
        net, source, reference, values, loss, info, layers, topological_nodes(loss.node), grad
    )
    trace.attention = {
        k: [float(a) for a in Bk.to_host(w.data if isinstance(w, Tensor) else w).reshape(-1)]
        for k, w in ctx.attention.items()
    }
    if grad:
        params = net.named_parameters()
        saved = {k: p.raw_grad for k, p in params.items()}
        for p in params.values():
            p.zero_grad()
        try:
            loss.backward(retain_graph=True)
            trace.part_norms = _state_norms(
                {k: lt for k, lt in layers.items() if not lt.nested}, trace.n
            )
            trace.inner_norms = _inner_norms({k: lt for k, lt in layers.items() if lt.nested})
        finally:
            for k, p in params.items():
                p.zero_grad()
                if saved[k] is not None:
                    p.accumulate_grad(saved[k])
    return trace


def head_of(net: Network) -> SoftmaxHead | CRFHead | None:
    """The network's output head, or None when the pipeline ends in a plain layer."""
    head = net.head
    return head if isinstance(head, (SoftmaxHead, CRFHead)) else None


def _loss(net: Network, values: Mapping[str, Any], src: Source) -> tuple[Tensor, LossInfo]:
    head = head_of(net)
    out = values[net.output]
    per_position = isinstance(out, SeqValue)
    head_kind = (
        "crf" if isinstance(head, CRFHead) else "softmax" if isinstance(head, SoftmaxHead) else None
    )
    if head is not None and src.targets is not None:
        scores = head.scores(out)
        loss = head.loss(scores, src.targets, src.valid, reduction="sum")
        if head_kind == "crf":
            text = "L = −log p(t<SUB>1:n</SUB> | x<SUB>1:n</SUB>)  (forward algorithm)"
        elif per_position:
            text = "L = Σ<SUB>i</SUB> L<SUB>local</SUB>(ŷ<SUB>i</SUB>, t<SUB>i</SUB>)"
        else:
            name = "hinge" if head.loss_kind == "hinge" else "cross entropy"
            text = f"L = {name}(ŷ, {esc(src.gold)})"
        return loss, LossInfo("gold", text, float(loss.item()), per_position, head_kind)
    y = head.scores(out) if head is not None else out.data
    loss = y.sum()
    what = "scores" if head is not None else "outputs"
    text = (
        f"surrogate L = Σ {what}"
        + (" over all positions" if per_position else "")
        + "  (no gold labels for this sentence)"
    )
    return loss, LossInfo("surrogate", text, float(loss.item()), per_position, head_kind)


def _layer_tapes(net: Network, ctx: RunContext, nested: set[str]) -> dict[str, LayerTape]:
    out: dict[str, LayerTape] = {}
    for name, carries in ctx.states.items():
        module = net.modules[name]
        assert isinstance(module, Recurrent), name
        nodes = [c[0].node for c in carries]
        linked = [False]
        for k in range(1, len(nodes)):
            prev = {id(t.node) for t in carries[k - 1] if t.node is not None}
            linked.append(_reaches(nodes[k], prev))
        first_parents = _carry_parents(nodes[0], module, ctx.reference) if nodes else ()
        s0 = "learned" if any(p is not None for p in first_parents) else "zeros"
        out[name] = LayerTape(name, module, nodes, list(carries), linked, s0, name in nested)
    return out


def _carry_parents(node: Node, module: Recurrent, reference: bool) -> tuple:
    """The parents of a fused step node that are the previous carry (h, and c for an LSTM)."""
    if reference or node.op not in STEP_OPS:
        return ()
    n = len(module.cell.carries)
    return tuple(node.parents[1 : 1 + n])


def _reaches(node: Node, targets: set[int]) -> bool:
    """Whether ``node`` reads one of ``targets`` through ops of its own scope (its step)."""
    stack, seen = [node], {id(node)}
    while stack:
        cur = stack.pop()
        for p in cur.parents:
            if p is None or p.node is None:
                continue
            if id(p.node) in targets:
                return True
            if p.node.scope == node.scope and id(p.node) not in seen:
                seen.add(id(p.node))
                stack.append(p.node)
    return False


def _state_norms(layers: Mapping[str, LayerTape], n: int) -> dict[str, Any]:
    out = {}
    for name, lt in layers.items():
        parts = len(lt.carries[0]) if lt.carries else 1
        arr = Bk.host.zeros((lt.D, n, parts))
        for k, carry in enumerate(lt.carries):
            for j, s in enumerate(carry):
                g = s.grad
                if g is None:
                    continue
                sq = Bk.to_host((g * g).sum(axis=tuple(range(1, g.ndim))))
                for d in range(lt.D):
                    arr[d, lt.position(d, k), j] = math.sqrt(float(sq[d]))
        out[name] = arr
    return out


def _inner_norms(layers: Mapping[str, LayerTape]) -> dict[str, Any]:
    """Per inner sequence and step: the carries of a nested layer are (D, N, d), one column per
    inner sequence (a padded step holds the sequence's last state; it is not drawn)."""
    out = {}
    for name, lt in layers.items():
        if not lt.carries:
            continue
        parts = len(lt.carries[0])
        N = int(lt.carries[0][0].shape[1])
        arr = Bk.host.zeros((lt.D, N, lt.steps, parts))
        for k, carry in enumerate(lt.carries):
            for j, s in enumerate(carry):
                if s.grad is not None:
                    arr[:, :, k, j] = Bk.host.sqrt(Bk.to_host((s.grad * s.grad).sum(axis=-1)))
        out[name] = arr
    return out
