"""Vocabularies: token <-> index tables for words, characters, tags and labels.

Specials come first, in the order given (by default `<pad>` = 0, `<unk>` = 1), then the tokens
by descending count with ties broken alphabetically, so the same data always gives the same
indices. A character vocabulary is a Vocab built over the characters of words
(`Vocab.build_chars`); tag and label sets use `Vocab.labels` (no specials, sorted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import DataError, did_you_mean

PAD = "<pad>"
UNK = "<unk>"
_FORMAT = "rnndsl.vocab/1"


class Vocab:
    """A token <-> index table: specials first, then `words` in the given order."""

    def __init__(
        self,
        words: Iterable[str],
        specials: Sequence[str] = (PAD, UNK),
        *,
        lowercase: bool = False,
        counts: Mapping[str, int] | None = None,
    ):
        self.specials: tuple[str, ...] = tuple(specials)
        self.lowercase = lowercase
        self._tokens: list[str] = [*self.specials, *words]
        self._index: dict[str, int] = {}
        for i, tok in enumerate(self._tokens):
            if tok in self._index:
                raise ValueError(f"token {tok!r} occurs twice in the vocabulary")
            self._index[tok] = i
        if PAD in self.specials and self.specials[0] != PAD:
            raise ValueError(f"{PAD!r} must be the first special so that it gets index 0")
        self.counts: dict[str, int] | None = dict(counts) if counts is not None else None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (PAD, UNK),
        lowercase: bool = False,
    ) -> Vocab:
        """Count tokens over sequences and keep those seen at least `min_count` times.

        `max_size` bounds the whole table, specials included. A token equal to a special (PTB's
        own `<unk>`) is not added again: it maps to the special.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < len(specials):
            raise ValueError(f"max_size={max_size} leaves no room for the {len(specials)} specials")
        counter: Counter[str] = Counter()
        for seq in sequences:
            counter.update([t.lower() for t in seq] if lowercase else seq)
        for s in specials:
            counter.pop(s, None)
        kept = [t for t, c in counter.items() if c >= min_count]
        kept.sort(key=lambda t: (-counter[t], t))
        if max_size is not None:
            kept = kept[: max_size - len(specials)]
        return cls(kept, specials, lowercase=lowercase, counts={t: counter[t] for t in kept})

    @classmethod
    def build_chars(
        cls,
        word_sequences: Iterable[Iterable[str]],
        min_count: int = 1,
        specials: Sequence[str] = (PAD, UNK),
        lowercase: bool = False,
    ) -> Vocab:
        """A character vocabulary over the words of each sequence."""
        return cls.build(
            (word for seq in word_sequences for word in seq),
            min_count=min_count,
            specials=specials,
            lowercase=lowercase,
        )

    @classmethod
    def labels(cls, items: Iterable[str | Iterable[str]]) -> Vocab:
        """A tag or label set without specials, sorted so that indices do not depend on order.

        `items` holds labels (strings) or tag sequences.
        """
        counter: Counter[str] = Counter()
        for item in items:
            counter.update([item] if isinstance(item, str) else item)
        return cls(sorted(counter), specials=(), counts=dict(counter))

    # -- lookup ------------------------------------------------------------------------------

    @property
    def tokens(self) -> list[str]:
        """All entries in index order, specials first."""
        return list(self._tokens)

    @property
    def words(self) -> list[str]:
        """The non-special entries in index order."""
        return self._tokens[len(self.specials) :]

    @property
    def pad_index(self) -> int | None:
        """Index of `<pad>` (always 0) or None."""
        return self._index.get(PAD) if PAD in self.specials else None

    @property
    def unk_index(self) -> int | None:
        """Index of `<unk>` or None; unknown tokens encode to it."""
        return self._index.get(UNK) if UNK in self.specials else None

    def _norm(self, tok: str) -> str:
        return tok.lower() if self.lowercase and tok not in self.specials else tok

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, tok: object) -> bool:
        return isinstance(tok, str) and self._norm(tok) in self._index

    def __iter__(self):
        return iter(self._tokens)

    def index(self, tok: str) -> int:
        """The index of `tok`, the unk index if unknown, or a DataError if there is no unk."""
        i = self._index.get(self._norm(tok))
        if i is not None:
            return i
        unk = self.unk_index
        if unk is None:
            raise DataError(
                f"{tok!r} is not in the vocabulary, which has no {UNK} entry",
                hint=did_you_mean(tok, self._index) if len(self._index) <= 1000 else None,
            )
        return unk

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Indices of tokens; unknown ones map to `<unk>` (a DataError if there is none)."""
        return [self.index(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of indices."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._tokens):
                raise IndexError(f"index {i} is outside the vocabulary of {len(self._tokens)}")
            out.append(self._tokens[i])
        return out

    # -- serialisation -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `Vocab.from_json(v.to_json()) == v`."""
        return {
            "format": _FORMAT,
            "specials": list(self.specials),
            "words": self.words,
            "lowercase": self.lowercase,
            "counts": None if self.counts is None else [self.counts.get(w, 0) for w in self.words],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vocab:
        """Rebuild a Vocab from `to_json` output; malformed input is a DataError."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise DataError(f"not a vocabulary: expected format {_FORMAT!r}, got {got!r}")
        specials, words, counts = data.get("specials"), data.get("words"), data.get("counts")
        if not _str_list(specials) or not _str_list(words):
            raise DataError("vocabulary JSON: 'specials' and 'words' must be lists of strings")
        if not isinstance(data.get("lowercase"), bool):
            raise DataError("vocabulary JSON: 'lowercase' must be true or false")
        if counts is not None and (
            not isinstance(counts, list)
            or len(counts) != len(words)
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
        ):
            raise DataError("vocabulary JSON: 'counts' must be null or one integer per word")
        try:
            return cls(
                words,
                specials,
                lowercase=data["lowercase"],
                counts=None if counts is None else dict(zip(words, counts)),
            )
        except ValueError as e:
            raise DataError(f"vocabulary JSON: {e}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (
            self._tokens == other._tokens
            and self.specials == other.specials
            and self.lowercase == other.lowercase
            and self.counts == other.counts
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._tokens[:6])
        more = ", ..." if len(self._tokens) > 6 else ""
        return f"Vocab({len(self)} entries: {head}{more})"


def _str_list(x: object) -> bool:
    return isinstance(x, list) and all(isinstance(t, str) for t in x)
