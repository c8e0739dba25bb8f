"""Golden diagnostics: every tests/bad_specs/NAME.rnn against NAME.expected, exactly.

Set RNNDSL_UPDATE_GOLDENS=1 to rewrite the expected files after a deliberate change (then read
the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rnndsl.lang import catalogue, check_file

BAD = Path(__file__).parent / "bad_specs"
SPECS = sorted(p.name for p in BAD.glob("*.rnn"))


def render(name: str) -> str:
    return "\n".join(d.format() for d in check_file(name)) + "\n"


def test_enough_bad_specs():
    assert len(SPECS) >= 40


@pytest.mark.parametrize("name", SPECS)
def test_golden_diagnostics(name: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(BAD)  # paths in the messages are relative to this folder: stable
    got = render(name)
    expected_file = BAD / name.replace(".rnn", ".expected")
    if os.environ.get("RNNDSL_UPDATE_GOLDENS"):
        expected_file.write_text(got, encoding="utf-8")
    assert expected_file.exists(), f"no golden file for {name}; run with RNNDSL_UPDATE_GOLDENS=1"
    assert got == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", SPECS)
def test_bad_spec_fails_with_known_kinds(name: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(BAD)
    diags = check_file(name)
    assert diags, f"{name} should have errors"
    assert all(d.kind in catalogue.DIAGNOSTIC_KINDS for d in diags)
    assert all(d.span is not None and d.span.path == name for d in diags)
    keys = [d.sort_key() for d in diags]
    assert keys == sorted(keys), "diagnostics come sorted by position"


def test_every_golden_has_a_spec():
    for expected in BAD.glob("*.expected"):
        assert (BAD / expected.name.replace(".expected", ".rnn")).exists(), expected.name


def test_the_required_kinds_are_exercised(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(BAD)
    seen = {d.kind for name in SPECS for d in check_file(name)}
    required = {
        "ParseError",
        "UnknownLayer",
        "UnknownName",
        "UnknownArgument",
        "MissingArgument",
        "DuplicateArgument",
        "BadValue",
        "OutOfRange",
        "TypeMismatch",
        "ShapeMismatch",
        "UnknownField",
        "MissingFile",
        "DuplicateDefinition",
        "UndefinedModel",
        "NotRecurrent",
        "HeadNotLast",
        "NoHead",
        "UnknownSetting",
        "CyclicDefinition",
    }
    assert required <= seen, required - seen
