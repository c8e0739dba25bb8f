"""Tweets: a tokenizer for Twitter text and a reader for TweetEval's file layout.

TweetEval (Barbieri et al. 2020) keeps each task in a folder: `<split>_text.txt` holds one tweet
a line, line i of `<split>_labels.txt` beside it is tweet i's label id, and `mapping.txt` names
the ids (`id<TAB>name`, emoji: `id<TAB>emoji<TAB>name`). The text file's path names the split,
so the same reader serves train, val and test files and `rnndsl eval RUN path/test_text.txt`.

The tweet tokenizer follows DeepMoji's (Felbo et al. 2017, `deepmoji/tokenizer.py` and
`word_generator.py`): URLs, user mentions, hashtags, emoticons and each emoji (with its skin
tone, variation selector or ZWJ sequence; flags as pairs) are single tokens; a run of three or
more identical characters is shortened to two ("sooo" -> "soo", "!!!!" -> "!!"); URLs become
`<url>` and mentions `@user`, as TweetEval already writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .readers import Example, PathLike, iter_lines

URL_TOKEN = "<url>"
MENTION_TOKEN = "@user"

# an emoji: a pictograph with an optional variation selector / skin tone, ZWJ-joined sequences
# of them, a keycap, or a flag (two regional indicators)
_PICTO = (
    "\U0001f000-\U0001faff"  # mahjong .. symbols and pictographs extended-A
    "\u2600-\u27bf"  # miscellaneous symbols, dingbats (heart, sun, sparkles)
    "\u2300-\u23ff"  # miscellaneous technical (watch, hourglass)
    "\u2b00-\u2bff"  # arrows, stars
    "\u2190-\u21ff"  # arrows
    "\u3030\u303d\u3297\u3299\u00a9\u00ae\u203c\u2049\u2122\u2139"
)
_MOD = "[\ufe0f\ufe0e\U0001f3fb-\U0001f3ff\u20e3]*"
_EMOJI = (
    rf"(?:[\U0001f1e6-\U0001f1ff]{{2}}"
    rf"|[{_PICTO}]{_MOD}(?:\u200d[{_PICTO}]{_MOD})*"
    rf"|[0-9#*]\ufe0f?\u20e3)"
)
_EMOTICON = (
    r"(?:<3+|</3"
    r"|[<>]?[:;=8xX][\-o\*']?[\)\]\(\[dDpP/\\:\}\{@\|]+"  # :) ;-P =D
    r"|[\)\]\(\[dDpP/\\]+[\-o\*']?[:;=8])"  # (: D:
)
_TOKEN = re.compile(
    "|".join(
        (
            r"(?P<url>(?:https?://|www\.)\S+)",
            r"(?P<mention>@\w+)",
            r"(?P<hashtag>#\w+)",
            rf"(?P<emoji>{_EMOJI})",
            rf"(?P<emoticon>(?<![\w]){_EMOTICON}(?![\w]))",
            r"(?P<word>\w+(?:['’]\w+)*)",
            r"(?P<punct>(?P<p>[^\w\s])(?P=p)*)",  # a run of one punctuation mark ("!!!", "...")
        )
    )
)
_ELONGATED = re.compile(r"(.)\1{2,}", re.DOTALL)
_INVISIBLE = re.compile("[\ufe0f\ufe0e\u200d\u200b\u2060]+")  # stray selectors and joiners


def shorten(word: str) -> str:
    """Three or more identical consecutive characters become two (DeepMoji's `shorten_word`)."""
    return _ELONGATED.sub(r"\1\1", word)


def tokenize_tweet(text: str, lowercase: bool = False) -> tuple[str, ...]:
    """The tokens of one tweet: words, `<url>`, `@user`, hashtags, emoticons, one token per emoji,
    punctuation runs; elongations shortened; lower-cased with `lowercase` (emoji untouched)."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        tok = m.group(0)
        if kind == "url":
            out.append(URL_TOKEN)
            continue
        if kind == "mention":
            out.append(MENTION_TOKEN)
            continue
        if kind == "emoji":
            out.append(tok)
            continue
        tok = _INVISIBLE.sub("", tok)
        if not tok:
            continue
        if kind == "emoticon":
            out.append(tok)
            continue
        tok = shorten(tok)
        out.append(tok.lower() if lowercase else tok)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# TweetEval's layout


@dataclass(frozen=True)
class LabelName:
    """One line of `mapping.txt`: the id, the name and (emoji task) the emoji."""

    id: int
    name: str
    emoji: str = ""


def labels_path(text_path: PathLike) -> Path:
    """`.../val_labels.txt` for `.../val_text.txt` (gzip names too: `_text.txt.gz`)."""
    p = Path(text_path)
    if "_text" not in p.name:
        raise DataError(
            f"{p}: a TweetEval text file's name has '_text' in it (train_text.txt), "
            "so that its labels file can be found beside it",
            hint="name the files <split>_text.txt and <split>_labels.txt",
        )
    head, _, tail = p.name.rpartition("_text")
    return p.with_name(f"{head}_labels{tail}")


def mapping_path(text_path: PathLike) -> Path:
    """The `mapping.txt` (or `mapping.txt.gz`) in the text file's folder."""
    folder = Path(text_path).parent
    for name in ("mapping.txt", "mapping.txt.gz"):
        if (folder / name).is_file():
            return folder / name
    return folder / "mapping.txt"


def read_mapping(path: PathLike) -> list[LabelName]:
    """`id<TAB>name` (or `id<TAB>emoji<TAB>name`) lines; ids 0 .. n-1, each once."""
    out: list[LabelName] = []
    for n, line in iter_lines(path):
        fields = [f.strip() for f in line.split("\t")]
        while fields and not fields[-1]:
            fields.pop()  # TweetEval's emoji mapping ends its lines with a tab
        if not fields:
            continue
        if len(fields) not in (2, 3) or not fields[0].isdigit():
            raise DataError(
                f"{path}:{n}: expected 'id<TAB>name' or 'id<TAB>emoji<TAB>name', "
                f"found {line[:40]!r}"
            )
        if int(fields[0]) != len(out):
            raise DataError(f"{path}:{n}: label id {fields[0]}, expected {len(out)}",
                            hint="the ids count 0, 1, 2, ... one per line")
        name = fields[-1].strip("_") or fields[-1]
        out.append(LabelName(int(fields[0]), name, fields[1] if len(fields) == 3 else ""))
    if len(out) < 2:
        raise DataError(f"{path}: {len(out)} label(s), a classification task needs at least 2")
    names = [lab.name for lab in out]
    dup = next((x for x in names if names.count(x) > 1), None)
    if dup is not None:
        raise DataError(f"{path}: the label name {dup!r} appears twice")
    return out


def read_tweeteval(path: PathLike, tokenize: str = "tweet", lowercase: bool = False,
                   encoding: str = "utf-8") -> list[Example]:
    """Read `<split>_text.txt` with its labels beside it into Examples (label = mapping name).

    Line i of the text file pairs with line i of the labels file; a count mismatch, a label id
    outside the mapping or an empty tweet is a DataError naming file:line.
    """
    if tokenize not in ("tweet", "whitespace"):
        raise ValueError(f"tokenize={tokenize!r} is not 'tweet' or 'whitespace'")
    mapping = read_mapping(mapping_path(path))
    names = [lab.name for lab in mapping]
    lab_path = labels_path(path)
    labels: list[tuple[int, str]] = [(n, line.strip()) for n, line in iter_lines(lab_path)]
    while labels and not labels[-1][1]:
        labels.pop()
    texts = list(iter_lines(path, encoding))
    while texts and not texts[-1][1].strip():
        texts.pop()
    if len(texts) != len(labels):
        raise DataError(
            f"{path}: {len(texts):,} tweets, but {lab_path.name} has {len(labels):,} labels",
            hint="line i of the labels file is the label of tweet i",
        )
    out: list[Example] = []
    for (n, text), (ln, lab) in zip(texts, labels):
        if not lab.isdigit() or int(lab) >= len(names):
            raise DataError(
                f"{lab_path}:{ln}: label {lab!r} is not an id of {mapping_path(path).name} "
                f"(0 to {len(names) - 1})"
            )
        words = tokenize_tweet(text, lowercase) if tokenize == "tweet" else tuple(
            (text.lower() if lowercase else text).split())
        if not words:
            raise DataError(f"{path}:{n}: an empty tweet", hint="every line holds one tweet")
        out.append(Example(words, label=names[int(lab)], source=str(path), line=n))
    if not out:
        raise DataError(f"{path}: no tweets in the file")
    return out


def official_metric(mapping: list[LabelName]) -> tuple[str, str | None]:
    """TweetEval's metric for a task: ("macro_f1", None), or for a two-class task (irony)
    ("f1", name of label 1): the F1 of the class with id 1."""
    if len(mapping) == 2:
        return "f1", mapping[1].name
    return "macro_f1", None


__all__ = ["LabelName", "labels_path", "mapping_path", "official_metric", "read_mapping",
           "read_tweeteval", "shorten", "tokenize_tweet"]
