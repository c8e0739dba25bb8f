"""`rnndsl export RUN -o model.onnx`: a trained network up to its scores, as an ONNX graph.

Recurrent layers become ONNX's own LSTM / GRU / RNN operators with ``sequence_lens`` (each
sequence, and each direction of a bi layer, reads only its own length), the weights re-laid:

    ours  W_ih (d_in, D*G), W_hh (D, d, G), gates LSTM (i, f, o, z), GRU (r, z, n)
    ONNX  W (D, G*d, d_in), R (D, G*d, d), B (D, 2*G*d), gates LSTM (i, o, f, c), GRU (z, r, h)

The lecture's GRU (reset before the matrix, s_i = (1 - z) s_{i-1} + z s~) is ONNX's
``linear_before_reset=0`` with z and 1 - z swapped, so its z block is exported negated
(sigmoid(-a) = 1 - sigmoid(a)); the reset-after form (PyTorch's) is ``linear_before_reset=1``.

Graph inputs, batch first:
    words (B, T) int64 token ids (and feats (B, T) for a feature column), lengths (B,) int64
    chars (B*T, L) int64 and char_lengths (B*T,) int64 for a character encoder: the characters
          of word t of sentence b in row b*T + t (a padding word: one <pad>, length 1)
Outputs: scores (B, T, K) for taggers and language models (next-token scores), (B, K) for
classifiers; a language model also takes each recurrent layer's state, `<layer>.h0` (and `.c0`
for an LSTM) of shape (D, B, d), zeros to start, and returns the state after the last token as
`<layer>.h` (`.c`), to feed into the next segment (truncated BPTT's carried state); a CRF gives
its emissions as scores plus transitions (K, K), start (K,) and end
(K,) (the decoding scores: -inf where the tag scheme forbids a transition).
Dropout is the identity (inference). Span splitting (`spans`) has no ONNX form here.
The model's metadata holds the vocabularies and label sets as JSON lists ("rnndsl.vocab.words",
"rnndsl.vocab.tags", ...: id k is entry k), "rnndsl.kind" and "rnndsl.lowercase".

`onnx` builds the file (the optional extra ``rnndsl[onnx]``); nothing here runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..autodiff import backend as Bk
from ..errors import ExportError
from ..nn.cells import permute_blocks
from ..nn.heads import CRFHead, SoftmaxHead
from ..nn.network import ordered_inputs

OPSET = 17
ONNX_GATES = {"lstm": [0, 2, 1, 3], "gru": [1, 0, 2], "srnn": [0]}  # ONNX block k = ours [k]


@dataclass
class Val:
    """A value in the graph being built: tensor name, its kind, feature size, bi layout."""

    name: str
    kind: str  # "seq" (T, B, d) | "nested" (L, N, d) over the words | "vec" (B, d) | "tokens"
    dim: int = 0
    bi: bool = False
    level: int = 1  # 2: characters inside words


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the `onnx` package, which is not installed",
                          hint="pip install 'rnndsl[onnx]' (or pip install onnx)") from None
    return onnx


class _Builder:
    def __init__(self, onnx: Any, net: Any, data_name: str):
        self.onnx, self.h = onnx, onnx.helper
        self.net = net
        self.data_name = data_name
        self.nodes: list = []
        self.inits: list = []
        self.inputs: list = []
        self.outputs: list = []
        self.count = 0
        self.float = Bk.host.float32
        self.masks: dict[int, str] = {}
        self.carry = False
        self.lengths: dict[int, str] = {}  # sequence level (1 words, 2 characters) -> lengths
        self.state_outputs: list[tuple[str, list]] = []

    # --- plumbing ---------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def op(self, kind: str, ins: list[str], hint: str = "", n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.fresh(hint or kind.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(kind, ins, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        arr = Bk.host.asarray(Bk.to_host(value) if Bk.is_array(value) else value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":
            arr = arr.astype(self.float)
        name = self.fresh(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr.copy(order="C"), name))
        return name

    def ints(self, values: list[int], hint: str = "shape") -> str:
        return self.const(Bk.host.array(values, dtype=Bk.host.int64), hint)

    def graph_input(self, name: str, elem: int, shape: list) -> str:
        self.inputs.append(self.h.make_tensor_value_info(name, elem, shape))
        return name

    # --- masks ------------------------------------------------------------------------------
    def mask(self, level: int, lengths: str) -> str:
        """(T, B) bool: t < length, for the sequences of ``lengths`` (T from the lengths' max)."""
        if level in self.masks:
            return self.masks[level]
        tmax = self.op("ReduceMax", [lengths], "tmax", keepdims=1)
        zero, one = self.const(Bk.host.array(0, dtype=Bk.host.int64), "zero"), \
            self.const(Bk.host.array(1, dtype=Bk.host.int64), "one")
        t_scalar = self.op("Squeeze", [tmax], "t")
        rng = self.op("Range", [zero, t_scalar, one], "range")
        col = self.op("Unsqueeze", [rng, self.ints([1])], "col")
        row = self.op("Unsqueeze", [lengths, self.ints([0])], "row")
        m = self.op("Less", [col, row], "mask")
        self.masks[level] = m
        return m


def export_network(net: Any, data: Any, path: str | Path) -> dict[str, Any]:
    """Write ``net`` (with ``data``'s field names) as ONNX to ``path``; returns a summary."""
    onnx = _onnx()
    TP = onnx.TensorProto
    b = _Builder(onnx, net, data.name)
    b.carry = data.kind == "lm"  # a language model's state goes in and comes out
    g = net.graph
    b.lengths[1] = b.graph_input("lengths", TP.INT64, ["B"])
    vals: dict[str, Val] = {}
    for n in net.order:
        attrs = g.nodes[n]
        kind = attrs["kind"]
        rule = EXPORTERS.get(kind)
        if rule is None:
            raise ExportError(f"layer {n} ({kind}) has no ONNX form here")
        ins = [vals[i] for i in ordered_inputs(g, n)]
        vals[n] = rule(b, n, attrs.get("params", {}), net.modules.get(n), ins)
    head = net.head
    out = vals[net.output]
    outputs: dict[str, Any] = {}
    if out.kind == "nested":
        raise ExportError("the network ends inside the words (a per-character output)")
    if isinstance(head, (SoftmaxHead, CRFHead)):
        scores = _linear(b, head.proj, out.name, f"{net.output}.proj")
    else:
        scores = out.name
    if out.kind == "seq":
        scores = b.op("Transpose", [scores], "scores_bf", perm=[1, 0, 2])
    b.nodes.append(b.h.make_node("Identity", [scores], ["scores"]))
    k = head.n if head is not None else out.dim
    outputs["scores"] = ["B", "T", k] if out.kind == "seq" else ["B", k]
    if isinstance(head, CRFHead):
        trans, start, end = head.crf._decoding_scores()
        for name, v in (("transitions", trans), ("start", start), ("end", end)):
            c = b.const(v, f"crf_{name}")
            b.nodes.append(b.h.make_node("Identity", [c], [name]))
            outputs[name] = list(Bk.to_host(v).shape)
    outputs.update(b.state_outputs)
    for name, shape in outputs.items():
        b.outputs.append(b.h.make_tensor_value_info(name, TP.FLOAT, shape))
    graph = b.h.make_graph(b.nodes, f"rnndsl {net.graph.graph.get('name', '')}".strip(),
                           b.inputs, b.outputs, b.inits)
    model = b.h.make_model(graph, opset_imports=[b.h.make_opsetid("", OPSET)],
                           producer_name="rnndsl")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    # what a serving stack needs to turn text into ids and scores into names
    import json

    props = {f"rnndsl.vocab.{k}": json.dumps(v.tokens) for k, v in data.vocabs.items()
             if k in ("words", "chars", "feats", "tags", "labels")}
    props["rnndsl.kind"] = data.kind
    props["rnndsl.lowercase"] = json.dumps(bool(data.vocabs["words"].lowercase))
    b.h.set_model_props(model, props)
    onnx.checker.check_model(model)
    from ..train.checkpoint import atomic_write_bytes

    atomic_write_bytes(Path(path), model.SerializeToString())
    return {"inputs": [i.name for i in b.inputs], "outputs": list(outputs),
            "nodes": len(b.nodes), "opset": OPSET}


# --- one rule per IR kind: (builder, node, params, module, input values) -> output value -------
def _input(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    TP = b.onnx.TensorProto
    field = p.get("field")
    if field == "chars":
        x = b.graph_input("chars", TP.INT64, ["N", "L"])
        b.lengths[2] = b.graph_input("char_lengths", TP.INT64, ["N"])
        return Val(b.op("Transpose", [x], "chars_tm", perm=[1, 0]), "tokens", level=2)
    if field in ("words", "feats"):
        x = b.graph_input(field, TP.INT64, ["B", "T"])
        return Val(b.op("Transpose", [x], f"{field}_tm", perm=[1, 0]), "tokens")
    raise ExportError(f"input {n} ({field}) has no ONNX form here")


def _embed(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    x = ins[0]
    table = b.const(m.table.data, f"{n}.weight")
    return Val(b.op("Gather", [table, x.name], n, axis=0),
               "nested" if x.level == 2 else "seq", int(p["d"]), level=x.level)


def _same(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    """Dropout at inference, and a head's input (its scores are added at the end)."""
    return ins[0]


def _concat(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    kinds = {v.kind for v in ins}
    if len(kinds) != 1:
        raise ExportError(f"{n} joins values of different kinds ({sorted(kinds)})")
    return Val(b.op("Concat", [v.name for v in ins], n, axis=-1), ins[0].kind,
               sum(v.dim for v in ins), level=ins[0].level)


def _rnn(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    return _recurrent(b, m, ins[0], b.lengths[ins[0].level], n)


def _pool_rule(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    return _pool(b, m, ins[0], b.lengths, n)


def _linear_rule(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    return _map(b, ins[0], _linear(b, m, ins[0].name, n), m.W.shape[1])


def _mlp(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    x = ins[0].name
    for k, lin in enumerate(m.layers):
        x = _linear(b, lin, x, f"{n}.{k}")
        x = b.op({"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}[m.act], [x],
                 f"{n}.{k}.act")
    return _map(b, ins[0], x, m.layers[-1].W.shape[1])


def _split(b: _Builder, n: str, p: dict, m: Any, ins: list[Val]) -> Val:
    raise ExportError(
        f"{n} splits each sentence into spans at punctuation; the exporter has no ONNX form "
        "for that data-dependent regrouping (the hierarchical model)",
        hint="the other layers export; a span model would need the spans as inputs")


EXPORTERS = {"input": _input, "embed": _embed, "dropout": _same, "concat": _concat,
             "rnn": _rnn, "pool": _pool_rule, "linear": _linear_rule, "mlp": _mlp,
             "softmax": _same, "crf": _same, "split": _split}


def _map(b: _Builder, v: Val, name: str, dim: int) -> Val:
    return Val(name, v.kind, dim, False, v.level)


def _linear(b: _Builder, lin: Any, x: str, hint: str) -> str:
    y = b.op("MatMul", [x, b.const(lin.W.data, f"{hint}.weight")], hint)
    if lin.b is not None:
        y = b.op("Add", [y, b.const(lin.b.data, f"{hint}.bias")], hint)
    return y


def onnx_rnn_weights(m: Any) -> tuple[Any, Any, Any]:
    """W (D, G*d, d_in), R (D, G*d, d), B (D, 2*G*d) of a Recurrent layer, in ONNX's layout."""
    cell, D, d = m.cell, m.D, m.d
    G = cell.gates * d
    W_ih = Bk.to_host(m.W_ih.data).astype(Bk.host.float64)
    W_hh = Bk.to_host(m.W_hh.data).astype(Bk.host.float64)
    b_ih = Bk.to_host(m.b_ih.data).astype(Bk.host.float64)
    b_hh = Bk.to_host(m.b_hh.data).astype(Bk.host.float64)
    order = ONNX_GATES[cell.kind]
    Ws, Rs, Bs = [], [], []
    for dd in range(D):
        w = W_ih[:, dd * G:(dd + 1) * G].T  # (G, d_in), gate blocks along axis 0
        r = W_hh[dd].T  # (G, d)
        if cell.has_hidden_bias:
            wb, rb = b_ih[dd * G:(dd + 1) * G], b_hh[dd, 0]
        else:  # both biases enter the input projection
            wb, rb = b_ih[dd * G:(dd + 1) * G] + b_hh[dd, 0], Bk.host.zeros(G)
        if cell.kind == "gru" and cell.reset != "after":
            sign = Bk.host.ones(G)
            sign[d:2 * d] = -1.0  # ours keeps the state with 1 - z, ONNX with z: negate z
            w, r, wb, rb = w * sign[:, None], r * sign[:, None], wb * sign, rb * sign
        Ws.append(permute_blocks(w, order, 0))
        Rs.append(permute_blocks(r, order, 0))
        Bs.append(Bk.host.concatenate([permute_blocks(wb, order, 0),
                                       permute_blocks(rb, order, 0)]))
    return Bk.host.stack(Ws), Bk.host.stack(Rs), Bk.host.stack(Bs)


def _recurrent(b: _Builder, m: Any, x: Val, lengths: str, n: str) -> Val:
    cell = m.cell
    W, R, B = onnx_rnn_weights(m)
    seq_lens = b.op("Cast", [lengths], f"{n}.lens", to=b.onnx.TensorProto.INT32)
    ins = [x.name, b.const(W, f"{n}.W"), b.const(R, f"{n}.R"), b.const(B, f"{n}.B"), seq_lens]
    if b.carry:  # a language model: the state each stream starts from is an input
        for part in cell.carries:
            ins.append(b.graph_input(f"{n}.{part}0", b.onnx.TensorProto.FLOAT,
                                     [m.D, "B", m.d]))
    elif m.s0 == "learned":  # (D, 1, d) -> (D, batch, d)
        batch = b.op("Shape", [x.name], f"{n}.shape", start=1, end=2)
        shape = b.op("Concat", [b.ints([m.D]), batch, b.ints([m.d])], f"{n}.s0shape", axis=0)
        for part in cell.carries:
            ins.append(b.op("Expand", [b.const(m.params[f"{part}0"].data, f"{n}.{part}0"),
                                       shape], f"{n}.{part}0"))
    attrs: dict[str, Any] = {"hidden_size": m.d,
                             "direction": "bidirectional" if m.D == 2 else "forward"}
    if cell.kind == "lstm":
        op = "LSTM"
    elif cell.kind == "gru":
        op = "GRU"
        attrs["linear_before_reset"] = 1 if cell.reset == "after" else 0
    else:
        op = "RNN"
        attrs["activations"] = [{"tanh": "Tanh", "relu": "Relu"}[cell.act]] * m.D
    if b.carry:
        y, *finals = b.op(op, ins, n, n_out=1 + len(cell.carries), **attrs)  # Y (T, D, B, d)
    else:
        y, finals = b.op(op, ins, n, **attrs), []
    if b.carry:  # Y_h, Y_c: each stream's state after its last token
        for part, f in zip(cell.carries, finals):
            b.nodes.append(b.h.make_node("Identity", [f], [f"{n}.{part}"]))
            b.state_outputs.append((f"{n}.{part}", [m.D, "B", m.d]))
    y = b.op("Transpose", [y], f"{n}.tbd", perm=[0, 2, 1, 3])
    y = b.op("Reshape", [y, b.ints([0, 0, m.D * m.d])], f"{n}.y")
    return Val(y, x.kind, m.D * m.d, m.D == 2, x.level)


def _pool(b: _Builder, m: Any, x: Val, lengths: dict[int, str], n: str) -> Val:
    mode = m.mode
    lens = lengths[x.level]
    mask = b.mask(x.level, lens) if mode in ("mean", "max", "attention") else None  # (T, B)
    y = x.name
    axes0 = b.ints([0]) if mode in ("last", "mean", "attention") else None
    if mode == "first":
        out = b.op("Gather", [y, b.const(Bk.host.array(0, dtype=Bk.host.int64), "i0")], n,
                   axis=0)
    elif mode == "last":
        # one-hot of t = length - 1 over time, (T, B, 1); exact: one product by 1, sums of 0
        one = b.const(Bk.host.array(1, dtype=Bk.host.int64), "one")
        last = b.op("Sub", [lens, one], f"{n}.lastpos")
        tmax = b.op("Squeeze", [b.op("ReduceMax", [lens], f"{n}.tmax", keepdims=1)], f"{n}.t")
        rng = b.op("Range", [b.const(Bk.host.array(0, dtype=Bk.host.int64), "zero"), tmax,
                             one], f"{n}.range")
        hot = b.op("Equal", [b.op("Unsqueeze", [rng, b.ints([1])], f"{n}.col"),
                             b.op("Unsqueeze", [last, b.ints([0])], f"{n}.row")], f"{n}.hot")
        hotf = b.op("Cast", [b.op("Unsqueeze", [hot, b.ints([2])], f"{n}.h3")], f"{n}.hf",
                    to=b.onnx.TensorProto.FLOAT)
        out = b.op("ReduceSum", [b.op("Mul", [y, hotf], f"{n}.sel"), axes0], n, keepdims=0)
        if x.bi:  # backward direction: its final state sits at the first token
            half = x.dim // 2
            fwd = b.op("Slice", [out, b.ints([0]), b.ints([half]), b.ints([1])], f"{n}.f")
            first = b.op("Gather", [y, b.const(Bk.host.array(0, dtype=Bk.host.int64), "i0")],
                         f"{n}.first", axis=0)
            bwd = b.op("Slice", [first, b.ints([half]), b.ints([x.dim]), b.ints([1])],
                       f"{n}.b")
            out = b.op("Concat", [fwd, bwd], n, axis=-1)
    elif mode == "mean":
        fmask = b.op("Cast", [b.op("Unsqueeze", [mask, b.ints([2])], f"{n}.m3")], f"{n}.fm",
                     to=b.onnx.TensorProto.FLOAT)
        s = b.op("ReduceSum", [b.op("Mul", [y, fmask], f"{n}.masked"), axes0], f"{n}.sum",
                 keepdims=0)
        lf = b.op("Cast", [b.op("Unsqueeze", [lens, b.ints([1])], f"{n}.l2")], f"{n}.lf",
                  to=b.onnx.TensorProto.FLOAT)
        out = b.op("Div", [s, lf], n)
    elif mode == "max":
        ninf = b.const(Bk.host.array(-Bk.host.inf, dtype=Bk.host.float32), "ninf")
        m3 = b.op("Unsqueeze", [mask, b.ints([2])], f"{n}.m3b")
        out = b.op("ReduceMax", [b.op("Where", [m3, y, ninf], f"{n}.w")], n, axes=[0],
                   keepdims=0)
    elif mode == "attention":
        w = b.const(Bk.to_host(m.w.data).reshape(-1, 1), f"{n}.w")
        sc = b.op("Squeeze", [b.op("MatMul", [y, w], f"{n}.score"), b.ints([2])], f"{n}.s")
        ninf = b.const(Bk.host.array(-Bk.host.inf, dtype=Bk.host.float32), "ninf")
        a = b.op("Softmax", [b.op("Where", [mask, sc, ninf], f"{n}.masked")], f"{n}.a", axis=0)
        a3 = b.op("Unsqueeze", [a, b.ints([2])], f"{n}.a3")
        out = b.op("ReduceSum", [b.op("Mul", [y, a3], f"{n}.wy"), axes0], n, keepdims=0)
    else:
        raise ExportError(f"pooling {mode!r} of {n} has no ONNX form here")
    if x.kind == "nested":  # (N, d) over the words, rows b*T + t -> (T, B, d)
        bt = _batch_time(b, lengths[1], n)
        full = b.op("Concat", [bt, b.ints([x.dim])], f"{n}.btd", axis=0)
        out = b.op("Transpose", [b.op("Reshape", [out, full], f"{n}.btd_")], f"{n}.seq",
                   perm=[1, 0, 2])
        return Val(out, "seq", x.dim, False, 1)
    return Val(out, "vec", x.dim)


def _batch_time(b: _Builder, lengths: str, n: str) -> str:
    """(B, T) as a shape tensor: the batch size and the longest sentence of ``lengths``."""
    return b.op("Concat", [b.op("Shape", [lengths], f"{n}.b"),
                           b.op("ReduceMax", [lengths], f"{n}.t", keepdims=1)], f"{n}.bt",
                axis=0)


def feeds(data: Any, examples: list, needs: set[str]) -> dict[str, Any]:
    """The ONNX inputs of some examples (batch first, in order), from the run's vocabularies."""
    vocab = data.vocabs["words"]
    Bn = len(examples)
    lens = Bk.host.array([max(1, len(ex.words)) for ex in examples], dtype=Bk.host.int64)
    T = int(lens.max())
    ids = Bk.host.zeros((Bn, T), dtype=Bk.host.int64)
    for i, ex in enumerate(examples):
        ids[i, :len(ex.words)] = vocab.encode(ex.words)
    out = {"words": ids, "lengths": lens}
    if "feats" in needs:
        fv = data.vocabs["feats"]
        f = Bk.host.zeros((Bn, T), dtype=Bk.host.int64)
        for i, ex in enumerate(examples):
            if ex.feats:
                f[i, :len(ex.feats)] = fv.encode(ex.feats)
        out["feats"] = f
    if "chars" in needs:
        cv = data.vocabs["chars"]
        words = [[0]] * (Bn * T)
        for i, ex in enumerate(examples):
            for t, w in enumerate(ex.words):
                words[i * T + t] = cv.encode(w) or [cv.unk_index or 0]
        cl = Bk.host.array([len(c) for c in words], dtype=Bk.host.int64)
        ch = Bk.host.zeros((len(words), int(cl.max())), dtype=Bk.host.int64)
        for r, c in enumerate(words):
            ch[r, :len(c)] = c
        out["chars"], out["char_lengths"] = ch, cl
    return out


def export_run(run_dir: str | Path, output: str | Path) -> str:
    """Export a run directory's best weights; returns a one-line summary."""
    from ..prepare import load_run

    if not str(output).endswith(".onnx"):
        raise ExportError(f"{output}: the output of an ONNX export must end in .onnx")
    prep, _ = load_run(run_dir, log=lambda s: None)
    info = export_network(prep.net, prep.data, output)
    return (f"ONNX opset {info['opset']}, inputs {', '.join(info['inputs'])}; outputs "
            f"{', '.join(info['outputs'])}")


__all__ = ["export_network", "export_run", "feeds", "onnx_rnn_weights"]
