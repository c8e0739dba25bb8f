"""Run an exported ONNX file in onnxruntime and compare its scores with rnndsl's (test helper;
onnxruntime is a test dependency only)."""

from __future__ import annotations

import numpy as np

from rnndsl.autodiff import backend as Bk
from rnndsl.autodiff.tensor import no_grad
from rnndsl.export.onnx import feeds
from rnndsl.nn.batch import on_backend
from rnndsl.nn.heads import CRFHead
from rnndsl.nn.module import RunContext, VecValue


def zero_states(sess, batch):
    """Zeros for a language model's state inputs (D, B, d)."""
    return {i.name: np.zeros((i.shape[0], batch, i.shape[2]), np.float32)
            for i in sess.get_inputs() if i.name.endswith(("h0", "c0"))}


def max_difference(net, data, needs, path, examples, batch=16) -> float:
    """The largest |onnxruntime - rnndsl| over the real positions' scores of ``examples``
    (and, for a CRF, over its transition, start and end scores)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    worst = 0.0
    for s in range(0, len(examples), batch):
        chunk = examples[s:s + batch]
        feed = {k: v for k, v in feeds(data, chunk, needs).items() if k in names}
        got = dict(zip(outs, sess.run(None, {**feed, **zero_states(sess, len(chunk))})))
        with no_grad():
            b = on_backend(data.make_batch(chunk, list(range(len(chunk))), needs), net.backend.xp)
            v = net.run(b.inputs, RunContext())[net.output]
            sc = Bk.to_host(net.head.scores(v).data)
        for j, i in enumerate(b.indices):
            n = len(chunk[i].words)
            ours = sc[j] if isinstance(v, VecValue) else sc[:n, j]
            theirs = got["scores"][i] if isinstance(v, VecValue) else got["scores"][i, :n]
            assert ours.shape == theirs.shape
            worst = max(worst, float(np.abs(ours - theirs).max()))
        if isinstance(net.head, CRFHead):
            for name, a in zip(("transitions", "start", "end"), net.head.crf._decoding_scores()):
                a = Bk.to_host(a)
                fin = np.isfinite(a)
                assert (fin == np.isfinite(got[name])).all()
                worst = max(worst, float(np.abs(a[fin] - got[name][fin]).max(initial=0)))
    return worst
