"""`rnndsl predict`: tag or classify raw text with a trained run, in input order."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .autodiff import backend as Bk
from .autodiff.tensor import no_grad
from .data.readers import Example, iter_lines
from .errors import DataError
from .nn.batch import on_backend
from .nn.heads import CRFHead
from .nn.module import RunContext, VecValue
from .prepare import load_run
from .train.distributed import get_comm
from .train.loop import gather_predictions


def read_raw(stream: TextIO, source: str) -> list[Example]:
    """One whitespace-tokenized sentence per line; empty lines are skipped."""
    out = []
    for i, line in enumerate(stream, 1):
        words = tuple(line.split())
        if words:
            out.append(Example(words, source=source, line=i))
    return out


def predict(run_dir: str, file: str = "-", fmt: str = "text", confidence: bool = False,
            out: TextIO | None = None) -> list[Any]:
    """Write predictions to ``out`` (stdout): tagging `word TAG` per line, a blank line per
    sentence; classification `LABEL<TAB>sentence`. Returns the predictions."""
    out = out or sys.stdout
    prep, _ = load_run(run_dir, log=lambda s: None)
    data, net = prep.data, prep.net
    if data.kind == "lm":
        raise DataError("predict works for taggers and classifiers; this run is a language model",
                        hint="use `rnndsl generate RUN_DIR` for text and "
                             "`rnndsl eval RUN_DIR FILE` for perplexity")
    if "feats" in prep.needs and fmt != "input":
        raise DataError("this model also reads a feature column (feature_column in the spec), "
                        "which raw text does not have",
                        hint="give a file in the data's own column format with --format input")
    if fmt == "input" and file != "-":
        examples = data.read_file(file)
    elif file == "-":
        examples = read_raw(sys.stdin, "<stdin>")
    else:  # a regular file (not a FIFO or a device), lines bounded, errors at file:line
        examples = [Example(tuple(text.split()), source=file, line=n)
                    for n, text in iter_lines(file) if text.split()]
    if fmt != "input":  # raw text: the reader's own tokenizer (tweets)
        examples = [Example(data.raw_tokens(ex.words), source=ex.source, line=ex.line)
                    for ex in examples]
    if not examples:
        raise DataError(f"{file}: no sentences to predict")
    head = net.head
    names = data.label_names()
    comm = get_comm()
    ids: dict[int, list[int]] = {}
    confs: dict[int, list[float]] = {}
    with no_grad():
        for n_batch, b in enumerate(data.batches(examples, 64, None, prep.needs)):
            if n_batch % comm.size != comm.rank:  # under MPI, each rank predicts its share
                continue
            b = on_backend(b, net.backend.xp)
            values = net.run(b.inputs, RunContext(train=False))
            v = values[net.output]
            scores = head.scores(v)
            if isinstance(v, VecValue):
                probs = Bk.to_host(head.probabilities(scores))
                for j, i in enumerate(b.indices):
                    k = int(probs[j].argmax())
                    ids[i], confs[i] = [k], [float(probs[j, k])]
                continue
            valid = net.backend.xp.asarray(Bk.host.arange(b.lengths.max())[:, None] < b.lengths)
            if isinstance(head, CRFHead):
                paths = head.decode(scores, valid)
                marg = Bk.to_host(head.marginals(scores, valid)) if confidence else None
            else:
                probs = Bk.to_host(head.probabilities(scores))  # (T, B, K)
                paths = [probs[: int(n), j].argmax(-1).tolist() for j, n in enumerate(b.lengths)]
                marg = probs.transpose(1, 0, 2)
            for j, i in enumerate(b.indices):
                ids[i] = list(paths[j])
                confs[i] = [float(marg[j, t, k]) if marg is not None else -1.0
                            for t, k in enumerate(paths[j])]
    ids_all = gather_predictions(comm, ids, len(examples), per_token=True)
    conf_all = gather_floats(comm, confs, len(examples))
    results: list[Any] = []
    for ex, ks, cs in zip(examples, ids_all, conf_all):
        if data.kind == "classification":
            results.append((names[ks[0]], cs[0]))
        else:
            results.append([(names[k], c) for k, c in zip(ks, cs)])
    if not comm.is_root:
        return results
    for ex, r in zip(examples, results):
        if isinstance(r, tuple):
            lab, p = r
            extra = f"\t{p:.4f}" if confidence else ""
            out.write(f"{lab}{extra}\t{' '.join(ex.words)}\n")
        else:
            for w, (t, p) in zip(ex.words, r):
                extra = f" {p:.4f}" if confidence and p >= 0 else ""
                out.write(f"{w} {t}{extra}\n")
            out.write("\n")
    return results


def gather_floats(comm: Any, mine: dict[int, list[float]], n: int) -> list[list[float]]:
    """Every rank's per-example float lists, in input order (see gather_predictions)."""
    if comm.size == 1:
        return [mine[i] for i in range(n)]
    idx = Bk.host.array(sorted(mine), dtype=Bk.host.int64)
    lens = Bk.host.array([len(mine[i]) for i in idx.tolist()], dtype=Bk.host.int64)
    flat = Bk.host.array([c for i in idx.tolist() for c in mine[i]], dtype=Bk.host.float64)
    all_idx, all_lens, all_flat = (comm.allgatherv(a) for a in (idx, lens, flat))
    out: list = [None] * n
    off = 0
    for i, k in zip(all_idx.tolist(), all_lens.tolist()):
        out[i] = all_flat[off:off + k].tolist()
        off += k
    return out
