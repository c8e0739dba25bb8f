"""The parser: spec text -> AST with spans, printing back, and syntax errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.errors import Span, SpecError
from rnndsl.lang import parse, parse_pipeline
from rnndsl.lang import syntax as S
from rnndsl.lang.parser import _ToAst, grammar_text

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.rnn"))

EXAMPLE = """\
# comments with '#'
data ewt = conllu(train="data/ewt/train.conllu.gz", dev="data/ewt/dev.conllu.gz", tags=upos)

words  = embed(ewt.words, d=100)
chars  = embed(ewt.chars, d=30) |> bilstm(d=50) |> last      # per-word acceptor
tagger = concat(words, chars) |> bilstm(d=128) |> stack(2, dropout=0.3) |> softmax(ewt.tags)

train tagger on ewt {
  optimizer = adam(lr=1e-3)
  epochs = 20
  early_stop = dev.accuracy(patience=3)
}
eval tagger on ewt { metrics = [accuracy, f1] }
output { dir = "runs/x"; predictions = true }
"""


def test_statements():
    spec = parse(EXAMPLE, "x.rnn")
    kinds = [type(s).__name__ for s in spec.statements]
    assert kinds == [
        "DataStmt",
        "Definition",
        "Definition",
        "Definition",
        "TrainStmt",
        "EvalStmt",
        "OutputStmt",
    ]
    tagger = spec.statements[3]
    assert isinstance(tagger, S.Definition) and tagger.name.name == "tagger"
    assert isinstance(tagger.value, S.Pipe)
    assert [S.to_source(s) for s in tagger.value.stages] == [
        "concat(words, chars)",
        "bilstm(d=128)",
        "stack(2, dropout=0.3)",
        "softmax(ewt.tags)",
    ]
    train = spec.statements[4]
    assert [s.key.name for s in train.settings] == ["optimizer", "epochs", "early_stop"]
    early = train.settings[2].value
    assert isinstance(early, S.Call) and early.func.dotted == "dev.accuracy"


def test_spans_point_at_the_source():
    spec = parse(EXAMPLE, "x.rnn")
    bilstm = spec.statements[3].value.stages[1]
    assert bilstm.span == Span(6, 34, 6, 47)
    assert bilstm.span.path == "x.rnn"
    line = EXAMPLE.splitlines()[5]
    assert line[bilstm.span.column - 1 : bilstm.span.end_column - 1] == "bilstm(d=128)"
    tags = spec.statements[3].value.stages[3].args[0].value
    assert isinstance(tags, S.Ref) and tags.parts[1].span.column == 88


def test_the_design_card_example_parses_as_written():
    expr = parse_pipeline("bilstm(d=128) |> stack(2) |> crf(tags)")
    assert [S.to_source(s) for s in expr.stages] == ["bilstm(d=128)", "stack(2)", "crf(tags)"]


def test_newlines_and_semicolons_carry_no_meaning():
    one = parse('data d = text(train="a") x = embed(d.words, d=3) |> lstm(d=2)')
    many = parse(
        'data d = text(\n train = "a" ) ;\n\n x =\n embed(d.words,\n d=3)\n |> lstm(d=2);;'
    )
    assert one == many


def test_keywords_are_free_as_argument_names():
    spec = parse('data d = conllu(train="a", dev="b")\nh = spans(e, on=punct)')
    call = spec.statements[0].reader
    assert [a.name.name for a in call.args] == ["train", "dev"]
    assert spec.statements[1].value.args[1].name.name == "on"


def test_values():
    spec = parse(
        'x = f(1, -2, 0.5, 1e-3, 3E2, "a \\"q\\" \\\\ b", true, false, [a, 1], a.b, g(h=1))'
    )
    vals = [a.value for a in spec.statements[0].value.args]
    assert [v.value for v in vals[:5]] == [1, -2, 0.5, 1e-3, 300.0]
    assert isinstance(vals[0].value, int) and isinstance(vals[4].value, float)
    assert vals[5].value == 'a "q" \\ b'
    assert [v.value for v in vals[6:8]] == [True, False]
    assert isinstance(vals[8], S.ListExpr) and len(vals[8].items) == 2
    assert vals[9].dotted == "a.b"
    assert isinstance(vals[10], S.Call)


def test_enum_words_may_hold_hyphens():
    (d,) = parse("x = embed(e.words, format=word2vec-bin)").statements
    assert d.value.args[1].value.dotted == "word2vec-bin"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_print_then_parse_gives_the_same_ast(path: Path):
    spec = parse(path.read_text(), str(path))
    again = parse(S.to_source(spec))
    assert again == spec


# A generator of syntax trees for the round-trip law parse(print(ast)) == ast.
KEYWORDS = {"data", "train", "eval", "output", "on", "true", "false", "none"}
names = st.builds(
    lambda a, b: a + b,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz_"),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_", max_size=5),
).filter(lambda n: n not in KEYWORDS)
idents = names.map(S.Ident)
refs = st.lists(idents, min_size=1, max_size=3).map(lambda ps: S.Ref(tuple(ps)))
numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
).map(S.Num)
strings = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8).map(S.Str)
atoms = st.one_of(refs, numbers, strings, st.booleans().map(S.Bool))


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    args = st.tuples(st.one_of(st.none(), idents), children).map(lambda a: S.Arg(a[0], a[1]))
    calls = st.tuples(refs, st.lists(args, max_size=3)).map(lambda c: S.Call(c[0], tuple(c[1])))
    lists = st.lists(children, max_size=3).map(lambda xs: S.ListExpr(tuple(xs)))
    stage = st.one_of(calls, refs, lists, numbers, strings)
    pipes = st.lists(stage, min_size=2, max_size=3).map(lambda xs: S.Pipe(tuple(xs)))
    return st.one_of(calls, lists, pipes)


exprs = st.recursive(atoms, _extend, max_leaves=12)
settings_ = st.lists(st.tuples(idents, exprs).map(lambda kv: S.Setting(*kv)), max_size=3)
statements = st.one_of(
    st.tuples(idents, exprs).map(lambda t: S.Definition(*t)),
    st.tuples(idents, exprs).map(lambda t: S.DataStmt(*t)),
    st.tuples(idents, idents, settings_).map(lambda t: S.TrainStmt(t[0], t[1], tuple(t[2]))),
    st.tuples(idents, idents, settings_).map(lambda t: S.EvalStmt(t[0], t[1], tuple(t[2]))),
    settings_.map(lambda s: S.OutputStmt(tuple(s))),
)


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(st.lists(statements, max_size=5).map(lambda xs: S.Spec(tuple(xs))))
def test_parse_print_roundtrip(spec: S.Spec):
    assert parse(S.to_source(spec)) == spec


def test_syntax_errors_name_the_slip():
    with pytest.raises(SpecError) as e:
        parse("x = embed(d.words, d=3) bilstm(d=2)", "s.rnn")
    (d,) = e.value.diagnostics
    assert d.kind == "ParseError" and d.message == "missing '|>' before 'bilstm'"
    assert (d.span.line, d.span.column) == (1, 25)


def test_a_slip_one_bracket_deeper_is_still_recognised():
    for text in ("x = f(a=1 b=2)", "x = f(g(h(1 2)))", "x = a |> f(g(a=1 b=2))"):
        with pytest.raises(SpecError) as e:
            parse(text)
        assert e.value.diagnostics[0].message.startswith("missing ','"), text


def test_recovery_reports_the_first_error_of_each_statement():
    text = "a = f(1\nb = g(x=)\nc = h(1) |> |> k\ntrain a on d { epochs: 3 }\nok = f(1)\n"
    with pytest.raises(SpecError) as e:
        parse(text)
    lines = [d.span.line for d in e.value.diagnostics]
    assert lines == [1, 2, 3, 4]


def test_parse_pipeline_errors_are_relative_to_the_pipeline():
    with pytest.raises(SpecError) as e:
        parse_pipeline("bilstm(d=4) |> |> last")
    (d,) = e.value.diagnostics
    assert d.span.path == "<pipeline>" and d.span.column == 13


def test_a_rule_without_a_transformer_method_raises():
    with pytest.raises(AssertionError, match="no AST rule"):
        _ToAst("x").__default__("no_such_rule", [], None)


def test_grammar_is_loaded_from_the_repository_file():
    assert grammar_text() == (ROOT / "grammars" / "rnn.lark").read_text()


def test_only_the_parser_imports_lark():
    importers = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "rnndsl").rglob("*.py")
        if re.search(r"^\s*(import lark|from lark)", p.read_text(), re.M)
    ]
    assert importers == ["rnndsl/lang/parser.py"]
