"""Host-side batching: padding, length buckets, character batches, language-model streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.data import Vocab, bucket_batches, char_batch, lm_segments, lm_stream, pad_batch
from rnndsl.errors import DataError


def test_pad_batch():
    ids, lengths = pad_batch([[5, 6, 7], [8], []], pad=0)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    ids, _ = pad_batch([[1]], pad=-1, dtype=np.int32)
    assert ids.dtype == np.int32
    ids, lengths = pad_batch([])
    assert ids.shape == (0, 0) and lengths.shape == (0,)


def test_bucket_batches_in_order_without_rng():
    assert bucket_batches([3, 1, 2, 5, 4], 2, None) == [[0, 1], [2, 3], [4]]
    assert bucket_batches([], 2, None) == []


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 60), max_size=200),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
)
def test_bucket_batches_properties(lengths, batch_size, width, seed):
    batches = bucket_batches(lengths, batch_size, np.random.default_rng(seed), bucket_width=width)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert all(isinstance(i, int) for i in flat)
    again = bucket_batches(lengths, batch_size, np.random.default_rng(seed), bucket_width=width)
    assert again == batches
    # within a window the batches are consecutive runs of the length-sorted order
    for b in batches:
        assert [lengths[i] for i in b] == sorted(lengths[i] for i in b)


def test_bucket_batches_group_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=400).tolist()
    batches = bucket_batches(lengths, 10, np.random.default_rng(1), bucket_width=100)
    # one window holds everything: the batches tile the sorted lengths without overlap
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:]))
    # and the order of the batches is shuffled
    assert [min(lengths[i] for i in b) for b in batches] != [lo for lo, _ in spans]
    other = bucket_batches(lengths, 10, np.random.default_rng(2), bucket_width=100)
    assert other != batches


def test_bucket_batches_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        bucket_batches([1], 0, None)
    with pytest.raises(ValueError, match="bucket_width"):
        bucket_batches([1], 1, None, bucket_width=0)


def test_char_batch():
    chars = Vocab.build_chars([["ab", "ba", "c"]])  # <pad> <unk> a b c
    ids, lengths = char_batch([["ab", "c"], ["cab"], []], chars)
    assert ids.shape == (3, 2, 3) and ids.dtype == np.int64
    np.testing.assert_array_equal(
        ids,
        [
            [[2, 3, 0], [4, 0, 0]],
            [[4, 2, 3], [0, 0, 0]],
            [[0, 0, 0], [0, 0, 0]],
        ],
    )
    np.testing.assert_array_equal(lengths, [[2, 1], [3, 0], [0, 0]])
    ids, lengths = char_batch([["abcab", "z"]], chars, max_word_len=2)
    np.testing.assert_array_equal(ids, [[[2, 3], [1, 0]]])
    np.testing.assert_array_equal(lengths, [[2, 1]])


def test_lm_stream_and_segments():
    stream = lm_stream(np.arange(23), 3)
    np.testing.assert_array_equal(stream, np.arange(21).reshape(3, 7))
    segs = list(lm_segments(stream, 4))
    assert [x.shape for x, _ in segs] == [(3, 4), (3, 2)]
    np.testing.assert_array_equal(segs[0][0], [[0, 1, 2, 3], [7, 8, 9, 10], [14, 15, 16, 17]])
    np.testing.assert_array_equal(segs[0][1], [[1, 2, 3, 4], [8, 9, 10, 11], [15, 16, 17, 18]])
    np.testing.assert_array_equal(segs[1][0], [[4, 5], [11, 12], [18, 19]])
    np.testing.assert_array_equal(segs[1][1], [[5, 6], [12, 13], [19, 20]])
    assert len(list(lm_segments(stream, 4, drop_last=True))) == 1
    assert len(list(lm_segments(stream, 3))) == 2  # 6 input positions: exactly two of 3


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 300), st.integers(1, 7), st.integers(1, 40))
def test_lm_segments_cover_the_stream_once(n, batch_size, bptt):
    if n // batch_size < 2:
        with pytest.raises(DataError, match="too short"):
            lm_stream(np.arange(n), batch_size)
        return
    stream = lm_stream(np.arange(n), batch_size)
    segs = list(lm_segments(stream, bptt))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in segs], axis=1), stream[:, :-1])
    np.testing.assert_array_equal(np.concatenate([y for _, y in segs], axis=1), stream[:, 1:])
    assert all(x.shape[1] == bptt for x, _ in segs[:-1])


def test_lm_arguments():
    with pytest.raises(ValueError, match="1-D"):
        lm_stream(np.zeros((2, 2)), 1)
    with pytest.raises(ValueError, match="bptt"):
        list(lm_segments(np.zeros((2, 5)), 0))


def test_synthetic_first_token_and_first_symbol_tasks():
    from rnndsl.data.dataset import synthetic_examples

    tok = synthetic_examples({"task": "first_token", "n": 7, "vocab": 3, "size": 50}, "train")
    sym = synthetic_examples({"task": "first_symbol", "n": 7, "size": 50}, "train")
    dev = synthetic_examples({"task": "first_symbol", "n": 7, "size": 50}, "dev")
    for exs in (tok, sym):
        assert len(exs) == 50 and all(len(e.words) == 8 for e in exs)
        assert all(e.label == e.words[0] and e.label in ("A", "B") for e in exs)
    assert {w for e in tok for w in e.words[1:]} <= {"d0", "d1", "d2"}
    assert {w for e in sym for w in e.words[1:]} == {"A", "B"}  # the distractors look like labels
    assert len(dev) == 200 and [e.words for e in dev[:5]] != [e.words for e in sym[:5]]


def test_span_batches_run_longest_first_and_point_at_their_words():
    # the hierarchical model's inner batch of spans is sorted like the characters are, so the
    # span encoder runs packed; each span still indexes its own words and outer slot
    from rnndsl.data import dataset
    from rnndsl.data.readers import Example

    data = dataset.TaskData("toy", "synthetic", {"task": "first_token", "size": 20})
    exs = [Example(("a", "b", ".", "c", "d", "e", "f", "!", "g")), Example(("h", ",", "i", "j"))]
    sp = data._spans(exs, 2)
    index, lens, outer = sp.index, sp.lengths, sp.outer_index
    assert list(lens) == sorted(lens, reverse=True) and sorted(lens) == [1, 2, 2, 3, 5]
    B = 2
    for i, n in enumerate(lens):
        rows = index[:n, i]
        b, k = outer[i] % B, outer[i] // B
        start, end = dataset.span_bounds(exs[b].words)[k]
        assert end - start == n
        assert [exs[b].words[r // B] for r in rows] == list(exs[b].words[start:end])
        assert all(r % B == b for r in rows)
    assert sp.n_spans.tolist() == [3, 2]
