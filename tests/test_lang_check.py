"""The checker and the API around it: check_text, check_file, load, compile_pipeline."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from rnndsl.errors import ShapeError, SpecError
from rnndsl.lang import (
    TrainConfig,
    catalogue,
    check_file,
    check_text,
    compile_pipeline,
    describe,
    inputs_of,
    load,
    ordered_nodes,
    parse,
)
from rnndsl.lang.check import default_setting
from rnndsl.lang.types import UNKNOWN, Seq, Tokens, Vec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "bad_specs"  # tiny data files live under bad_specs/data

HEADER = 'data ewt = conllu(train="data/tiny/train.conllu", dev="data/tiny/dev.conllu")\n'
SST = 'data sst = classification(train="data/sst.txt")\n'


def check(text: str):
    return check_text(text, "t.rnn", base_dir=DATA)


def ok(text: str):
    checked, diags = check(text)
    assert diags == [], "\n".join(str(d) for d in diags)
    assert checked is not None
    return checked


def errors(text: str) -> list[tuple[str, str]]:
    checked, diags = check(text)
    assert checked is None and diags
    return [(d.kind, d.message) for d in diags]


def kinds(g: nx.DiGraph) -> list[str]:
    return [g.nodes[n]["kind"] for n in ordered_nodes(g)]


# -- types ------------------------------------------------------------------------------------


def test_type_names():
    assert str(Seq(100)) == "Seq[100]"
    assert str(Seq(30, 2)) == "Seq[Seq[30]]"
    assert str(Vec(256)) == "Vec[256]"
    assert str(Tokens(1)) == "Tokens" and str(Tokens(2)) == "Seq[Tokens]"
    assert str(Seq(None)) == "Seq[?]" and str(UNKNOWN) == "?"
    assert (Seq(4, 2).dim, Seq(4, 2).depth, Vec(3).depth, Tokens(2).depth) == (4, 2, 0, 2)


# -- compile_pipeline -------------------------------------------------------------------------


def test_compile_pipeline_stack():
    g = compile_pipeline("bilstm(d=16) |> stack(2)", input_dim=8)
    assert ordered_nodes(g) == ["input", "pipeline.1.bilstm", "pipeline.1.bilstm.1"]
    assert g.nodes["input"]["out_type"] == Seq(8)
    assert g.nodes["pipeline.1.bilstm.1"]["in_types"] == [Seq(32)]
    assert g.graph["output"] == "pipeline.1.bilstm.1" and g.graph["head"] is None
    assert g.graph["inputs"] == ["input"]


def test_compile_pipeline_gru_mean_linear():
    g = compile_pipeline("gru(d=4, reset=after) |> mean |> linear(3)", input_dim=5)
    assert kinds(g) == ["input", "rnn", "pool", "linear"]
    gru = g.nodes["pipeline.1.gru"]["params"]
    assert gru["cell"] == "gru" and gru["reset"] == "after" and gru["bidirectional"] is False
    assert g.nodes["pipeline.3.linear"]["out_type"] == Vec(3)


def test_compile_pipeline_design_card_form_accepts_a_string_enum():
    g = compile_pipeline('gru(d=4, reset="after")', input_dim=3)
    assert g.nodes["pipeline.1.gru"]["params"]["reset"] == "after"


@pytest.mark.parametrize(
    "text, head, out",
    [
        ("bilstm(d=4) |> softmax(5)", "softmax", Seq(5)),
        ("bilstm(d=4) |> last |> softmax(5)", "softmax", Vec(5)),
        ("bilstm(d=4) |> stack(2) |> crf(7)", "crf", Seq(7)),
    ],
)
def test_compile_pipeline_heads_take_a_class_count(text, head, out):
    g = compile_pipeline(text, input_dim=3)
    assert g.graph["head"] == head
    node = g.nodes[g.graph["output"]]
    assert node["out_type"] == out and node["params"]["classes"] == out.dim
    assert node["params"]["target"] is None


def test_compile_pipeline_stack_dropout_and_skip():
    g = compile_pipeline("lstm(d=4) |> stack(3, dropout=0.5, skip=true)", input_dim=2)
    assert kinds(g) == [
        "input",
        "rnn",
        "concat",
        "dropout",
        "rnn",
        "concat",
        "dropout",
        "rnn",
        "concat",
    ]
    assert g.nodes[g.graph["output"]]["out_type"] == Seq(2 + 3 * 4)
    assert inputs_of(g, "pipeline.2.stack.skip.0") == ["input", "pipeline.1.lstm"]
    assert [g.nodes[n]["label"] for n in ("pipeline.1.lstm.1", "pipeline.1.lstm.2")] == [
        "lstm(d=4) (layer 2)",
        "lstm(d=4) (layer 3)",
    ]


def test_compile_pipeline_bi_skip_concat_spans():
    g = compile_pipeline(
        "bi(gru(d=3)) |> skip(lstm(d=2)) |> concat(srnn(d=2), gru(d=1)) "
        "|> spans(bilstm(d=2) |> max) |> attention |> mlp([8, 4], act=relu) |> softmax(2)",
        input_dim=4,
    )
    assert g.nodes["pipeline.1.bi"]["params"]["bidirectional"] is True
    assert g.nodes["pipeline.1.bi"]["params"]["cell"] == "gru"
    assert g.nodes["pipeline.2.skip"]["out_type"] == Seq(8)
    assert inputs_of(g, "pipeline.3.concat") == [
        "pipeline.3.concat.1.1.srnn",
        "pipeline.3.concat.2.1.gru",
    ]
    assert g.nodes["pipeline.3.concat"]["out_type"] == Seq(3)
    assert g.nodes["pipeline.4.spans.split"]["kind"] == "split"
    assert g.nodes["pipeline.4.spans.2.max"]["out_type"] == Seq(4)
    mlp = g.nodes["pipeline.6.mlp"]
    assert mlp["params"]["sizes"] == [8, 4] and mlp["out_type"] == Vec(4)


def test_compile_pipeline_errors_point_into_the_text():
    with pytest.raises(SpecError) as e:
        compile_pipeline("bilstm(d=4) |> last |> crf(3)", input_dim=2)
    (d,) = e.value.diagnostics
    assert d.kind == "TypeMismatch" and d.span.column == 24 and d.span.path == "<pipeline>"
    assert "bilstm(d=4) |> last |> crf(3)" in e.value.format()


def test_compile_pipeline_has_no_data():
    with pytest.raises(SpecError) as e:
        compile_pipeline("bilstm(d=4) |> crf(tags)", input_dim=2)
    (d,) = e.value.diagnostics
    assert d.kind == "UnknownName" and d.hint == "give the number of classes instead, e.g. crf(5)"


@pytest.mark.parametrize("dim", [0, -1, 2.5, True, "3"])
def test_compile_pipeline_input_dim_must_be_positive(dim):
    with pytest.raises(ShapeError):
        compile_pipeline("lstm(d=2)", input_dim=dim)


# -- definitions: closed values and open functions --------------------------------------------


def test_closed_definitions_are_shared_and_open_ones_instantiated_per_use():
    checked = ok(
        HEADER
        + "words = embed(ewt.words, d=8)\n"
        + "enc = bilstm(d=4)\n"
        + "m = concat(words |> enc, words |> enc) |> softmax(ewt.tags)\n"
        + "train m on ewt {}\n"
    )
    g = checked.models["m"]
    embeds = [n for n in g if g.nodes[n]["kind"] == "embed"]
    rnns = sorted(n for n in g if g.nodes[n]["kind"] == "rnn")
    assert embeds == ["words.1.embed"]
    assert rnns == ["m.1.concat.1.2.enc.1.bilstm", "m.1.concat.2.2.enc.1.bilstm"]
    assert checked.definitions["enc"].open and not checked.definitions["words"].open


def test_field_shorthand_resolves_when_one_dataset_has_the_field():
    checked = ok(
        HEADER + "m = ewt.words |> embed(d=4) |> bilstm(d=2) |> crf(tags)\ntrain m on ewt {}"
    )
    g = checked.models["m"]
    assert g.nodes[g.graph["output"]]["params"]["target"] == "ewt.tags"
    assert g.graph["inputs"] == ["ewt.words"]


def test_concat_feeds_its_input_to_open_arguments():
    checked = ok(
        HEADER + "m = embed(ewt.words, d=4) |> concat(lstm(d=2), gru(d=3)) |> softmax(ewt.tags)\n"
        "train m on ewt {}"
    )
    g = checked.models["m"]
    assert g.nodes["m.2.concat"]["out_type"] == Seq(5)
    assert inputs_of(g, "m.2.concat.1.1.lstm") == ["m.1.embed"]


def test_stack_copies_have_their_own_ids_and_same_params():
    checked = ok(
        HEADER + "m = embed(ewt.words, d=4) |> gru(d=3, reset=after) |> stack(3) "
        "|> softmax(ewt.tags)\ntrain m on ewt {}"
    )
    g = checked.models["m"]
    rnns = [n for n in ordered_nodes(g) if g.nodes[n]["kind"] == "rnn"]
    assert rnns == ["m.2.gru", "m.2.gru.1", "m.2.gru.2"]
    assert len({repr(g.nodes[n]["params"]) for n in rnns}) == 1


def test_checking_does_not_change_the_ast():
    text = (ROOT / "specs" / "pos_tagger.rnn").read_text()
    spec = parse(text)
    before = repr(spec)
    from rnndsl.lang.check import check_spec

    check_spec(spec, text, ROOT / "specs")
    assert repr(spec) == before


def test_every_error_is_reported_sorted():
    got = errors(
        HEADER
        + "a = embed(ewt.words, d=0) |> lstn(d=2)\n"
        + "b = embed(ewt.words, d=4) |> last |> softmax(ewt.tags)\n"
        + "train c on ewt { epoch = 1 }\n"
    )
    assert [k for k, _ in got] == [
        "OutOfRange",
        "UnknownLayer",
        "TypeMismatch",
        "UndefinedModel",
        "UnknownSetting",
    ]


def test_one_mistake_one_message():
    # the unknown field makes the head's input unknown: no NoHead, no TypeMismatch after it
    got = errors(
        HEADER + "m = embed(ewt.wrds, d=4) |> bilstm(d=2) |> softmax(ewt.tags)\ntrain m on ewt {}"
    )
    assert got == [("UnknownField", "ewt has no field 'wrds'")]


def test_a_wrong_argument_keeps_the_type_when_the_type_does_not_need_it():
    got = errors(
        HEADER + "m = embed(ewt.words, d=4, dropout=2) |> last |> softmax(ewt.tags)\n"
        "train m on ewt {}"
    )
    assert [k for k, _ in got] == ["OutOfRange", "TypeMismatch"]


def test_train_defaults_come_from_the_catalogue():
    t = TrainConfig(model="m", data="d")
    for key, sd in catalogue.TRAIN_SETTINGS.items():
        if key == "early_stop":
            assert t.early_stop is None
            continue
        want = default_setting(sd)
        got = getattr(t, key)
        assert (tuple(got) if key == "freeze" else got) == (
            tuple(want) if key == "freeze" else want
        )


def test_settings_are_resolved():
    checked = ok(
        HEADER
        + "m = embed(ewt.words, d=4) |> bilstm(d=2) |> softmax(ewt.tags)\n"
        + "train m on ewt { optimizer = sgd(0.5, momentum=0.9); schedule = plateau\n"
        + "  clip = none; freeze = [m]; reduction = sum; eval_every = 100; weight_decay = 1e-5 }\n"
        + 'eval m on ewt { split = train }\noutput { dir = "runs/x"; plot = false }\n'
    )
    t = checked.train
    assert t.optimizer.name == "sgd" and t.optimizer.args == {"lr": 0.5, "momentum": 0.9}
    assert t.schedule.name == "plateau" and t.schedule.args == {"factor": 0.5, "patience": 1}
    assert t.clip is None and t.freeze == ("m",) and t.reduction == "sum"
    assert (t.eval_every, t.weight_decay) == (100, 1e-5)
    assert checked.eval.metrics == ("accuracy",) and checked.eval.split == "train"
    assert checked.output.dir == str(DATA / "runs" / "x") and checked.output.plot is False


def test_a_spec_without_train_is_fine():
    checked = ok(HEADER + "words = embed(ewt.words, d=4)\n")
    assert checked.models == {} and checked.train is None


# -- the file-level API -----------------------------------------------------------------------


def test_check_file_never_raises(tmp_path: Path):
    (d,) = check_file(tmp_path / "nope.rnn")
    assert d.kind == "UnreadableFile" and "no such file" in d.message
    (d,) = check_file(tmp_path)
    assert d.kind == "UnreadableFile"
    bad = tmp_path / "latin1.rnn"
    bad.write_bytes(b"x = caf\xe9")
    (d,) = check_file(bad)
    assert d.kind == "UnreadableFile" and "UTF-8" in d.message


def test_diagnostics_carry_their_source(tmp_path: Path):
    spec = tmp_path / "s.rnn"
    spec.write_text("m = bilstn(d=2)\n")
    (d,) = check_file(spec)
    assert str(d).splitlines()[1:3] == ["  1 | m = bilstn(d=2)", "    |     ^^^^^^"]


def test_load_raises_spec_error(tmp_path: Path):
    spec = tmp_path / "s.rnn"
    spec.write_text("m = bilstm(d=0)\nn = lstm(d=-1)\n")
    with pytest.raises(SpecError) as e:
        load(spec)
    assert [d.kind for d in e.value.diagnostics] == ["OutOfRange", "OutOfRange"]
    assert e.value.exit_code == 2


def test_paths_are_relative_to_the_spec_file(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.txt").write_text("1 a b\n")
    spec = tmp_path / "sub" / "s.rnn"
    spec.write_text('data d = classification(train="t.txt")\n')
    assert check_file(spec) == []
    assert load(spec).data["d"].args["train"] == str(tmp_path / "sub" / "t.txt")


def test_paths_are_absolute_when_the_spec_path_is_relative(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(ROOT)
    checked = load("specs/pos_tagger.rnn")
    assert checked.data["ewt"].args["dev"] == str(ROOT / "specs" / "data" / "ewt" / "dev.conllu.gz")
    assert Path(checked.base_dir).is_absolute() and checked.path == "specs/pos_tagger.rnn"


def test_describe_lists_the_graph():
    g = compile_pipeline("lstm(d=2) |> last", input_dim=3)
    assert describe(g).splitlines() == [
        "input: input input -> Seq[3]",
        "pipeline.1.lstm: rnn lstm(d=2) -> Seq[2] <- input",
        "pipeline.2.last: pool last -> Vec[2] <- pipeline.1.lstm",
    ]
