"""Text from a trained language model: greedy or sampled, the state carried across the prompt.

The model reads `<eos>` (the start of a line) and then the prompt in one pass, keeps each
layer's final state, and from then on reads one token per step, the one it just chose:

    p(w_{i+1} | w_1..i) = softmax(O(s_i) / temperature), restricted to the top_k scores

temperature 0 (or top_k 1) is greedy decoding. A seed makes sampling reproducible (NumPy's
PCG64 generator). `<pad>` is never chosen (it is not a token of the text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .autodiff import backend as Bk
from .autodiff.tensor import no_grad
from .errors import DataError
from .nn.module import RunContext, SeqInfo, TokenValue


def is_char_level(data: Any) -> bool:
    """A text reader with tokens=chars: one token per character (space and line end too)."""
    return data.kind == "lm" and str(data.args.get("tokens", "words")) == "chars"


def prompt_tokens(data: Any, prompt: str) -> list[str]:
    """The prompt as the model's tokens: words, or characters (each run of whitespace one
    space, none at the start, as the text reader reads a line; a final space is kept)."""
    if is_char_level(data):
        return list(re.sub(r"\s+", " ", prompt).lstrip())
    return prompt.split()


def detokenize(data: Any, tokens: Sequence[str]) -> str:
    """Tokens back to text: `<eos>` is a line end; words are joined by spaces."""
    eos = data.args.get("eos", "<eos>")
    if is_char_level(data):
        return "".join("\n" if t == eos else t for t in tokens)
    out = []
    for t in tokens:
        if t == eos:
            out.append("\n")
        else:
            out.append(t if not out or out[-1] == "\n" else " " + t)
    return "".join(out)


def _check_lm(data: Any) -> None:
    if data.kind != "lm":
        what = "a tagger" if data.kind == "tagging" else "a classifier"
        raise DataError(f"this run is {what}, not a language model: it has no next-token scores "
                        "to sample from",
                        hint="generate needs a run of a spec with a text(...) data reader and a "
                             "softmax over its .next field; use `rnndsl predict` for this run")


def sample(net: Any, data: Any, prompt: str = "", tokens: int = 50, temperature: float = 1.0,
           top_k: int | None = None, seed: int | None = None,
           stop_at_eos: bool = False) -> list[str]:
    """Up to ``tokens`` new tokens after ``prompt`` (fewer when stopping at `<eos>`)."""
    _check_lm(data)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise DataError(f"tokens must be a whole number >= 0, got {tokens!r}")
    if not isinstance(temperature, (int, float)) or not temperature >= 0 \
            or temperature == float("inf"):
        raise DataError(f"temperature must be >= 0 (0: greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise DataError(f"top_k must be a whole number >= 1, got {top_k!r}")
    vocab = data.vocabs["words"]
    eos = data.args.get("eos", "<eos>")
    start = [vocab.index(eos)] if eos is not None and eos in vocab else []
    ids = start + vocab.encode(prompt_tokens(data, prompt))
    if not ids:
        raise DataError("give a prompt: this model's text has no line-end token to start from")
    banned = [i for i, t in enumerate(vocab.tokens) if t == "<pad>"]
    rng = Bk.host_rng(seed)
    head = net.head
    xp = net.backend.xp
    carry: dict = {}
    out: list[str] = []

    def scores_after(chunk: list[int]) -> Any:
        nonlocal carry
        arr = Bk.host.asarray(chunk, dtype=Bk.host.int64).reshape(-1, 1)
        info = SeqInfo(Bk.host.array([len(chunk)]), len(chunk), xp)
        inputs = {f"{data.name}.words": TokenValue(xp.asarray(arr), info)}
        ctx = RunContext(train=False, init_states=carry)
        values = net.run(inputs, ctx)
        carry = ctx.final_states
        s = Bk.to_host(head.scores(values[net.output]).data)  # (T, 1, V)
        return s[-1, 0].astype(Bk.host.float64)

    with no_grad():
        logits = scores_after(ids)
        for _ in range(tokens):
            logits[banned] = -Bk.host.inf
            if temperature == 0 or top_k == 1:
                k = int(logits.argmax())
            else:
                z = logits / temperature
                if top_k is not None and top_k < z.size:
                    cut = Bk.host.partition(z, -top_k)[-top_k]
                    z = Bk.host.where(z >= cut, z, -Bk.host.inf)
                p = Bk.host.exp(z - z.max())
                p /= p.sum()
                k = int(rng.choice(p.size, p=p))
            tok = vocab.tokens[k]
            out.append(tok)
            if stop_at_eos and tok == eos:
                break
            logits = scores_after([k])
    return out


__all__ = ["detokenize", "is_char_level", "prompt_tokens", "sample"]
