"""A data batch (host arrays, rnndsl.data) on a network's backend, its inputs as the network
takes them: token ids as TokenValue with their SeqInfo, spans as the split layer's index tuple.

The data layer builds host arrays only and knows nothing of the network; this is where they
cross over.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .module import SeqInfo, TokenValue


def on_backend(batch: Any, xp: Any) -> Any:
    """The batch (a data.dataset.Batch) with its inputs wrapped and every array on ``xp``.

    Token fields of one batch share their lengths, and so one SeqInfo (the words, the feats and
    the characters' outer grid)."""
    infos: dict[int, SeqInfo] = {}

    def seq_info(t: Any) -> SeqInfo:  # one per lengths array
        key = id(t.lengths)
        if key not in infos:
            infos[key] = SeqInfo(t.lengths, t.ids.shape[0], xp)
        return infos[key]

    def tokens(t: Any) -> TokenValue:
        if t.outer is None:
            return TokenValue(xp.asarray(t.ids), seq_info(t))
        return TokenValue(xp.asarray(t.ids), seq_info(t), xp.asarray(t.outer_index),
                          seq_info(t.outer))

    inputs: dict[str, Any] = {}
    for key, value in batch.inputs.items():
        if key == "__spans__":
            n = value.n_spans
            inputs[key] = (xp.asarray(value.index), value.lengths, xp.asarray(value.outer_index),
                           SeqInfo(n, int(n.max()), xp))
        else:
            inputs[key] = tokens(value)

    def arr(a: Any) -> Any:
        return None if a is None else xp.asarray(a)

    return dataclasses.replace(batch, inputs=inputs, targets=arr(batch.targets),
                               valid=arr(batch.valid), inputs_mask=arr(batch.inputs_mask))


__all__ = ["on_backend"]
