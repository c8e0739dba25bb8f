"""The layer catalogue: every layer of the language, its parameters, shape rule and count rule.

A layer is a ``LayerDef``: its parameters (type, default, range), a shape rule (input type ->
output type, raising ``Mismatch`` with a message a person can act on), a parameter-count rule for
the summary table, and a short doc. The recurrent layers come from the cell table (cells.py).
Part of the catalogue (catalogue.py re-exports everything here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import types as T
from .cells import CELLS, all_params, either, not_applicable
from .params import (  # the value types, declared in params.py (see also cells.py)
    DEPTH,
    NON_NEGATIVE,
    PRETRAINED_VECTORS,
    PROBABILITY,
    REQUIRED,  # noqa: F401 - read as C.REQUIRED by the checker
    SIZE,
    Bool,
    Enum,
    FieldArg,
    Float,
    Int,
    LayerArg,
    ListOf,
    Nothing,
    OneOf,
    Param,
    PipelineArg,
    Vectors,
)


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


def _rnn_count(p: Mapping[str, Any], t: T.Type, size: Callable[[str], int | None]) -> int | None:
    """The cell's count rule (lang/cells.py), per direction."""
    if t.dim is None:
        return None
    per_direction = CELLS[p["cell"]].count(t.dim, p["d"], p.get("s0") or "zeros")
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


def _recurrent() -> list[LayerDef]:
    out = []
    for cell, c in CELLS.items():
        params, unused, doc = all_params(c), not_applicable(c), c.doc
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
    for cell, c in CELLS.items():
        params, unused = all_params(c), not_applicable(c)
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
                    "format of the pretrained file (auto: from its first lines, not its name: a "
                    "\"COUNT DIM\" header is word2vec, text or binary by what follows; else GloVe)",
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
                    doc=either([f"{c}(...)" for c in CELLS]),
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


UNI_CELLS = tuple(CELLS)
