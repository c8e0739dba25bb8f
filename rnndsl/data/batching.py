"""Batching on the host: padding, length bucketing, character batches, language-model streams.

All arrays here are NumPy host arrays; the training loop moves them to the backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .vocab import Vocab


@dataclass
class TokenIds:
    """Token ids of a batch on the host, time-major: ids (T, B) int64, lengths (B,).

    Nested tokens (the characters of each word) are N inner sequences: ids (T_in, N), and
    inner sequence i belongs at row ``outer_index[i]`` (= t * B + b) of the grid of ``outer``.
    The network wraps them for its backend (nn.batch.on_backend)."""

    ids: np.ndarray
    lengths: np.ndarray
    outer_index: np.ndarray | None = None
    outer: TokenIds | None = None


@dataclass
class SpanIndex:
    """The spans of each sentence, on the host: ``index`` (L, N) holds, for each of the N spans
    of the batch, the rows (t * B + b) of its tokens, padded with its first; ``lengths`` (N,);
    span i is span k of sentence b and sits at row ``outer_index[i]`` = k * B + b of a grid of
    ``n_spans.max()`` steps; ``n_spans`` (B,) counts each sentence's spans."""

    index: np.ndarray
    lengths: np.ndarray
    outer_index: np.ndarray
    n_spans: np.ndarray


def pad_batch(
    seqs: Sequence[Sequence[int]], pad: int = 0, dtype: np.dtype | type = np.int64
) -> tuple[np.ndarray, np.ndarray]:
    """Pad id sequences to the longest: ids (B, T) of `dtype` and lengths (B,) int64."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    width = int(lengths.max()) if len(seqs) else 0
    ids = np.full((len(seqs), width), pad, dtype=dtype)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = s
    return ids, lengths


def bucket_batches(
    lengths: Sequence[int],
    batch_size: int,
    rng: np.random.Generator | None,
    bucket_width: int = 50,
    by_length: bool = False,
) -> list[list[int]]:
    """Group example indices into batches of similar length; every index occurs exactly once.

    With an rng: shuffle all indices, sort each window of `bucket_width * batch_size` of them by
    length (a stable sort, so ties stay shuffled), cut the windows into batches, then shuffle the
    order of the batches. The same seed gives the same batches. With rng=None (evaluation): no
    shuffling and no sorting, batches of consecutive indices in order; with ``by_length`` as
    well, the indices sorted longest first (ties in input order) and cut into batches, so that
    each batch holds similar lengths (evaluation: less padding, same predictions).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if bucket_width < 1:
        raise ValueError(f"bucket_width must be >= 1, got {bucket_width}")
    n = len(lengths)
    if rng is None:
        order = sorted(range(n), key=lambda i: -lengths[i]) if by_length else list(range(n))
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    lens = np.asarray(lengths, dtype=np.int64)
    order = rng.permutation(n)
    window = bucket_width * batch_size
    batches: list[list[int]] = []
    for w in range(0, n, window):
        chunk = order[w : w + window]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def char_batch(
    words_per_example: Sequence[Sequence[str]],
    char_vocab: Vocab,
    max_word_len: int | None = None,
    pad: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Character ids (B, T_words, T_chars) int64 and word lengths (B, T_words) int64.

    Padded word slots have length 0; words longer than `max_word_len` are cut at its end.
    """
    if max_word_len is not None and max_word_len < 1:
        raise ValueError(f"max_word_len must be >= 1, got {max_word_len}")
    encoded = [
        [char_vocab.encode(w if max_word_len is None else w[:max_word_len]) for w in words]
        for words in words_per_example
    ]
    n_words = max((len(ws) for ws in encoded), default=0)
    n_chars = max((len(c) for ws in encoded for c in ws), default=0)
    ids = np.full((len(encoded), n_words, n_chars), pad, dtype=np.int64)
    lengths = np.zeros((len(encoded), n_words), dtype=np.int64)
    for b, ws in enumerate(encoded):
        for t, chars in enumerate(ws):
            ids[b, t, : len(chars)] = chars
            lengths[b, t] = len(chars)
    return ids, lengths


def lm_stream(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut a 1-D token-id corpus into `batch_size` contiguous rows (batch_size, N), N = len // B.

    The remainder is dropped (Zaremba et al. 2014). Each row is one contiguous stretch of the
    corpus, so the caller carries each row's RNN state from one segment to the next.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"expected a 1-D array of token ids, got shape {ids.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(ids) // batch_size
    if n < 2:
        raise DataError(
            f"a corpus of {len(ids)} tokens is too short for batch_size={batch_size}: "
            "each row needs at least 2 tokens"
        )
    return ids[: batch_size * n].reshape(batch_size, n)


def lm_segments(
    stream: np.ndarray, bptt: int, drop_last: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (inputs (B, L), targets (B, L)) segments of a stream, targets shifted by one token.

    L = bptt except for the last segment, which may be shorter (skipped with drop_last=True).
    Over all segments every token but the last of each row is an input exactly once.
    """
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    n = stream.shape[1]
    for i in range(0, n - 1, bptt):
        length = min(bptt, n - 1 - i)
        if drop_last and length < bptt:
            return
        yield stream[:, i : i + length], stream[:, i + 1 : i + 1 + length]


__all__ = ["SpanIndex", "TokenIds", "bucket_batches", "char_batch", "lm_segments", "lm_stream",
           "pad_batch"]
