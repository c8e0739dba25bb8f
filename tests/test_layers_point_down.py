"""Imports point down the stages: no import circle in lang/, data/ knows nothing of the network,
pictures never import the orchestrator; a data batch holds host arrays only."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import numpy as np

from rnndsl import lang
from rnndsl.data.batching import SpanIndex, TokenIds
from rnndsl.nn.batch import on_backend
from rnndsl.nn.module import TokenValue
from rnndsl.run import prepare

PKG = Path(__file__).resolve().parents[1] / "rnndsl"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """Every rnndsl module ``name`` imports, at the top or inside a function."""
    path = MODULES[name]
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            target = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            out |= subs | ({target} if len(subs) < len(node.names) else set())
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in MODULES and m != name}


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for name in MODULES:
        g.add_edges_from((name, m) for m in imports_of(name))
    return g


def test_lang_has_no_import_circle():
    g = graph().subgraph([m for m in MODULES if m.startswith("rnndsl.lang")])
    assert list(nx.simple_cycles(g)) == []


def test_data_imports_neither_the_network_nor_the_engine():
    for name in MODULES:
        if name.startswith("rnndsl.data"):
            above = {m for m in imports_of(name)
                     if m.split(".")[1] in ("nn", "autodiff", "train", "run", "render", "cli")}
            assert not above, (name, above)


def test_pictures_do_not_import_the_orchestrator():
    for name in MODULES:  # render/cli.py is the `rnndsl render` command, a CLI module
        if name.startswith("rnndsl.render") and name != "rnndsl.render.cli":
            assert not {m for m in imports_of(name) if m in ("rnndsl.run", "rnndsl.cli")}, name


def test_a_batch_is_host_arrays_and_the_network_wraps_them(tmp_path):
    (tmp_path / "t.txt").write_text("pos a good film , really .\nneg bad , bad\n"
                                    "pos fine\nneg no , no , no\n")
    spec = tmp_path / "h.rnn"
    spec.write_text(
        'data toy = classification(train="t.txt", dev="t.txt")\n'
        "w = embed(toy.words, d=4)\n"
        "c = embed(toy.chars, d=3) |> lstm(d=2) |> last\n"
        "m = concat(w, c) |> spans(lstm(d=2) |> last) |> lstm(d=2) |> last |> softmax(toy.labels)\n"
        "train m on toy { epochs = 1 }\n")
    prep = prepare(lang.load(spec), log=lambda s: None)
    (batch,) = prep.data.batches(prep.data.train[:4], 4, None, prep.needs)
    assert set(batch.inputs) == {"toy.words", "toy.chars", "__spans__"}
    words, chars, spans = (batch.inputs[k] for k in ("toy.words", "toy.chars", "__spans__"))
    assert isinstance(words, TokenIds) and isinstance(chars, TokenIds) and chars.outer is words
    assert isinstance(spans, SpanIndex)
    for a in (words.ids, chars.ids, chars.outer_index, spans.index, batch.targets,
              batch.inputs_mask):
        assert type(a) is np.ndarray
    on = on_backend(batch, prep.net.backend.xp)
    w, c = on.inputs["toy.words"], on.inputs["toy.chars"]
    assert isinstance(w, TokenValue) and c.outer is w.info  # one SeqInfo for the words' grid
    np.testing.assert_array_equal(np.asarray(w.ids), words.ids)
    assert prep.net.run(on.inputs, _ctx())[prep.net.output] is not None


def _ctx():
    from rnndsl.nn.module import RunContext

    return RunContext(train=False)
