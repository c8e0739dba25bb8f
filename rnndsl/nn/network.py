"""Network: the IR graph of a model built into layers, run on batches, and PyTorch interop."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import networkx as nx

from ..autodiff import backend as Bk
from ..autodiff.ops import apply
from ..autodiff.tensor import Tensor, scope
from ..errors import ShapeError, TorchStateError
from ..lang.ir import inputs_of as ordered_inputs
from ..lang.ir import ordered_nodes
from .builders import Call, Node, builder, field_name
from .cells import inverse_order, permute_blocks
from .heads import CRFHead, SoftmaxHead
from .layers import Init, Recurrent
from .module import Module, Parameter, RunContext, SeqInfo, SeqValue, TokenValue, VecValue


def _dim(t: Any) -> int:
    return int(getattr(t, "dim", 0) or 0)


class Network(Module):
    """A model built from an IR graph: one module per layer node, evaluated in graph order.

    ``sizes`` maps data fields ("ewt.words", "ewt.tags", ...) to vocabulary / tag-set sizes.
    """

    def __init__(self, graph: nx.DiGraph, sizes: Mapping[str, int] | None = None, *,
                 seed: int = 0, dtype: str = "float32", backend: str | None = None,
                 init_scale: float | None = None, pretrained: Mapping[str, Any] | None = None,
                 tag_names: Mapping[str, Any] | None = None,
                 counts: Mapping[str, Any] | None = None):
        super().__init__("")
        self.graph = graph
        self.sizes = dict(sizes or {})
        self.backend = Bk.get_backend(backend)
        self.dtype = Bk.dtype_of(dtype)
        self.order = ordered_nodes(graph)
        self.output = graph.graph.get("output") or self.order[-1]
        init = Init(Bk.host_rng(seed), self.backend, self.dtype, init_scale)
        self.modules: dict[str, Module] = {}
        pretrained = pretrained or {}
        self.tag_names = dict(tag_names or {})
        self.counts = dict(counts or {})  # field -> training count per id (word dropout)
        for n in self.order:
            node = Node(self, n, graph.nodes[n].get("params", {}), init, pretrained)
            m = builder(graph.nodes[n]["kind"]).build(node)
            if m is not None:
                self.modules[n] = self.add_child(n, m)

    # --- building -------------------------------------------------------------------------------
    def in_dim(self, n: str) -> int:
        """The feature size reaching node ``n`` (the sum of the inputs for a concat)."""
        ins = self.graph.nodes[n].get("in_types") or []
        if ins:
            return sum(_dim(t) for t in ins) if self.graph.nodes[n]["kind"] == "concat" \
                else _dim(ins[0])
        preds = ordered_inputs(self.graph, n)
        return _dim(self.graph.nodes[preds[0]]["out_type"])

    def size_of(self, field: Any, what: str) -> int:
        """The vocabulary / class count of a data field (or a count given as it is)."""
        if isinstance(field, int):
            return field
        if getattr(field, "classes", None):  # compile("... |> softmax(5)")
            return int(field.classes)
        key = field_name(field)
        if key not in self.sizes:
            raise ShapeError(f"the size of {key} ({what}) is unknown: read the data first")
        return int(self.sizes[key])

    # --- running --------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, Any], ctx: RunContext, upto: str | None = None) -> dict:
        """Evaluate every node; ``inputs`` maps input node names (or their field) to values."""
        values: dict[str, Any] = {}
        for n in self.order:
            attrs = self.graph.nodes[n]
            ins = [values[i] for i in ordered_inputs(self.graph, n)]
            call = Call(self.modules.get(n), n, attrs.get("params", {}), ins, inputs, ctx)
            with scope(n):
                values[n] = builder(attrs["kind"]).run(call)
            if n == upto:
                break
        return values

    @property
    def head(self) -> Module | None:
        return self.modules.get(self.output)

    # --- the public array API -------------------------------------------------------------------
    def __call__(self, x: Any, lengths: Any = None) -> Tensor:
        """x (B, T, D) batch-first -> (B, T, D_out) for a sequence, (B, D_out) for a vector.

        Padded positions (t >= lengths[b]) of a sequence output are zero. A pipeline that ends
        in a head returns the head's scores (logits / emissions).
        """
        x = x if isinstance(x, Tensor) else Tensor(self.backend.asarray(x))
        if x.ndim != 3:
            raise ShapeError(f"input must be (batch, time, features), got shape {x.shape}")
        Bn, T, D = x.shape
        ins = [n for n in self.order if self.graph.nodes[n]["kind"] == "input"]
        want = _dim(self.graph.nodes[ins[0]].get("out_type"))
        if want and D != want:
            raise ShapeError(f"input has {D} features per step, the network expects {want}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        lengths = Bk.host.full(Bn, T) if lengths is None else Bk.host.asarray(lengths)
        info = SeqInfo(lengths, T, self.backend.xp)
        seq = SeqValue(x.transpose(1, 0, 2), info)
        return self.forward_value(seq, RunContext(train=False))

    def forward_value(self, seq: SeqValue, ctx: RunContext) -> Tensor:
        ins = [n for n in self.order if self.graph.nodes[n]["kind"] == "input"]
        values = self.run({ins[0]: seq}, ctx)
        out = values[self.output]
        head = self.head
        if isinstance(head, SoftmaxHead):
            out = type(out)(head.scores(out), *_rest(out))
        elif isinstance(head, CRFHead):
            out = type(out)(head.emissions(out), *_rest(out))
        if isinstance(out, VecValue):
            return out.data
        return out.data.transpose(1, 0, 2)

    # --- parameters and PyTorch -----------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> dict[str, Parameter]:
        out: dict[str, Parameter] = {}
        for n, m in self.modules.items():
            out.update(m.named_parameters(f"{prefix}{n}."))
        return out

    def zero_grad(self) -> None:
        for p in self.named_parameters().values():
            p.zero_grad()

    def recurrent_layers(self) -> list[Recurrent]:
        return [m for m in self.modules.values() if isinstance(m, Recurrent)]

    def torch_state(self, grads: bool = False) -> dict[str, Any]:
        """Weights in nn.RNN / nn.LSTM / nn.GRU names and layouts (host arrays).

        Recurrent layers are numbered l0, l1, ... in graph order; ``_reverse`` marks the
        backward direction: weight_ih_l{k} (G*H, D_in), weight_hh_l{k} (G*H, H), bias_ih_l{k},
        bias_hh_l{k} with PyTorch's gate order. ``grads=True`` gives the gradients instead
        (zeros where there is none), in the same names and layouts.
        """
        state: dict[str, Any] = {}

        def get(p: Parameter) -> Any:
            if not grads:
                return Bk.to_host(p.data)
            return Bk.host.zeros(p.shape, p.dtype) if p.grad is None else Bk.to_host(p.grad)

        for k, layer in enumerate(self.recurrent_layers()):
            layer.cell.check_torch_compatible()
            inv = inverse_order(layer.cell.torch_block_order())
            G = layer.cell.gates * layer.d
            w_ih, w_hh, b_ih, b_hh = (get(p) for p in (layer.W_ih, layer.W_hh, layer.b_ih,
                                                      layer.b_hh))
            for dd in range(layer.D):
                sfx = f"_l{k}" + ("_reverse" if dd else "")
                sl = slice(dd * G, (dd + 1) * G)
                state["weight_ih" + sfx] = permute_blocks(w_ih[:, sl], inv, axis=1).T.copy()
                state["weight_hh" + sfx] = permute_blocks(w_hh[dd], inv, axis=1).T.copy()
                state["bias_ih" + sfx] = permute_blocks(b_ih[sl], inv, axis=0).copy()
                state["bias_hh" + sfx] = permute_blocks(b_hh[dd, 0], inv, axis=0).copy()
        return state

    def load_torch_state(self, state: Mapping[str, Any] | str | os.PathLike) -> None:
        """Load nn.RNN / nn.LSTM / nn.GRU weights (a dict of arrays or tensors, or an .npz path)."""
        if isinstance(state, (str, os.PathLike)):
            with Bk.host.load(os.fspath(state), allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
        state = {k: _host_array(v) for k, v in state.items()}
        expected = self.torch_state()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if unexpected:
                parts.append("unexpected " + ", ".join(unexpected))
            raise TorchStateError(
                "the PyTorch state does not match this network: " + "; ".join(parts),
                hint="the network's names are: " + ", ".join(sorted(expected)),
            )
        for name, arr in state.items():
            if tuple(arr.shape) != tuple(expected[name].shape):
                raise TorchStateError(
                    f"{name} has shape {tuple(arr.shape)}, this network needs "
                    f"{tuple(expected[name].shape)}"
                )
        for k, layer in enumerate(self.recurrent_layers()):
            order = layer.cell.torch_block_order()
            G = layer.cell.gates * layer.d
            xp = self.backend.xp
            for dd in range(layer.D):
                sfx = f"_l{k}" + ("_reverse" if dd else "")

                def put(a: Any, axis: int) -> Any:
                    return xp.asarray(permute_blocks(a, order, axis=axis), dtype=self.dtype)

                layer.W_ih.data[:, dd * G:(dd + 1) * G] = put(state["weight_ih" + sfx].T, 1)
                layer.W_hh.data[dd] = put(state["weight_hh" + sfx].T, 1)
                layer.b_ih.data[dd * G:(dd + 1) * G] = put(state["bias_ih" + sfx], 0)
                layer.b_hh.data[dd, 0] = put(state["bias_hh" + sfx], 0)


def _rest(value: Any) -> tuple:
    if isinstance(value, SeqValue):
        return (value.info, value.bidirectional)
    return ()


def _host_array(v: Any) -> Any:
    if hasattr(v, "detach"):  # a torch tensor, without importing torch
        v = v.detach().cpu().numpy()
    return Bk.to_host(v) if Bk.is_array(v) else Bk.host.asarray(v)


__all__ = ["Network", "TokenValue", "apply"]
