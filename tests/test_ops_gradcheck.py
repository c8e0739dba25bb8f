"""Every registered op has a float64 finite-difference gradient check, driven from one table."""

import importlib
import pkgutil

import gradcheck_rows
import pytest

import rnndsl.nn.layers  # noqa: F401  (registers the cell step ops and the layout ops)
from rnndsl.autodiff import OPS, check_grads

try:  # the CRF registers its own ops
    import rnndsl.nn.crf  # noqa: F401
except ImportError:  # pragma: no cover - only while the CRF module does not exist
    pass


def all_rows() -> dict:
    rows: dict = {}
    for mod in pkgutil.iter_modules(gradcheck_rows.__path__):
        m = importlib.import_module(f"gradcheck_rows.{mod.name}")
        for name, row in getattr(m, "ROWS", {}).items():
            assert name not in rows, f"op {name} has two gradcheck rows"
            rows[name] = row
    return rows


ROWS = all_rows()


def test_every_registered_op_has_a_row():
    missing = sorted(set(OPS) - set(ROWS))
    assert not missing, f"ops registered without a gradcheck row: {missing}"
    stale = sorted(set(ROWS) - set(OPS))
    assert not stale, f"gradcheck rows for ops that do not exist: {stale}"


@pytest.mark.parametrize("name", sorted(ROWS))
def test_op_gradient(name):
    from gradcheck_rows import core

    core.reseed(name)
    f, args = ROWS[name]()
    result = check_grads(f, *args)
    assert result.ok, str(result)
    assert result.max_rel_error < 1e-6
