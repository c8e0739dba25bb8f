"""NumPy references of the cells' equations, written from the papers, for the parity tests.

PyTorch is the oracle for the cells and forms it has (test_torch_parity.py); a cell or form it
lacks is held to one of these instead (test_cell_references.py), and tests/test_tables.py
fails when a cell has neither. Each reference runs one direction over one sequence:
``ref(options, x (T, d_in), W_ih (d_in, G), b_ih (G,), W_hh (rows, G), b_hh (G,)) -> (T, H)``
with the gate blocks in the cell's order (``lang.cells.CellDef.gate_names``).
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def srnn(opts, x, W_ih, b_ih, W_hh, b_hh):
    """Elman: s_i = g(x_i W^x + s_{i-1} W^s + b)."""
    g = np.tanh if opts.get("act", "tanh") == "tanh" else (lambda a: np.maximum(a, 0.0))
    s, out = np.zeros(W_hh.shape[0]), []
    for x_i in x:
        s = g(x_i @ W_ih + s @ W_hh + b_ih + b_hh)
        out.append(s)
    return np.array(out)


def gru(opts, x, W_ih, b_ih, W_hh, b_hh):
    """GRU, gates (r, z, n). reset=before (Cho et al. 2014): s~ = tanh(x W^xn + (r * s) W^sn + b),
    s' = (1 - z) s + z s~; reset=after (cuDNN): n = tanh(x W^xn + b_xn + r * (s W^sn + b_hn)),
    s' = (1 - z) n + z s."""
    H = W_hh.shape[0]
    s, out = np.zeros(H), []
    for x_i in x:
        xg = x_i @ W_ih + b_ih
        if opts.get("reset", "before") == "after":
            hh = s @ W_hh + b_hh
            r = _sigmoid(xg[:H] + hh[:H])
            z = _sigmoid(xg[H:2 * H] + hh[H:2 * H])
            n = np.tanh(xg[2 * H:] + r * hh[2 * H:])
            s = (1 - z) * n + z * s
        else:
            xg = xg + b_hh
            r = _sigmoid(xg[:H] + s @ W_hh[:, :H])
            z = _sigmoid(xg[H:2 * H] + s @ W_hh[:, H:2 * H])
            n = np.tanh(xg[2 * H:] + (r * s) @ W_hh[:, 2 * H:])
            s = (1 - z) * s + z * n
        out.append(s)
    return np.array(out)


def indrnn(opts, x, W_ih, b_ih, W_hh, b_hh):
    """IndRNN (Li et al. 2018): s_i = g(x_i W + u * s_{i-1} + b), u element-wise (W_hh (1, H))."""
    g = np.tanh if opts.get("act", "relu") == "tanh" else (lambda a: np.maximum(a, 0.0))
    u = W_hh[0]
    s, out = np.zeros(u.shape), []
    for x_i in x:
        s = g(x_i @ W_ih + u * s + b_ih + b_hh)
        out.append(s)
    return np.array(out)


REFERENCES = {"srnn": srnn, "gru": gru, "indrnn": indrnn}
