"""docs/language.md is generated from the catalogue and must match it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from rnndsl.lang import catalogue as C
from rnndsl.lang.docgen import render

ROOT = Path(__file__).resolve().parents[1]


def test_language_md_is_generated_from_the_catalogue():
    checked_in = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert checked_in == render(), (
        "docs/language.md is stale: run `python -m rnndsl.lang.docgen > docs/language.md`"
    )


def test_docgen_runs_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "rnndsl.lang.docgen"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out == render()


def test_everything_in_the_catalogue_is_documented():
    text = render()
    for name in [*C.LAYERS, *C.READERS]:
        assert f"`{name}`" in text, name
    for table in (C.TRAIN_SETTINGS, C.EVAL_SETTINGS, C.OUTPUT_SETTINGS):
        for key in table:
            assert f"| `{key}` |" in text, key
    for kind in C.DIAGNOSTIC_KINDS:
        assert f"| `{kind}` |" in text, kind


def test_every_reported_kind_is_documented():
    lang = ROOT / "rnndsl" / "lang"
    sources = "".join(p.read_text() for p in lang.glob("*.py"))
    sources += (ROOT / "rnndsl" / "lang" / "__init__.py").read_text()
    used = set(re.findall(r'(?:report|Diagnostic|Mismatch)\(\s*"([A-Za-z]+)"', sources))
    assert {"ParseError", "TypeMismatch", "UnknownLayer", "UnreadableFile"} <= used
    assert used <= set(C.DIAGNOSTIC_KINDS), used - set(C.DIAGNOSTIC_KINDS)


def test_adding_a_layer_walkthrough_exists():
    text = (ROOT / "docs" / "adding_a_layer.md").read_text()
    for step in ("catalogue.py", "LayerDef", "docgen", "tests/bad_specs"):
        assert step in text
