"""Fuzzing the CLI with mutated and hostile specs, corrupted data files and tampered run
directories (tests/fuzz_cases.py): no internal error, traceback, hang past 5 s, memory past
1 GB, error on the wrong line, or hostile input accepted. A bounded sample here (about a minute
on two cores); RNNDSL_FUZZ=N runs N times as many, and benchmarks/fuzz_hostile.py the full
sizes with a table."""

from __future__ import annotations

import os

import pytest
from fuzz_cases import data_cases, run_case, rundir_cases, spec_cases, train_base

SCALE = max(1, int(os.environ.get("RNNDSL_FUZZ", "1") or 1))


def failures(cases, tmp_path):
    bad = []
    for i, case in enumerate(cases):
        res = run_case(case, tmp_path / f"c{i}")
        if res.status != "clean":
            bad.append((res.status, case.kind, res.seconds, res.output[-600:]))
    return bad


def test_fuzz_specs(tmp_path):
    assert failures(spec_cases(240 * SCALE, seed=1), tmp_path) == []


def test_fuzz_data_files(tmp_path):
    assert failures(data_cases(60 * SCALE, seed=2), tmp_path) == []


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return train_base(tmp_path_factory.mktemp("fuzzbase"))


def test_fuzz_run_directories(base_run, tmp_path):
    assert failures(rundir_cases(20 * SCALE, base_run, seed=3), tmp_path) == []
