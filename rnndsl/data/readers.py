"""Dataset readers: CoNLL-U, CoNLL column files, classification files, plain text.

Every reader takes a plain or gzip-compressed file (told apart by its first two bytes, so a
`.gz` name is not required), splits it on b"\\n" only and decodes each line on its own. That
way an undecodable byte is reported as file:line, and a Windows-1252 file such as rt-polarity
is never split at U+0085 the way `str.splitlines` would split it. Encodings must therefore be
ASCII-compatible (UTF-8, cp1252, latin-1; not UTF-16). Bad input raises `DataError` whose message
starts with `path:line:`.
"""

from __future__ import annotations

import csv
import gzip
import os
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .. import limits
from ..errors import DataError, did_you_mean

PathLike = str | os.PathLike

_GZIP_MAGIC = b"\x1f\x8b"
_CONLLU_COLUMNS = "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC"


@dataclass(frozen=True)
class Example:
    """One example: words, optional per-word tags or one label, and where it starts in its file."""

    words: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    label: str | None = None
    source: str = ""
    line: int = 0
    feats: tuple[str, ...] | None = None  # an extra input column per token (e.g. the POS tag)

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.words):
            raise ValueError(f"{len(self.words)} words but {len(self.tags)} tags")
        # a tagged or labelled example is padded into a batch, so its length is bounded; the
        # lines of a language model's text are cut into a stream and may be long
        if (self.tags is not None or self.label is not None) and (
            len(self.words) > limits.max_sentence_tokens()
        ):
            raise DataError(
                f"{self.source}:{self.line}: "
                + limits.over(
                    "the number of tokens of this example",
                    len(self.words),
                    limits.max_sentence_tokens(),
                    "max_sentence_tokens",
                    "RNNDSL_MAX_SENTENCE_TOKENS",
                ),
                hint="is a blank line missing between sentences?" if self.tags is not None
                else "is the file one sentence per line?",
            )


# ---------------------------------------------------------------------------------------------
# opening files and reading lines


def _missing_file(path: Path) -> DataError:
    """The error for a path that does not exist, with a did-you-mean hint from its directory."""
    parent = path.parent
    hint = None
    if parent.is_dir():
        try:
            hint = did_you_mean(path.name, os.listdir(parent))
        except OSError:
            hint = None
    else:
        hint = f"the directory '{parent}' does not exist either"
    return DataError(f"{path}: no such file", hint=hint)


def open_binary(path: PathLike) -> BinaryIO:
    """Open a plain or gzip file for binary reading; a missing file is a DataError."""
    p = Path(path)
    why = limits.not_regular(p)
    if why is not None and not p.is_dir():  # a folder: the IsADirectoryError below
        raise DataError(f"{p}: cannot read: {why}", hint="give the path of a regular file")
    try:
        with open(p, "rb") as f:
            magic = f.read(2)
        if magic == _GZIP_MAGIC:
            return gzip.open(p, "rb")  # type: ignore[return-value]
        return open(p, "rb")
    except FileNotFoundError:
        raise _missing_file(p) from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a directory, expected a file") from None
    except OSError as e:
        raise DataError(f"{p}: cannot open ({e.strerror or e})") from None


def iter_lines(path: PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without its line end) for each line of a file."""
    try:
        "".encode(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    line_limit, data_limit = limits.max_line_bytes(), limits.max_data_bytes()
    with open_binary(path) as f:
        n = total = 0
        while True:
            try:
                raw = f.readline(line_limit + 1)  # binary readline splits on b"\n" only
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"{path}:{n + 1}: corrupt or truncated gzip data ({e})") from None
            if not raw:
                return
            n += 1
            total += len(raw)
            if len(raw) > line_limit:
                raise DataError(
                    f"{path}:{n}: "
                    + limits.over("the length of this line in bytes", len(raw), line_limit,
                                  "max_line_bytes", "RNNDSL_MAX_LINE_BYTES")
                    + " (and it goes on)",
                    hint="is this a text file with one record a line?",
                )
            if total > data_limit:
                raise DataError(
                    f"{path}:{n}: "
                    + limits.over("the size of the file (bytes, decompressed)", total,
                                  data_limit, "max_data_bytes", "RNNDSL_MAX_DATA_BYTES"),
                )
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if b"\x00" in raw:
                raise DataError(
                    f"{path}:{n}: binary content (a NUL byte at column {raw.index(0) + 1})",
                    hint="give a text file; a compressed file other than gzip must be "
                    "decompressed first",
                )
            if b"\r" in raw:
                raise DataError(
                    f"{path}:{n}: a carriage return (\\r) inside the line at column "
                    f"{raw.index(13) + 1}: the file seems to end its lines with \\r only",
                    hint="convert the line ends to \\n, e.g. tr '\\r' '\\n' < in > out",
                )
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.start + 1].hex()
                raise DataError(
                    f"{path}:{n}: cannot decode byte 0x{bad} at column {e.start + 1} as {encoding}",
                    hint='pass the file\'s real encoding, e.g. encoding="cp1252" for '
                    "Windows-1252 text such as rt-polarity",
                ) from None
            if n == 1 and text.startswith("\ufeff"):
                text = text[1:]  # a byte-order mark would otherwise become part of a token
            yield n, text


def _preview(text: str, width: int = 40) -> str:
    """A short quoted form of a line for error messages."""
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Check a keyword argument against its allowed values."""
    if value not in choices:
        hint = did_you_mean(str(value), choices)
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(
            f"{name}={value!r} is not one of {allowed}" + (f"; {hint}" if hint else "")
        )
    return value


def _nonempty(examples: list[Example], path: PathLike, what: str) -> list[Example]:
    """Fail on a dataset without examples."""
    if not examples:
        raise DataError(
            f"{path}: no examples found (the file is empty or holds only {what})",
            hint="check the path and the format argument",
        )
    return examples


# ---------------------------------------------------------------------------------------------
# tagging formats


def read_conllu(path: PathLike, tags: str = "upos", encoding: str = "utf-8") -> list[Example]:
    """Read a CoNLL-U file into one Example per sentence: FORM words with UPOS or XPOS tags.

    Comment lines and multiword-token ranges (ID `19-20`) and empty nodes (ID `8.1`) are skipped;
    a blank line ends a sentence. `Example.line` is the sentence's first line (its comments
    included).
    """
    column = {"upos": 3, "xpos": 4}[_choice("tags", tags, ("upos", "xpos"))]
    out: list[Example] = []
    words: list[str] = []
    tag_list: list[str] = []
    start = 0

    def flush() -> None:
        nonlocal words, tag_list, start
        if words:
            out.append(Example(tuple(words), tuple(tag_list), source=str(path), line=start))
        words, tag_list, start = [], [], 0

    for n, line in iter_lines(path, encoding):
        if not line.strip():
            flush()
            continue
        if not start:
            start = n
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            if len(cols) == 1 and " " in line:
                hint = "CoNLL-U columns are separated by tabs; this line seems to use spaces"
            elif len(cols) > 10:
                hint = "no field may contain a tab"
            else:
                hint = f"a token line has {_CONLLU_COLUMNS}; write _ for an empty field"
            raise DataError(
                f"{path}:{n}: expected 10 tab-separated columns (CoNLL-U), found {len(cols)}",
                hint=hint,
            )
        token_id = cols[0]
        if "-" in token_id or "." in token_id:
            continue
        if not token_id.isdigit():
            raise DataError(f"{path}:{n}: token ID {token_id!r} is not a number (CoNLL-U column 1)")
        words.append(cols[1])
        tag_list.append(cols[column])
    flush()
    return _nonempty(out, path, "comments and blank lines")


def _column(index: int, width: int) -> int | None:
    """A possibly negative column index resolved against a row width, or None if out of range."""
    if -width <= index < width:
        return index % width
    return None


def read_conll(
    path: PathLike,
    word_column: int = 0,
    tag_column: int | None = -1,
    sep: str | None = None,
    encoding: str = "utf-8",
    feature_column: int | None = None,
) -> list[Example]:
    """Read a CoNLL column file (`word POS chunk`, one token a line) into one Example per sentence.

    Columns are split on `sep` (None: any whitespace) and counted from 0; negative indices count
    from the end, as in Python. `tag_column=None` reads words only; `feature_column` (e.g. 1, the
    POS tag of CoNLL-2000) is kept as `Example.feats`. A blank line ends a sentence;
    `-DOCSTART-` lines are skipped. All rows of a sentence must have the same number of columns.
    """
    out: list[Example] = []
    words: list[str] = []
    tag_list: list[str] = []
    feat_list: list[str] = []
    start = width = 0
    word_i = tag_i = feat_i = 0

    def flush() -> None:
        nonlocal words, tag_list, feat_list, start
        if words:
            tags = tuple(tag_list) if tag_column is not None else None
            feats = tuple(feat_list) if feature_column is not None else None
            out.append(Example(tuple(words), tags, source=str(path), line=start, feats=feats))
        words, tag_list, feat_list, start = [], [], [], 0

    for n, line in iter_lines(path, encoding):
        if not line.strip():
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            flush()
            continue
        cols = line.split(sep)
        if not words:
            start, width = n, len(cols)
            word_i, tag_i = _check_columns(path, n, width, word_column, tag_column)
            if feature_column is not None:
                feat_i = _check_columns(path, n, width, feature_column, None)[0]
        elif len(cols) != width:
            raise DataError(
                f"{path}:{n}: line has {len(cols)} columns, but the first line of its sentence "
                f"(line {start}) has {width}",
                hint="all token lines of a sentence need the same columns; "
                "a blank line ends a sentence",
            )
        words.append(cols[word_i])
        if tag_column is not None:
            tag_list.append(cols[tag_i])
        if feature_column is not None:
            feat_list.append(cols[feat_i])
    flush()
    return _nonempty(out, path, "blank lines and -DOCSTART- lines")


def _check_columns(
    path: PathLike, n: int, width: int, word_column: int, tag_column: int | None
) -> tuple[int, int]:
    """Resolve word and tag column indices for rows of `width` columns, or raise a DataError."""
    noun = "column" if width == 1 else "columns"
    word_i = _column(word_column, width)
    if word_i is None:
        raise DataError(
            f"{path}:{n}: line has {width} {noun}, word_column={word_column}",
            hint="columns are counted from 0; negative numbers count from the end",
        )
    if tag_column is None:
        return word_i, 0
    tag_i = _column(tag_column, width)
    if tag_i is None:
        raise DataError(
            f"{path}:{n}: line has {width} {noun}, tag_column={tag_column}",
            hint="columns are counted from 0; negative numbers count from the end",
        )
    if tag_i == word_i:
        raise DataError(
            f"{path}:{n}: line has {width} {noun}, so word_column={word_column} and "
            f"tag_column={tag_column} are the same column",
            hint="is the tag column missing? pass tag_column=None to read words only",
        )
    return word_i, tag_i


# ---------------------------------------------------------------------------------------------
# classification formats


def _tokens(text: str, lowercase: bool) -> tuple[str, ...]:
    """Whitespace tokens of a sentence, optionally lower-cased."""
    return tuple((text.lower() if lowercase else text).split())


def read_classification(
    path: PathLike,
    format: str = "lines",
    label_column: str = "label",
    text_column: str = "sentence",
    encoding: str = "utf-8",
    lowercase: bool = False,
    tokenize: str = "whitespace",
) -> list[Example]:
    """Read a sentence-classification file into Examples with `label` set.

    format="lines": `label<TAB or space>sentence` per line (SST `stsa.binary.*`).
    format="tsv" / "csv": a header row naming the columns (GLUE SST-2: `sentence<TAB>label`);
    TSV fields are split on tabs with no quoting, CSV follows RFC 4180 quoting.
    Sentences are split on whitespace. Empty lines are skipped.
    """
    _choice("format", format, ("lines", "tsv", "csv"))
    _choice("tokenize", tokenize, ("whitespace",))
    if format == "lines":
        return _read_label_lines(path, encoding, lowercase)
    return _read_table(path, format, label_column, text_column, encoding, lowercase)


def _read_label_lines(path: PathLike, encoding: str, lowercase: bool) -> list[Example]:
    """Read `label sentence` lines."""
    out: list[Example] = []
    for n, line in iter_lines(path, encoding):
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(
                f"{path}:{n}: expected '<label> <sentence>', found only one field: "
                f"{_preview(parts[0])}",
                hint="each line is a label, a space or tab, then the sentence",
            )
        label, text = parts
        out.append(Example(_tokens(text, lowercase), label=label, source=str(path), line=n))
    return _nonempty(out, path, "blank lines")


def _table_rows(path: PathLike, format: str, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for the non-empty records of a TSV or CSV file."""
    lines = iter_lines(path, encoding)
    if format == "tsv":
        for n, line in lines:
            if line.strip():
                yield n, line.split("\t")
        return
    # csv needs the line ends back to parse quoted fields that span lines
    reader = csv.reader((line + "\n" for _, line in lines), strict=True)
    while True:
        first = reader.line_num + 1  # the line the next record starts on
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if "end of data" in str(e) or reader.line_num > first:  # a quote runs on
                raise DataError(
                    f"{path}:{first}: malformed CSV: the quote opened in the record on this "
                    f"line is not closed (the file ends, or breaks, at line {reader.line_num})",
                    hint='close the quote; a quote inside a field is written ""',
                ) from None
            raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
        if any(field.strip() for field in row):
            yield first, row


def _read_table(
    path: PathLike,
    format: str,
    label_column: str,
    text_column: str,
    encoding: str,
    lowercase: bool,
) -> list[Example]:
    """Read a TSV or CSV file with a header row."""
    rows = _table_rows(path, format, encoding)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise DataError(f"{path}: no header row (the file is empty)") from None
    header = [h.strip() for h in header]
    label_i = _header_index(path, header_line, header, label_column, "label_column")
    text_i = _header_index(path, header_line, header, text_column, "text_column")
    out: list[Example] = []
    for n, row in rows:
        if len(row) != len(header):
            hint = "a sentence may contain a tab" if format == "tsv" else "check the quoting"
            raise DataError(
                f"{path}:{n}: row has {len(row)} fields, but the header (line {header_line}) "
                f"has {len(header)}",
                hint=hint,
            )
        label = row[label_i].strip()
        if not label:
            raise DataError(f"{path}:{n}: empty label in column '{label_column}'")
        words = _tokens(row[text_i], lowercase)
        if not words:
            raise DataError(f"{path}:{n}: empty text in column '{text_column}'")
        out.append(Example(words, label=label, source=str(path), line=n))
    return _nonempty(out, path, "a header")


def _header_index(path: PathLike, line: int, header: list[str], name: str, arg: str) -> int:
    """The index of a named column, or a DataError listing the available ones."""
    if name in header:
        return header.index(name)
    hint = did_you_mean(name, header) or f"pass {arg}= one of the columns"
    columns = ", ".join(repr(h) for h in header)
    raise DataError(
        f"{path}:{line}: no column '{name}' in the header; columns: {columns}", hint=hint
    )


def read_labelled_files(
    paths: Sequence[PathLike],
    labels: Sequence[str],
    encoding: str = "utf-8",
    lowercase: bool = False,
) -> list[Example]:
    """Read one-sentence-a-line files where the label is the file's (rt-polarity `.pos`/`.neg`).

    rt-polarity is Windows-1252: pass encoding="cp1252". Blank lines are skipped; a file with no
    sentences is a DataError.
    """
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    out: list[Example] = []
    for path, label in zip(paths, labels):
        part: list[Example] = []
        for n, line in iter_lines(path, encoding):
            words = _tokens(line, lowercase)
            if words:
                part.append(Example(words, label=label, source=str(path), line=n))
        out.extend(_nonempty(part, path, "blank lines"))
    return out


# ---------------------------------------------------------------------------------------------
# language-model text


def read_text(path: PathLike, eos: str | None = "<eos>", encoding: str = "utf-8",
              tokens: str = "words") -> list[Example]:
    """Read plain text for a language model: one Example per line, split on whitespace.

    `eos` is appended to every line when not None, so a blank line contributes one `eos` token
    (as the usual PTB readers count it); with eos=None blank lines are skipped.
    tokens="chars": the tokens are the line's characters, each run of whitespace one " " and
    none at the ends (a character-level language model).
    """
    _choice("tokens", tokens, ("words", "chars"))
    out: list[Example] = []
    for n, line in iter_lines(path, encoding):
        words = line.split()
        if tokens == "chars":
            words = list(" ".join(words))
        if eos is not None:
            words.append(eos)
        elif not words:
            continue
        out.append(Example(tuple(words), source=str(path), line=n))
    return _nonempty(out, path, "blank lines")


# ---------------------------------------------------------------------------------------------
# checks across splits


def check_tag_scheme(examples: Sequence[Example], scheme: str) -> None:
    """Every tag of CoNLL column examples is 'O' or P-TYPE of ``scheme`` (bio, iob1, iobes), or
    a DataError at the tag's own line (a token a line, so the sentence's first line + i)."""
    if scheme not in ("bio", "iob1", "iobes"):
        return
    prefixes = ("B", "I", "E", "S") if scheme == "iobes" else ("B", "I")
    seen: set[str] = set()
    for ex in examples:
        for i, tag in enumerate(ex.tags or ()):
            if tag in seen or tag == "O":
                continue
            head, sep, kind = tag.partition("-")
            if not sep or head not in prefixes or not kind:
                want = ", ".join(f"{p}-TYPE" for p in prefixes)
                raise DataError(
                    f"{ex.source}:{ex.line + i}: tag {tag!r} is not a {scheme.upper()} tag",
                    hint=f"{scheme.upper()} tags are 'O' or {want}; declare the data's scheme "
                    "with conll(..., scheme=...) (none: no constraints)",
                )
            seen.add(tag)


def check_labels(train: Sequence[Example], dev: Sequence[Example], what: str = "tags",
                 split: str = "dev") -> list[str]:
    """Warnings for tags (or labels) in `dev` (or the `split` named) that `train` never has, at
    their first place there."""
    _choice("what", what, ("tags", "label"))

    def labels_of(ex: Example) -> Sequence[str]:
        if what == "label":
            return () if ex.label is None else (ex.label,)
        return ex.tags or ()

    seen = {lab for ex in train for lab in labels_of(ex)}
    first: dict[str, Example] = {}
    count: Counter[str] = Counter()
    for ex in dev:
        for lab in labels_of(ex):
            if lab not in seen:
                count[lab] += 1
                first.setdefault(lab, ex)
    noun = "tag" if what == "tags" else "label"
    warnings = []
    for lab, ex in first.items():
        times = "once" if count[lab] == 1 else f"{count[lab]} times"
        warnings.append(
            f"{ex.source}:{ex.line}: {noun} {lab!r} never occurs in the training data "
            f"({times} in {split})"
        )
    return warnings
