"""The run report: one self-contained HTML page, opened in headless Chromium (every section
renders, the pictures load, the console stays clean, nothing is fetched, no sideways scrolling
on a phone), `rnndsl report`, and the training curves (distinct series, integer epochs)."""

from __future__ import annotations

import re
import subprocess
import sys

import evalkit
import pytest
from browser import Browser, find_chromium

from rnndsl.report import build_report
from rnndsl.report.curves import panels
from rnndsl.run import load_run, run

SECTIONS = ["summary", "curves", "metrics", "confusion", "predictions", "unrolled"]
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium (Debian: chromium-headless-shell; "
                             "`make deps` installs it)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "ner").mkdir()
    (tmp / "clf").mkdir()
    ner = run(evalkit.ner_spec(tmp / "ner", epochs=3), out=str(tmp / "ner" / "run"),
              log=lambda s: None)
    clf = run(evalkit.classifier_spec(tmp / "clf", epochs=3), out=str(tmp / "clf" / "run"),
              log=lambda s: None)
    return {"ner": (tmp / "ner" / "run", ner), "clf": (tmp / "clf" / "run", clf)}


def test_the_report_is_written_at_the_end_of_a_run_and_stands_alone(runs):
    for name, (run_dir, final) in runs.items():
        page = (run_dir / "report.html").read_text("utf-8")
        for sid in SECTIONS:
            assert f'<section id="{sid}">' in page, (name, sid)
        assert "<script" not in page and "<link" not in page
        assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
        # the pictures are inline SVG: three curve panels and the unrolled network
        assert page.count('src="data:image/svg+xml;base64,') == 4, name
        assert f"{final['dev_accuracy']:.2f}" in page


def test_report_tables_name_the_classes_and_chunk_types(runs):
    ner = (runs["ner"][0] / "report.html").read_text("utf-8")
    assert "dev: chunks by type (conlleval)" in ner and "test: chunks by type" in ner
    for kind in ("LOC", "ORG", "PER"):
        assert f"<td>{kind}</td>" in ner
    assert 'class="tok err"' in ner or "0 of 20 dev sentences" in ner  # errors are marked
    clf = (runs["clf"][0] / "report.html").read_text("utf-8")
    assert "dev: by class" in clf and "<td>sport</td>" in clf
    assert re.search(r"\d+ of 30 dev examples are wrong", clf)


def test_report_command(runs, tmp_path):
    out = tmp_path / "r.html"
    p = subprocess.run([sys.executable, "-m", "rnndsl.cli", "report", str(runs["clf"][0]),
                        "-o", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # the same page as the one written at the end of the run
    assert out.read_text("utf-8") == (runs["clf"][0] / "report.html").read_text("utf-8")
    prep, _ = load_run(runs["clf"][0], log=lambda s: None)
    assert out.read_text("utf-8") == build_report(runs["clf"][0], prep)
    p = subprocess.run([sys.executable, "-m", "rnndsl.cli", "report", str(tmp_path / "none")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "no such run directory" in p.stderr


@needs_chromium
@pytest.mark.parametrize("name", ["ner", "clf"])
@pytest.mark.parametrize("width,height,mobile", [(1280, 800, False), (390, 844, True)])
def test_report_renders_in_headless_chromium(runs, name, width, height, mobile, tmp_path):
    page = runs[name][0] / "report.html"
    with Browser(CHROMIUM) as b:
        b.open(page.resolve().as_uri(), width, height, mobile=mobile)
        sections = b.evaluate("""[...document.querySelectorAll('section')].map(s => ({
            id: s.id, h: s.getBoundingClientRect().height,
            title: s.querySelector('h2') ? s.querySelector('h2').innerText : ''}))""")
        assert [s["id"] for s in sections] == SECTIONS
        assert all(s["h"] > 50 and s["title"] for s in sections), sections
        images = b.evaluate("""[...document.images].map(i => ({ok: i.complete,
            w: i.naturalWidth, shown: i.getBoundingClientRect().width}))""")
        assert len(images) == 4 and all(i["ok"] and i["w"] > 0 and i["shown"] > 0
                                        for i in images), images
        # the heatmap has a cell per pair of labels; the tables are filled
        assert b.evaluate("document.querySelectorAll('table.heat td').length") > 4
        # a phone's screen: the page itself never scrolls sideways (wide tables scroll inside)
        overflow = b.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the {width}px screen"
        b.screenshot(tmp_path / "shot.png")
        assert (tmp_path / "shot.png").stat().st_size > 10_000
        assert b.problems() == []
        assert all(u.startswith(("file:", "data:")) for u in b.requests())


def test_curve_panels_have_distinct_series_and_integer_epochs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnndsl.report.curves import _draw

    history = [{"epoch": e, "train_loss": 1 / e, "dev_loss": 1.2 / e, "lr": 0.01,
                "dev_accuracy": 50 + e, "dev_f1": 40 + e, "dev_macro_f1": 30 + e,
                "dev_precision": 41 + e, "dev_recall": 39 + e, "dev_micro_f1": 40 + e}
               for e in (1, 2, 3)]
    ps = panels(history)
    assert [p[0] for p in ps] == ["loss", "dev score (%)", "learning rate"]
    series = [s for _, ss in ps for s in ss]
    assert "dev_micro_f1" not in [s[0] for s in series]
    assert "dev_loss" in [s[0] for s in series]
    for ylabel, ss in ps:  # within a panel no two series share a colour or a marker
        assert len({s[2] for s in ss}) == len(ss) and len({s[3] for s in ss}) == len(ss)
        fig, ax = plt.subplots()
        _draw(ax, history, ylabel, ss)
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        colours = [line.get_color() for line in ax.get_lines()]
        assert len(set(colours)) == len(colours) == len(ss)
        plt.close(fig)


def test_a_nested_model_gets_its_two_level_unrolled_picture(tmp_path):
    # a character encoder inside each word: drawn as a chain per word under the word level
    spec = evalkit.ner_spec(tmp_path, epochs=1, model=evalkit.CHAR_MODEL, test=False)
    run(spec, out=str(tmp_path / "r"), log=lambda s: None)
    page = (tmp_path / "r" / "report.html").read_text("utf-8")
    unrolled = page[page.index('<section id="unrolled">'):]
    assert "the unrolled picture could not be drawn" not in unrolled and "<img" in unrolled
    assert page.count('src="data:image/svg+xml;base64,') == 4
