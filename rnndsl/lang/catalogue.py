"""The catalogue: every layer, reader and setting of the language, declared in one place.

This module declares the readers, the settings and the diagnostic kinds, and re-exports the
layers (layers.py, whose recurrent layers come from the cell table cells.py) and the value
types (params.py), so that the rest of the package reads one namespace, ``C.LAYERS``.

A layer is a ``LayerDef``: its parameters (type, default, range), a shape rule (input type ->
output type, raising ``Mismatch`` with a message a person can act on), a parameter-count rule for
the summary table, and a short doc. The checker, the IR builder, the summary and
``docs/language.md`` all read this table; adding a simple layer means adding one entry there
(see docs/adding_a_layer.md). Structural layers (stack, bi, skip, concat, spans) are declared
there too, but the checker gives them their meaning, because they take layers or pipelines as
arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import limits

# The rest of the catalogue, read through this module as C.<name>: the layers (layers.py, built
# from the cell table cells.py) and the value types (params.py).
from .layers import CATEGORY_TITLES as CATEGORY_TITLES
from .layers import LAYERS as LAYERS
from .layers import UNI_CELLS as UNI_CELLS
from .layers import LayerDef as LayerDef
from .layers import Mismatch as Mismatch
from .layers import StageIn as StageIn
from .layers import _mlp_sizes as _mlp_sizes
from .layers import layers_by_category as layers_by_category
from .params import (  # the value types, declared in params.py (see also cells.py)
    COLUMN,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    REQUIRED,  # noqa: F401 - read as C.REQUIRED by the checker (re-exported below too)
    SEED,
    Bool,
    DefinitionName,
    Encoding,
    Enum,
    Float,
    Func,
    FuncDef,
    Int,
    ListOf,
    Nothing,
    OneOf,
    Param,
    Path,
    Range,
    Text,
    ValueType,
)
from .params import PRETRAINED_VECTORS as PRETRAINED_VECTORS
from .params import SIZE as SIZE
from .params import FieldArg as FieldArg
from .params import LayerArg as LayerArg
from .params import PipelineArg as PipelineArg
from .params import PretrainedVectors as PretrainedVectors
from .params import Vectors as Vectors

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
_TEST = Param("test", OneOf((Path(), Nothing())), None,
               "test file: scored once at the end with the selected weights, reported apart "
               "from dev; never used for early stopping or selection")
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
                _TEST,
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
                _TEST,
                Param("word_column", Int(COLUMN), 0, "column of the word (0-based)"),
                Param("tag_column", Int(COLUMN), -1,
                      "column of the tag; negative counts from the end"),
                Param(
                    "feature_column",
                    OneOf((Int(COLUMN), Nothing())),
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
                _TEST,
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
                Param("test", OneOf((ListOf(Path(), 1), Nothing())), None,
                      "one test file per label (scored once at the end, never for selection)"),
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
                _TEST,
                Param("eos", Text(), "<eos>", "the token appended to every line"),
                Param("tokens", Enum(("words", "chars")), "words",
                      "words: split on whitespace; chars: every character is a token (a run "
                      "of spaces is one space token), a character-level language model"),
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
                Param("size", Int(Range(lo=1, hi=limits.MAX_SYNTHETIC_SIZE)), 2000,
                      "number of training sequences"),
                Param("seed", Int(SEED), 0, "random seed of the generator"),
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
                Param("patience", Int(Range(lo=0, hi=limits.MAX_COUNT)), 1,
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
        SettingDef("seed", Int(SEED), 0, "random seed; the same seed repeats a run exactly"),
        SettingDef(
            "bptt",
            Int(POSITIVE_INT),
            35,
            "language models only: unroll length of truncated BPTT (the state carries over "
            "from one window to the next); other models take no bptt",
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
            "also evaluate on dev every N steps (counted over the whole run), each a line of "
            "metrics.jsonl with its `step`; the best epoch and early stopping still go by the "
            "evaluation after each epoch (none: only that one)",
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
            "what `rnndsl run` reports after training, with the selected weights, as "
            "eval_<split>_<metric> in metrics.json (default: perplexity for language models, "
            "f1 and accuracy for chunk tags, else accuracy)",
        ),
        SettingDef("split", Enum(("dev", "train")), "dev",
                   "which split the eval statement scores"),
    )
}

OUTPUT_SETTINGS: dict[str, SettingDef] = {
    s.key: s
    for s in (
        SettingDef(
            "dir",
            OneOf((Path(folder=True, must_exist=False), Nothing())),
            None,
            "the run folder, relative to the spec (`rnndsl run --out` overrides it; "
            "default: runs/SPEC-DATE-TIME in the current folder)",
        ),
        SettingDef(
            "predictions",
            Bool(),
            True,
            "write the dev predictions (predictions.dev.txt for taggers, .tsv for classifiers; "
            "a language model has none)",
        ),
        SettingDef("plot", Bool(), True, "draw the training curves (curve.png)"),
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
    "ModelTooLarge": "A model has more parameters than rnndsl.limits.MAX_PARAMETERS, or one "
    "training step would need more memory than this machine has (the estimate `check` prints).",
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
