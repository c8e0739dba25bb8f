"""Output heads and losses: softmax (acceptor or transducer) with cross entropy or hinge.

Acceptor: p(label = k | w_{1:n}) = softmax(MLP(RNN(x_{1:n})))_[k], loss on the final vector.
Transducer: a local loss L_local(t^_i, t_i) at every position, reduced by sum or mean.
"""

from __future__ import annotations

from typing import Any

from ..autodiff import functional as F
from ..autodiff.tensor import Tensor
from .layers import Init, Linear
from .module import Module


def reduce_loss(per_item: Tensor, valid: Any, reduction: str, weights: Any = None) -> Tensor:
    """sum | mean (over valid items) | weighted (mean weighted by ``weights``) of a loss array."""
    if weights is not None:
        w = Tensor(weights)
        return (per_item * w).sum() / float(max(float(weights.sum()), 1e-12))
    if reduction == "sum":
        return per_item.sum()
    n = float(valid.sum()) if valid is not None else float(per_item.data.size)
    return per_item.sum() / max(n, 1.0)


class SoftmaxHead(Module):
    """Scores s = y W + b over n classes; cross entropy (xent) or multiclass hinge loss."""

    def __init__(self, name: str, d_in: int, n: int, init: Init, loss: str = "xent",
                 margin: float = 1.0):
        super().__init__(name)
        self.proj = self.add_child("proj", Linear(f"{name}.proj", d_in, n, init))
        self.loss_kind = loss
        self.margin = margin
        self.n = n

    def scores(self, value: Any) -> Tensor:
        return self.proj.apply(value.data)

    def loss(self, scores: Tensor, targets: Any, valid: Any, reduction: str = "mean",
             weights: Any = None) -> Tensor:
        """targets (T, B) or (B,) backend int; valid bool of the same shape or None."""
        if self.loss_kind == "hinge":
            per = F.multiclass_hinge(scores, targets, self.margin)
            if valid is not None:
                per = per * Tensor(valid.astype(scores.dtype))
        else:
            per = F.softmax_cross_entropy(scores, targets, valid)
        return reduce_loss(per, valid, reduction, weights)

    def scored_loss(self, value: Any, targets: Any, valid: Any, reduction: str = "mean",
                    weights: Any = None) -> Tensor:
        """loss(scores(value), ...) for training, where the scores themselves are not needed:
        with cross entropy, one op for the output layer and the loss (ops.linear_softmax_xent;
        a 10,000-way language-model output skips two passes over its logits)."""
        lin = self.proj
        if self.loss_kind != "xent" or weights is not None or lin.b is None:
            return self.loss(self.scores(value), targets, valid, reduction, weights)
        x = value.data
        flat = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        v = None if valid is None else valid.reshape(-1)
        per = F.linear_softmax_xent(flat, lin.W, lin.b, targets.reshape(-1), v)
        return reduce_loss(per, v, reduction)

    def predict(self, scores: Tensor) -> Any:
        return scores.data.argmax(axis=-1)

    def probabilities(self, scores: Tensor) -> Any:
        return F.softmax(scores.detach(), axis=-1).data


class CRFHead(Module):
    """BiLSTM-CRF output (Huang et al. 2015): emissions from a linear layer, then a linear-chain
    CRF with transition scores; trained by the forward algorithm, decoded by Viterbi.

    score(x, s) = sum_i trans[s_{i-1}, s_i] + emit_i[s_i] (+ start and end transitions).
    """

    def __init__(self, name: str, d_in: int, n: int, init: Init, tag_names: Any = None,
                 scheme: str = "none", constraints: bool = True):
        from .crf import CRF  # the CRF module registers its ops on import

        super().__init__(name)
        self.proj = self.add_child("proj", Linear(f"{name}.proj", d_in, n, init))
        params = {k: self.add_param(k, init.uniform(shape, 0.1))
                  for k, shape in (("trans", (n, n)), ("start", (n,)), ("end", (n,)))}
        named = tag_names is not None and scheme not in ("none", "auto")
        use_scheme = scheme if named else "none"
        self.crf = CRF(list(tag_names) if use_scheme != "none" else n, use_scheme,
                       backend=init.backend, constrain=constraints, parameters=params)
        self.n = n

    def emissions(self, value: Any) -> Tensor:
        return self.proj.apply(value.data)

    def scores(self, value: Any) -> Tensor:
        return self.emissions(value)

    def loss(self, emissions: Tensor, targets: Any, valid: Any, reduction: str = "mean",
             weights: Any = None) -> Tensor:
        """emissions (T, B, K) time-major; targets and valid (T, B)."""
        em = emissions.transpose(1, 0, 2)
        return self.crf.nll(em, targets.T, valid.T, reduction=reduction)

    def scored_loss(self, value: Any, targets: Any, valid: Any, reduction: str = "mean",
                    weights: Any = None) -> Tensor:
        """loss(scores(value), ...) (the SoftmaxHead's training entry, for any head)."""
        return self.loss(self.scores(value), targets, valid, reduction, weights)

    def decode(self, emissions: Tensor, valid: Any) -> list[list[int]]:
        return self.crf.decode(emissions.detach().transpose(1, 0, 2), valid.T)

    def marginals(self, emissions: Tensor, valid: Any) -> Any:
        return self.crf.marginals(emissions.detach().transpose(1, 0, 2), valid.T)
