"""Pictures: the unrolled graph read off the tape, its levels, gradients, folding, files, CLI.

The golden DOT files (tests/golden_dot/*.dot) hold the whole DOT text with the IR node ids
replaced by their index in the network's order (``@0``, ``@1``, ...), so they do not depend on
how the front end names nodes; the tests compare their node sets, edge sets and node positions
(labels carry numbers and are checked separately). Regenerate with RNNDSL_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from pathlib import Path

import graphviz
import pytest

import rnndsl
import rnndsl.render as R
from rnndsl.cli import main
from rnndsl.gradchecks import cell_forms, form_text
from rnndsl.lang.cells import CELLS
from rnndsl.nn.cells import Cell
from rnndsl.nn.probe import state_gradient_norms
from rnndsl.render import dot as D
from rnndsl.render.tape import RenderError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden_dot"
FIGURES = ROOT / "examples" / "figures"
FOX = "the brown fox jumped over the dog"
HAVE_DOT = shutil.which("dot") is not None


# --- reading DOT ---------------------------------------------------------------------------------
_NAME = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][\w]*)'
_NODE = re.compile(rf"^\t({_NAME}) \[(.*)\]$")
_EDGE = re.compile(rf"^\t({_NAME}) -> ({_NAME})(?: \[.*\])?$")


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name


def _attr(attrs: str, key: str) -> str | None:
    """One attribute of a DOT attribute list; HTML labels <...> may nest brackets."""
    m = re.search(rf"(?:^| ){key}=", attrs)
    if not m:
        return None
    i = m.end()
    if attrs[i] == "<":
        depth, j = 0, i
        while True:
            depth += {"<": 1, ">": -1}.get(attrs[j], 0)
            if depth == 0:
                return attrs[i + 1 : j]
            j += 1
    if attrs[i] == '"':
        j = attrs.index('"', i + 1)
        return attrs[i + 1 : j]
    return attrs[i:].split(" ")[0]


def parse_dot(src: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """{node: attribute text}, {(tail, head)} of a DOT text written by python-graphviz."""
    nodes, edges = {}, set()
    for line in src.splitlines():
        if m := _EDGE.match(line):
            edges.add((_unquote(m.group(1)), _unquote(m.group(2))))
        elif (m := _NODE.match(line)) and _unquote(m.group(1)) not in ("graph", "node", "edge"):
            nodes[_unquote(m.group(1))] = m.group(2)
    return nodes, edges


def canonical(src: str, net: rnndsl.Network) -> str:
    """The DOT text with every IR node id replaced by @<its index in the network's order>."""
    ids = sorted(net.order, key=len, reverse=True)
    index = {n: i for i, n in enumerate(net.order)}
    pattern = re.compile("|".join(re.escape(n) for n in ids))

    def name(m: re.Match) -> str:
        return '"' + pattern.sub(lambda k: f"@{index[k.group(0)]}", m.group(1)) + '"'

    src = re.sub(r'"((?:[^"\\]|\\.)*)"', name, src)
    return re.sub(r"label=<<B>[^<]*</B>", "label=<<B>network</B>", src)


def check_golden(name: str, dg: graphviz.Digraph, net: rnndsl.Network) -> None:
    text = canonical(dg.source, net)
    path = GOLDEN / f"{name}.dot"
    if os.environ.get("RNNDSL_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    want_nodes, want_edges = parse_dot(path.read_text(encoding="utf-8"))
    got_nodes, got_edges = parse_dot(text)
    assert set(got_nodes) == set(want_nodes)
    assert got_edges == want_edges
    for n in want_nodes:
        assert _attr(got_nodes[n], "pos") == _attr(want_nodes[n], "pos"), n


def number(label: str) -> float:
    """The gradient norm printed in a state's label."""
    m = re.search(r"(\d\.\d+e[+-]\d+)", label)
    assert m, label
    return float(m.group(1))


def nodes_of(G, kind: str) -> list[str]:
    return [n for n, k in G.nodes(data="kind") if k == kind]


def x_of(G, n: str) -> float:
    return G.nodes[n]["xy"][0]


def y_of(G, n: str) -> float:
    return G.nodes[n]["xy"][1]


def state_rows(G) -> dict[str, list[str]]:
    """Fold group (layer.direction) -> its state nodes, left to right."""
    rows: dict[str, list[str]] = {}
    for n in nodes_of(G, "state"):
        rows.setdefault(G.nodes[n]["group"], []).append(n)
    return {k: sorted(v, key=lambda n: x_of(G, n)) for k, v in rows.items()}


# --- the lecture's figures, as golden DOT and as structure ---------------------------------------
def test_acceptor_one_loss_at_the_end():
    net = rnndsl.compile("lstm(d=2) |> last |> softmax(2)", input_dim=3)
    words = "the brown fox jumped".split()
    check_golden("acceptor", R.unrolled(net, words), net)
    G = R.unrolled_graph(net, words)
    (row,) = state_rows(G).values()
    assert len(row) == 4  # one node per step
    recurrent = [(u, v) for u, v, k in G.edges(data="kind") if k == "recurrent"]
    assert len(recurrent) == 4  # s0 -> s1 -> s2 -> s3 -> s4
    assert all(x_of(G, u) < x_of(G, v) for u, v in recurrent)
    (loss,) = nodes_of(G, "total")
    assert not nodes_of(G, "loss")  # no per-position losses
    assert x_of(G, loss) == x_of(G, row[-1]) and y_of(G, loss) == max(
        y for _, (_, y) in G.nodes(data="xy")
    )
    (pool,) = nodes_of(G, "pool")
    assert list(G.predecessors(pool)) == [row[-1]]  # y_n only: the supervision is at the end
    words_x = sorted(x_of(G, n) for n in nodes_of(G, "word"))
    assert words_x == [x_of(G, n) for n in row]  # the words under their steps


def test_transducer_one_loss_per_position():
    net = rnndsl.compile("srnn(d=2) |> softmax(3)", input_dim=3)
    check_golden("transducer", R.unrolled(net, FOX), net)
    G = R.unrolled_graph(net, FOX)
    (row,) = state_rows(G).values()
    locs = sorted(nodes_of(G, "loss"), key=lambda n: x_of(G, n))
    assert len(locs) == len(row) == 7
    for s, loss in zip(row, locs):
        assert x_of(G, s) == x_of(G, loss)
        (y_hat,) = G.predecessors(loss)
        assert list(G.predecessors(y_hat)) == [s]
    (total,) = nodes_of(G, "total")
    assert sorted(G.predecessors(total)) == sorted(locs)


def test_birnn_two_rows_opposite_directions():
    net = rnndsl.compile("bisrnn(d=2) |> softmax(3)", input_dim=3)
    check_golden("birnn", R.unrolled(net, FOX), net)
    G = R.unrolled_graph(net, FOX)
    rows = state_rows(G)
    fwd, bwd = (rows[g] for g in sorted(rows))  # ".bwd" sorts before ".fwd"
    fwd, bwd = (fwd, bwd) if fwd[0].endswith("fwd") else (bwd, fwd)
    assert len(fwd) == len(bwd) == 7 and y_of(G, bwd[0]) > y_of(G, fwd[0])
    for a, b in zip(fwd, fwd[1:]):
        assert G.edges[a, b]["kind"] == "recurrent"  # left to right
    for a, b in zip(bwd, bwd[1:]):
        assert G.edges[b, a]["kind"] == "recurrent"  # right to left
    # the backward state at position 1 is the tape's last step (it has read x_n ... x_1)
    assert bwd[0].endswith(".t6.bwd") and fwd[0].endswith(".t0.fwd")
    for i, (f, b) in enumerate(zip(fwd, bwd)):
        (y,) = [n for n in G.successors(f) if G.nodes[n]["kind"] == "concat"]
        assert set(G.predecessors(y)) == {f, b}  # y_i = [s_i^f; s_i^b]
        x = next(n for n in G.predecessors(f) if G.nodes[n]["kind"] == "input")
        assert x in set(G.predecessors(b))  # x_i feeds both directions


def test_stacked_rows_feed_upwards():
    net = rnndsl.compile("srnn(d=2) |> stack(3)", input_dim=3)
    words = "the brown fox jumped".split()
    check_golden("stacked", R.unrolled(net, words), net)
    G = R.unrolled_graph(net, words)
    rows = sorted(state_rows(G).values(), key=lambda r: y_of(G, r[0]))
    assert [len(r) for r in rows] == [4, 4, 4]
    for below, above in zip(rows, rows[1:]):
        for i, (a, b) in enumerate(zip(below, above)):
            assert G.has_edge(a, b)  # y^{j-1}_i -> s^j_i
            assert x_of(G, a) == x_of(G, b)
    assert len(nodes_of(G, "param")) == 3  # one shared theta per layer


def test_crf_is_a_chain_over_the_tags():
    net = rnndsl.compile("bilstm(d=2) |> crf(3)", input_dim=3)
    words = "the brown fox jumped".split()
    check_golden("crf", R.unrolled(net, words), net)
    G = R.unrolled_graph(net, words)
    tags = sorted(nodes_of(G, "tag"), key=lambda n: x_of(G, n))
    assert len(tags) == 4
    chain = [(u, v) for u, v, k in G.edges(data="kind") if k == "chain"]
    assert chain == list(zip(tags, tags[1:]))
    (loss,) = nodes_of(G, "total")
    assert list(G.predecessors(loss)) == [tags[-1]]


def test_shared_parameters_are_linked_to_every_step():
    net = rnndsl.compile("bilstm(d=2)", input_dim=3)
    G = R.unrolled_graph(net, FOX)
    for theta in nodes_of(G, "param"):
        linked = [v for v in G.successors(theta) if G.edges[theta, v]["kind"] == "param"]
        assert len(linked) == 7
        assert len({G.nodes[v]["group"] for v in linked}) == 1


def test_node_count_grows_linearly():
    net = rnndsl.compile("bilstm(d=2) |> stack(2) |> softmax(3)", input_dim=3)
    counts = []
    for n in (5, 10, 15, 20):
        G = R.unrolled_graph(net, ["w"] * n, steps=n)
        counts.append((G.number_of_nodes(), G.number_of_edges()))
    dn = [b[0] - a[0] for a, b in zip(counts, counts[1:])]
    de = [b[1] - a[1] for a, b in zip(counts, counts[1:])]
    assert len(set(dn)) == 1 and len(set(de)) == 1 and dn[0] > 0


def test_dot_is_deterministic_and_named_by_scope():
    net = rnndsl.compile("bigru(d=2) |> mean |> softmax(2)", input_dim=3)
    a = R.unrolled(net, FOX, grad=True).source
    b = R.unrolled(net, FOX, grad=True).source
    assert a == b
    assert "0x" not in a and "id(" not in a
    nodes, _ = parse_dot(a)
    layer = net.order[1]
    assert f"{layer}.t0.fwd" in nodes and f"{layer}.t6.bwd" in nodes


# --- levels --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,form", [
    pytest.param(name, form, id=f"{name}{form_text(form)}")
    for name, c in CELLS.items() for form in cell_forms(c)
])
def test_cell_level_parts_of_every_cell(name, form):
    """Each step of each cell opens into the parts of its picture (lang.cells), linked to the
    step before as the picture says (the LSTM's c and h, the GRU's s into z, r, n and s)."""
    net = rnndsl.compile(f"{name}(d=2{form_text(form)}) |> last", input_dim=3)
    tpl = Cell(name, **form).picture
    G = R.unrolled_graph(net, "the brown fox", level="cell")
    layer = net.order[1]
    for t in range(3):
        parts = {
            n.rsplit(".", 1)[1] for n, c in G.nodes(data="cluster") if c == f"{layer}.t{t}.fwd"
        }
        assert parts == {p.key for p in tpl.parts}
    for carry, part in tpl.recurrent:
        edge = (f"{layer}.t0.fwd.{tpl.carry_part(carry)}", f"{layer}.t1.fwd.{part}")
        assert G.edges[edge]["kind"] == "recurrent"


def test_op_level_shows_the_reference_ops():
    net = rnndsl.compile("lstm(d=2) |> last |> softmax(2)", input_dim=3)
    G = R.unrolled_graph(net, "the brown fox", level="op")
    layer = net.order[1]
    ops = {n for n in G if n.startswith(f"{layer}.t1.")}
    assert {f"{layer}.t1.sigmoid", f"{layer}.t1.tanh", f"{layer}.t1.matmul"} <= ops
    assert f"{layer}.t1.sigmoid_3" in ops  # i, f, o
    assert {c for _, c in G.nodes(data="cluster") if c and "/t" in c} == {
        f"{layer}/t0",
        f"{layer}/t1",
        f"{layer}/t2",
    }
    assert f"param.{layer}.W_hh" in G
    assert "lstm_step" not in " ".join(G)  # the fused op is not on a reference tape


def test_op_level_folds_long_inputs():
    net = rnndsl.compile("srnn(d=2) |> last", input_dim=3)
    G = R.unrolled_graph(net, ["w"] * 30, level="op", steps=4)
    layer = net.order[1]
    steps = {c.split("/t")[1] for _, c in G.nodes(data="cluster") if c and "/t" in c}
    assert steps == {"0", "1", "28", "29"}
    assert f"{layer}.fold" in G and "26 steps" in G.nodes[f"{layer}.fold"]["label"]


# --- gradients -----------------------------------------------------------------------------------
def _first_last_norms(spec: str, n: int = 60) -> tuple[float, float]:
    net = rnndsl.compile(spec, input_dim=8, seed=0)
    src = R.unrolled(
        net, ("the brown fox jumped over the lazy dog " * 10).split()[:n], grad=True
    ).source
    nodes, _ = parse_dot(src)
    layer = net.order[1]
    first = number(_attr(nodes[f"{layer}.t0.fwd"], "label"))
    last = number(_attr(nodes[f"{layer}.t{n - 1}.fwd"], "label"))
    return first, last


def test_vanishing_gradients_srnn_vs_lstm():
    s_first, s_last = _first_last_norms("srnn(d=16) |> last |> softmax(2)")
    # forget-gate bias 1 (Jozefowicz et al. 2015): the gate starts open, as it is usually set
    l_first, l_last = _first_last_norms("lstm(d=16, forget_bias=1.0) |> last |> softmax(2)")
    srnn_ratio, lstm_ratio = s_first / s_last, l_first / l_last
    assert srnn_ratio < 1e-8  # decays geometrically towards the start
    assert lstm_ratio > 1e4 * srnn_ratio


def test_gradient_numbers_colours_and_legend():
    net = rnndsl.compile("srnn(d=4) |> last |> softmax(2)", input_dim=3)
    G = R.unrolled_graph(net, FOX, grad=True)
    (row,) = state_rows(G).values()
    norms = [G.nodes[n]["norm"] for n in row]
    assert all(a < b for a, b in zip(norms, norms[1:]))  # the loss sits at the end
    tr = R.trace(net, FOX, grad=True)  # the engine's own probe agrees (same loss: sum of y_n)
    x = tr.source.leaf.data.transpose(1, 0, 2)
    theirs = state_gradient_norms(net, x)[net.order[1]][0]
    ours = R.gradient_norms(tr)[net.order[1]][0]
    assert max(abs(a / b - 1) for a, b in zip(ours, theirs)) < 1e-4
    src = R.to_graphviz(G).source
    assert "legend" in src and "log scale" in src
    nodes, _ = parse_dot(src)
    fills = {_attr(nodes[n], "fillcolor") for n in row}
    assert len(fills) > 1


def test_gradients_leave_parameter_grads_alone():
    net = rnndsl.compile("gru(d=2) |> last |> softmax(2)", input_dim=3)
    R.unrolled(net, FOX, grad=True, targets=1)
    assert all(p.grad is None for p in net.named_parameters().values())


def test_gold_loss_when_targets_are_given():
    net = rnndsl.compile("srnn(d=2) |> softmax(3)", input_dim=3)
    tr = R.trace(net, "a b c", grad=True, targets=[0, 2, 1])
    assert tr.loss_info.kind == "gold" and tr.loss_info.per_position
    tr = R.trace(net, "a b c", grad=True)
    assert tr.loss_info.kind == "surrogate" and "surrogate" in tr.loss_info.text


def test_attention_weights_over_the_words():
    net = rnndsl.compile("bilstm(d=2) |> attention |> softmax(2)", input_dim=3)
    G = R.unrolled_graph(net, FOX, grad=True)
    weights = [G.nodes[n]["weight"] for n in nodes_of(G, "word")]
    assert len(weights) == 7 and math.isclose(sum(weights), 1.0, rel_tol=1e-5)
    (pool,) = nodes_of(G, "pool")
    att = [d for _, _, d in G.in_edges(pool, data=True) if d["kind"] == "attention"]
    assert len(att) == 7


def test_folding_keeps_first_and_last_steps():
    net = rnndsl.compile("srnn(d=2) |> last", input_dim=3)
    G = R.unrolled_graph(net, ["w"] * 30, steps=6, grad=True)
    (row,) = state_rows(G).values()
    layer = net.order[1]
    assert [n.split(".")[-2] for n in row] == ["t0", "t1", "t2", "t27", "t28", "t29"]
    fold = f"{layer}.fwd.fold"
    assert "24 steps" in G.nodes[fold]["label"]
    assert G.has_edge(row[2], fold) and G.has_edge(fold, row[3])
    assert x_of(G, row[2]) < x_of(G, fold) < x_of(G, row[3])
    default = R.unrolled_graph(net, ["w"] * 30)  # long inputs fold by default
    assert any(k == "fold" for _, k in default.nodes(data="kind"))
    assert not any(
        k == "fold" for _, k in R.unrolled_graph(net, ["w"] * 30, steps=30).nodes(data="kind")
    )


# --- the model graph, the API, files -------------------------------------------------------------
def test_model_graph_boxes():
    net = rnndsl.compile("bilstm(d=4) |> stack(2) |> last |> softmax(3)", input_dim=5)
    dg = R.model(net)
    nodes, edges = parse_dot(dg.source)
    assert set(nodes) == set(net.order)
    assert len(edges) == len(net.order) - 1
    for n in net.order:
        label = _attr(nodes[n], "label")
        count = net.modules[n].parameter_count() if n in net.modules else 0
        assert (f"{count:,} parameters" if count else "no parameters") in label
        assert str(net.graph.nodes[n]["out_type"]) in label.replace("&gt;", ">")


def test_network_render_and_vectors():
    net = rnndsl.compile("lstm(d=2) |> last", input_dim=3)
    assert isinstance(R.draw(net), R.Picture)
    assert not hasattr(net, "render")  # nn imports nothing above it: pictures live in render
    dg = R.draw(net, "the brown fox", level="cell", grad=True)
    assert isinstance(dg.digraph, graphviz.Digraph) and "brown" in dg.source
    x = [[0.1, 0.2, 0.3], [0.0, -0.1, 0.4]]
    G = R.unrolled_graph(net, x)
    assert len(nodes_of(G, "state")) == 2
    with pytest.raises(RenderError):
        R.unrolled(net, [[0.1, 0.2]])  # 2 features, the network wants 3
    with pytest.raises(RenderError):
        R.unrolled(net, "the fox", level="gates")


def test_write_formats(tmp_path, monkeypatch):
    net = rnndsl.compile("srnn(d=2) |> last", input_dim=3)
    dg = R.unrolled(net, "the brown fox")
    assert R.write(dg, tmp_path / "a.dot").read_text().startswith("digraph")
    with pytest.raises(RenderError, match="unknown picture format"):
        R.write(dg, tmp_path / "a.jpeg")
    monkeypatch.setattr(D.shutil, "which", lambda name: None)
    with pytest.raises(D.GraphvizMissing) as e:
        R.write(dg, tmp_path / "b.svg")
    assert "apt-get install graphviz" in e.value.hint and "brew install graphviz" in e.value.hint
    assert (tmp_path / "b.dot").read_text() == dg.source
    assert not (tmp_path / "b.svg").exists()


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")
def test_write_svg_png_pdf(tmp_path):
    net = rnndsl.compile("bilstm(d=2) |> softmax(2)", input_dim=3)
    dg = R.unrolled(net, FOX, level="cell", grad=True)
    assert R.write(dg, tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    assert R.write(dg, tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert R.write(dg, tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"


# --- the command line and the figures ------------------------------------------------------------
def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_render_spec(tmp_path, capsys):
    out = tmp_path / "birnn.dot"
    rc, _, err = _cli(
        capsys, "render", str(FIGURES / "birnn.rnn"), "--input", FOX, "--grad", "-o", str(out)
    )
    assert rc == 0, err
    nodes, _ = parse_dot(out.read_text())
    assert any(n.endswith(".t0.bwd") for n in nodes)
    assert "gold labels from tags.conll" in out.read_text()  # the sentence is in the data
    rc, _, err = _cli(
        capsys, "render", str(FIGURES / "birnn.rnn"), "--model", "-o", str(tmp_path / "m.dot")
    )
    assert rc == 0, err
    rc, _, err = _cli(
        capsys,
        "render",
        "gru(d=3) |> last",
        "--input",
        "a b c",
        "--level",
        "op",
        "-o",
        str(tmp_path / "p.dot"),
    )
    assert rc == 0, err


def test_cli_render_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    rc, _, err = _cli(
        capsys, "run", str(FIGURES / "bilstm_crf.rnn"), "--out", str(run_dir), "--no-progress"
    )
    assert rc == 0, err
    out = tmp_path / "trained.dot"
    rc, _, err = _cli(
        capsys,
        "render",
        "unused.rnn",
        "--checkpoint",
        str(run_dir),
        "--input",
        FOX,
        "--grad",
        "-o",
        str(out),
    )
    assert rc == 0, err
    text = out.read_text()
    assert "gold labels from tags.conll" in text  # read back from the run's own spec and data
    assert "viterbi" in text


def test_cli_user_errors(tmp_path, capsys):
    rc, _, err = _cli(
        capsys,
        "render",
        str(FIGURES / "birnn.rnn"),
        "--input",
        "a b",
        "-o",
        str(tmp_path / "x.gif"),
    )
    assert rc == 2 and "unknown picture format" in err and "Traceback" not in err
    rc, _, err = _cli(
        capsys,
        "render",
        str(FIGURES / "birnn.rnn"),
        "--model",
        "--grad",
        "-o",
        str(tmp_path / "x.svg"),
    )
    assert rc == 2 and "--grad" in err
    rc, _, err = _cli(
        capsys, "render", str(tmp_path / "missing.rnn"), "-o", str(tmp_path / "x.svg")
    )
    assert rc == 2 and "no spec file" in err and "Traceback" not in err


def test_cli_gradflow(tmp_path, capsys):
    out = tmp_path / "flow.png"
    rc, stdout, err = _cli(
        capsys, "gradflow", str(FIGURES / "acceptor.rnn"), "--input", FOX, "-o", str(out)
    )
    assert rc == 0, err
    lines = stdout.splitlines()
    assert "cross entropy" in lines[0]  # the sentence is in the data: the gold loss
    rows = [ln.split() for ln in lines[3:]]
    assert [row[1] for row in rows] == FOX.split()
    norms = [float(row[2]) for row in rows]
    assert norms[-1] > norms[0] > 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_make_figures(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import make_figures
    finally:
        sys.path.pop(0)
    written = make_figures.main([str(tmp_path), "--format", "svg" if HAVE_DOT else "dot"])
    names = {p.name for p in written}
    for spec in FIGURES.glob("*.rnn"):
        assert f"{spec.stem}.{'svg' if HAVE_DOT else 'dot'}" in names
    assert all(p.stat().st_size > 0 for p in written)
