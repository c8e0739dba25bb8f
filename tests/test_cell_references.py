"""Cells against NumPy references of their equations (tests/cell_references.py): every form of
every cell with a reference, bi(...) |> stack(2), outputs over a padded batch."""

import numpy as np
import pytest
from cell_references import REFERENCES

import rnndsl
from rnndsl.gradchecks import cell_forms, form_text
from rnndsl.lang.cells import CELLS

ROWS = [pytest.param(name, form, id=f"{name}{form_text(form)}")
        for name in sorted(REFERENCES) for form in cell_forms(CELLS[name])]


def reference_network(net, x, lengths, options, ref):
    """The stacked bi network computed sequence by sequence, direction by direction."""
    out = np.zeros((x.shape[0], x.shape[1], 2 * net.recurrent_layers()[0].d))
    for b, n in enumerate(lengths):
        h = x[b, :n]
        for layer in net.recurrent_layers():
            G = layer.cell.gates * layer.d
            ys = []
            for dd in range(layer.D):
                args = (layer.W_ih.numpy()[:, dd * G:(dd + 1) * G],
                        layer.b_ih.numpy()[dd * G:(dd + 1) * G],
                        layer.W_hh.numpy()[dd], layer.b_hh.numpy()[dd, 0])
                seq = h if dd == 0 else h[::-1]
                y = ref(options, seq, *args)
                ys.append(y if dd == 0 else y[::-1])
            h = np.concatenate(ys, axis=-1)
        out[b, :n] = h
    return out


@pytest.mark.parametrize("name,form", ROWS)
def test_cell_matches_its_numpy_reference(name, form):
    net = rnndsl.compile(f"bi{name}(d=3{form_text(form)}) |> stack(2)", input_dim=4,
                         dtype="float64", seed=3)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 6, 4))
    lengths = [6, 2, 4]
    y = net(x, lengths=lengths).numpy()
    np.testing.assert_allclose(y, reference_network(net, x, lengths, form, REFERENCES[name]),
                               atol=1e-12, rtol=1e-12)
