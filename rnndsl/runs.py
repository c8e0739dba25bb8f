"""A trained run in Python: ``rnndsl.load_run(path)``.

    run = rnndsl.load_run("runs/pos")
    run.predict(["the brown fox jumped", "time flies"])   # tags (a CRF: marginals; nbest=k)
    run.evaluate("dev.conllu")                            # the dict `rnndsl eval --json` prints
    run.sample(prompt="the", tokens=20, seed=1)           # a language model's text
    run.network, run.spec, run.metrics                    # Network, checked spec, per-epoch rows

Plain Python types in and out: sentences are strings (split on whitespace) or lists of tokens;
results are lists of dicts of str, float and list. Batching and length sorting happen inside,
results come back in input order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .autodiff import backend as Bk
from .autodiff.tensor import no_grad
from .data.readers import Example
from .errors import CheckpointError, DataError
from .nn.batch import on_backend
from .nn.heads import CRFHead
from .nn.module import RunContext, VecValue


class Run:
    """A run directory loaded for use: its network with the best weights, spec and history."""

    def __init__(self, path: str | Path, backend: str | None = None):
        from .prepare import load_run as _load

        self.prep, self.path = _load(path, backend, log=lambda s: None)
        self.network = self.prep.net
        self.spec = self.prep.spec
        self.kind = self.prep.data.kind  # "tagging", "classification" or "lm"

    @property
    def labels(self) -> list[str]:
        """The tag set (tagger) or label set (classifier), in score order."""
        if self.kind == "lm":
            return []
        return list(self.prep.data.label_names())

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The training history: one dict per epoch (train loss, dev metrics, seconds, ...)."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for i, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    raise CheckpointError(f"{path}:{i}: not a JSON line",
                                          hint="the file was edited; restore it") from None
        return rows

    @property
    def final_metrics(self) -> dict[str, Any]:
        """metrics.json: the best epoch's dev metrics (empty before training finished)."""
        path = self.path / "metrics.json"
        return json.loads(path.read_text("utf-8")) if path.exists() else {}

    def __repr__(self) -> str:
        return (f"Run({str(self.path)!r}: {self.kind}, model {self.prep.cfg.model}, "
                f"{self.network.parameter_count():,} parameters)")

    # --- taggers and classifiers ---------------------------------------------------------------
    def predict(self, sentences: Sequence[str | Sequence[str]], *, nbest: int | None = None,
                batch: int = 64) -> list[dict[str, Any]]:
        """Tags or a label for each sentence, in input order.

        Tagger: {"words", "tags", "probabilities"} with each tag's probability (a CRF: its
        posterior marginal, the one of `rnndsl predict --confidence`); with ``nbest=k`` also
        "nbest": up to k [{"tags", "score"}] best first (a CRF: k-best Viterbi over its scores;
        a softmax tagger: the k best tag sequences by summed log-probability).
        Classifier: {"words", "label", "probabilities": {label: p}}.
        """
        data, net = self.prep.data, self.prep.net
        if self.kind == "lm":
            raise DataError("predict tags or classifies; this run is a language model",
                            hint="use run.sample(...) for text and run.evaluate(path) for "
                                 "perplexity")
        if "feats" in self.prep.needs:
            raise DataError("this model also reads a feature column (feature_column in the "
                            "spec), which raw sentences do not have",
                            hint="use run.evaluate(path) on a file in the data's own format")
        if isinstance(sentences, str):
            raise DataError("give a list of sentences, e.g. run.predict([\"the brown fox\"])")
        if nbest is not None and (not isinstance(nbest, int) or nbest < 1):
            raise DataError(f"nbest must be a whole number >= 1, got {nbest!r}")
        if nbest is not None and self.kind != "tagging":
            raise DataError("nbest gives k-best tag sequences; this run is a classifier",
                            hint="its probabilities already rank every label")
        examples = []
        for i, s in enumerate(sentences):
            words = tuple(s.split()) if isinstance(s, str) else tuple(str(w) for w in s)
            if not words:
                raise DataError(f"sentence {i} is empty")
            examples.append(Example(words, source="<predict>", line=i + 1))
        names = data.label_names()
        head = net.head
        xp = net.backend.xp
        results: list[Any] = [None] * len(examples)
        with no_grad():
            for b in data.batches(examples, batch, None, self.prep.needs):
                b = on_backend(b, xp)
                values = net.run(b.inputs, RunContext(train=False))
                v = values[net.output]
                scores = head.scores(v)
                if isinstance(v, VecValue):
                    probs = Bk.to_host(head.probabilities(scores))
                    for j, i in enumerate(b.indices):
                        k = int(probs[j].argmax())
                        results[i] = {"words": list(examples[i].words), "label": names[k],
                                      "probabilities": {n: float(probs[j, c])
                                                        for c, n in enumerate(names)}}
                    continue
                valid = xp.asarray(Bk.host.arange(b.lengths.max())[:, None] < b.lengths)
                if isinstance(head, CRFHead):
                    paths = head.decode(scores, valid)
                    marg = Bk.to_host(head.marginals(scores, valid))  # (B, T, K)
                    kbest = (head.crf.nbest(scores.detach().transpose(1, 0, 2), valid.T, k=nbest)
                             if nbest else None)
                else:
                    probs = Bk.to_host(head.probabilities(scores))  # (T, B, K)
                    paths = [probs[: int(n), j].argmax(-1).tolist()
                             for j, n in enumerate(b.lengths)]
                    marg = probs.transpose(1, 0, 2)
                    kbest = None
                    if nbest:
                        from .nn.crf import nbest as kbest_paths

                        # independent positions: a chain with zero transition scores
                        k_ = marg.shape[-1]
                        logp = Bk.host.log(Bk.host.maximum(marg, 1e-300))
                        z = Bk.host.zeros((k_, k_))
                        kbest = kbest_paths(logp, z, z[0], z[0], Bk.to_host(valid).T, k=nbest)
                for j, i in enumerate(b.indices):
                    path = [int(k) for k in paths[j]]
                    r: dict[str, Any] = {
                        "words": list(examples[i].words), "tags": [names[k] for k in path],
                        "probabilities": [float(marg[j, t, k]) for t, k in enumerate(path)]}
                    if kbest is not None:
                        r["nbest"] = [{"tags": [names[k] for k in p], "score": float(sc)}
                                      for p, sc in kbest[j]]
                    results[i] = r
        return results

    # --- every kind ----------------------------------------------------------------------------
    def evaluate(self, path: str | Path) -> dict[str, Any]:
        """Metrics on a file in the spec's data format: the dict `rnndsl eval --json` prints."""
        from .prepare import eval_prepared

        return eval_prepared(self.prep, str(path))

    # --- language models -----------------------------------------------------------------------
    def sample(self, prompt: str = "", tokens: int = 50, *, temperature: float = 1.0,
               top_k: int | None = None, seed: int | None = None,
               stop_at_eos: bool = False) -> str:
        """A language model's continuation of ``prompt`` (the prompt itself not included):
        ``tokens`` tokens, fewer with stop_at_eos. temperature 0 is greedy; a seed repeats."""
        from .generate import detokenize, sample

        toks = sample(self.network, self.prep.data, prompt, tokens, temperature, top_k, seed,
                      stop_at_eos)
        return detokenize(self.prep.data, toks)


def load_run(path: str | Path, backend: str | None = None) -> Run:
    """Load a run directory written by `rnndsl run` (nothing outside it is read)."""
    return Run(path, backend)


__all__ = ["Run", "load_run"]
