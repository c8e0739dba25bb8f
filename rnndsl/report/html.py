"""`rnndsl report RUN_DIR -o report.html`: one self-contained HTML page about a trained run.

Sections: the spec and model summary; the training curves; the final metrics (dev and test)
with the per-class and per-type tables; the confusion matrix as a heatmap; a sample of dev
predictions with the errors marked; the network unrolled over one dev sentence under the
trained weights. Pictures are inline (data: URIs of SVG), the styles are inline, there is no
script and nothing is fetched, so the file can be mailed or opened offline; the layout
reflows from a laptop screen down to a phone.

The page is built from the run directory alone (spec.rnn, config.json, vocab.json,
metrics.json, metrics.jsonl, the predictions and the best weights); a classifier's dev
predictions are paired with the gold labels of the dev file named in the spec, and where that
file is gone the sample says so.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, RnnError
from ..train import checkpoint
from .curves import panel_svgs

SAMPLE = 12  # dev examples shown
E = html.escape

CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9d9de; --bad: #b3261e; --badbg: #fde7e4;
  --ok: #1b6e3a; --accent: #0b57d0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: #fafafa; }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 16px; }
header { padding-top: 20px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 1.2rem; margin: 0 0 10px; }
h3 { font-size: 1rem; margin: 16px 0 6px; }
.sub { color: var(--muted); margin: 0 0 10px; }
nav { display: flex; flex-wrap: wrap; gap: 6px 14px; margin: 8px 0 4px; }
nav a { color: var(--accent); text-decoration: none; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px;
  margin: 14px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(124px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
.card b { display: block; font-size: 1.2rem; white-space: nowrap; }
.card span { color: var(--muted); font-size: 0.85rem; }
pre { background: #f4f4f6; padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 12.5px;
  line-height: 1.35; margin: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: right;
  white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid var(--fg); }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(290px, 1fr)); gap: 10px; }
.plots figure { margin: 0; }
img { max-width: 100%; height: auto; display: block; }
.wide { overflow-x: auto; }
.wide img { min-width: 640px; }  /* a phone pans the unrolled network instead of shrinking it */
figcaption { color: var(--muted); font-size: 0.85rem; }
.heat td { text-align: center; min-width: 2.6em; }
.heat th.col { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left;
  padding: 6px 2px; }
.sent { margin: 6px 0; padding: 6px 8px; border-left: 3px solid var(--line); line-height: 2.1; }
.sent.bad { border-left-color: var(--bad); }
.tok { display: inline-block; margin: 0 3px 0 0; padding: 0 4px; border-radius: 4px;
  line-height: 1.3; text-align: center; vertical-align: top; }
.tok small { display: block; color: var(--muted); font-size: 11px; }
.tok.err { background: var(--badbg); outline: 1px solid var(--bad); }
.tok.err small { color: var(--bad); }
tr.err td { background: var(--badbg); }
.err-mark { color: var(--bad); font-weight: 600; }
.note { color: var(--muted); font-style: italic; }
.legend { color: var(--muted); font-size: 0.85rem; margin: 4px 0 8px; }
@media (max-width: 600px) {
  body { font-size: 14px; }
  header, main { padding: 0 8px; }
  section { padding: 10px; border-radius: 0; margin: 10px -8px; border-left: 0; border-right: 0; }
  table { font-size: 12px; }
  th, td { padding: 2px 5px; }
}
"""


def _img(svg: str, alt: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{E(alt)}">'


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return E(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{E(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_num(c)}</td>" for c in r) + "</tr>" for r in rows)
    c = f' class="{cls}"' if cls else ""
    return f'<div class="scroll"><table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody>' \
           "</table></div>"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing",
                              hint="is this a finished run directory?") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None


def _history(run_dir: Path) -> list[dict]:
    """The epoch records: metrics.jsonl, else (a chain-thaw run, whose epochs ran in its stage
    folders) the history its last checkpoint keeps."""
    path = run_dir / "metrics.jsonl"
    rows = []
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        try:
            meta = json.loads((run_dir / "ckpt" / "last.json").read_text("utf-8"))
            history = meta["state"]["history"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        if not isinstance(history, list):
            return []
        rows = [r for r in history if isinstance(r, dict) and type(r.get("epoch")) is int]
        # the stages count their epochs from 1 each: the curves count on across them
        return [{**r, "epoch": k + 1} for k, r in enumerate(rows)]
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise CheckpointError(f"{path}:{n}: not a JSON line",
                                  hint="the file was edited or cut short") from None
        if isinstance(row, dict) and type(row.get("epoch")) is int:
            rows.append(row)
    return rows


# --- sections ------------------------------------------------------------------------------------
def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{E(title)}</h2>{body}</section>'


def summary_section(spec_text: str, summary: str, conf: Mapping[str, Any],
                    final: Mapping[str, Any]) -> str:
    cards = []
    for key, label in (("dev_f1", "dev F1"), ("dev_accuracy", "dev accuracy"),
                       ("dev_macro_f1", "dev macro-F1"), ("dev_perplexity", "dev perplexity"),
                       ("test_f1", "test F1"), ("test_accuracy", "test accuracy"),
                       ("test_perplexity", "test perplexity")):
        if isinstance(final.get(key), (int, float)):
            cards.append(f'<div class="card"><b>{final[key]:.2f}</b><span>{label}</span></div>')
    facts = [("best epoch", final.get("best_epoch")), ("epochs", final.get("epochs")),
             ("training time", f"{final.get('train_seconds', 0):.0f} s"),
             ("parameters", f"{conf.get('parameters', 0):,}"), ("seed", conf.get("seed")),
             ("backend", conf.get("backend"))]
    cards += [f'<div class="card"><b>{E(str(v))}</b><span>{E(k)}</span></div>'
              for k, v in facts if v is not None]
    return section("summary", "Spec and model", f'<div class="cards">{"".join(cards)}</div>'
                   f"<h3>Model summary</h3><pre>{E(summary)}</pre>"
                   f"<h3>Spec</h3><pre>{E(spec_text)}</pre>")


def curves_section(history: Sequence[Mapping[str, Any]]) -> str:
    if not history:
        return section("curves", "Training curves", '<p class="note">no finished epoch</p>')
    figs = "".join(f"<figure>{_img(svg, title)}<figcaption>{E(title)} by epoch</figcaption>"
                   "</figure>" for title, svg in panel_svgs(history))
    return section("curves", "Training curves", f'<div class="plots">{figs}</div>')


def _splits(final: Mapping[str, Any]) -> list[str]:
    return [s for s in ("dev", "test") if any(k.startswith(f"{s}_") for k in final)]


def metrics_section(final: Mapping[str, Any], kind: str) -> str:
    splits = _splits(final)
    keys = []
    for s in splits:
        for k, v in final.items():
            name = k[len(s) + 1:]
            if k.startswith(f"{s}_") and not isinstance(v, Mapping) and name not in keys:
                keys.append(name)
    rows = [[k, *[final.get(f"{s}_{k}", "") for s in splits]] for k in keys]
    body = [_table(["metric", *splits], rows)]
    if "test" in splits:
        body.append('<p class="legend">test: scored once with the weights of the best dev '
                    "epoch; never used for early stopping or selection</p>")
    for s in splits:
        per_type = final.get(f"{s}_per_type")
        if per_type:
            body.append(f"<h3>{s}: chunks by type (conlleval)</h3>")
            body.append(_table(["type", "precision", "recall", "F1", "gold", "predicted"],
                               [[t, v["precision"], v["recall"], v["f1"], v["support"],
                                 v.get("predicted", "")] for t, v in per_type.items()]))
        per_class = final.get(f"{s}_per_class")
        if per_class:
            what = "tag (per token)" if kind == "tagging" else "class"
            body.append(f"<h3>{s}: by {what}</h3>")
            body.append(_table(["label", "precision", "recall", "F1", "support"],
                               [[t, v["precision"], v["recall"], v["f1"], v["support"]]
                                for t, v in per_class.items()]))
    return section("metrics", "Final metrics", "".join(body))


def confusion_section(final: Mapping[str, Any]) -> str:
    body = []
    for s in _splits(final):
        conf = final.get(f"{s}_confusion")
        if conf:
            body.append(f"<h3>{s}</h3>{heatmap(conf)}")
    if not body:
        return section("confusion", "Confusion matrix",
                       '<p class="note">no confusion matrix for this task (a language '
                       "model)</p>")
    legend = ('<p class="legend">rows: gold, columns: predicted; the shade is the share of the '
              "row (the gold label's items), the number the count</p>")
    return section("confusion", "Confusion matrix", legend + "".join(body))


def heatmap(conf: Mapping[str, Any]) -> str:
    labels, matrix = conf["labels"], conf["matrix"]
    head = '<th>gold \\ predicted</th>' + "".join(f'<th class="col">{E(x)}</th>' for x in labels)
    rows = []
    for g, row in zip(labels, matrix):
        total = sum(row) or 1
        cells = []
        for j, c in enumerate(row):
            share = c / total
            diag = labels[j] == g
            rgb = "27,110,58" if diag else "179,38,30"
            colour = "#fff" if share > 0.55 else "inherit"
            style = f"background:rgba({rgb},{share:.3f});color:{colour}" if c else ""
            cells.append(f'<td style="{style}" title="gold {E(g)}, predicted {E(labels[j])}: '
                         f'{c}">{c if c else ""}</td>')
        rows.append(f"<tr><th>{E(g)}</th>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table class="heat"><thead><tr>{head}</tr></thead><tbody>' \
           f"{''.join(rows)}</tbody></table></div>"


def _spread(n: int, k: int) -> list[int]:
    return list(range(n)) if n <= k else [i * n // k for i in range(k)]


def read_tagged(path: Path) -> list[list[tuple[str, str, str]]]:
    """predictions.dev.txt: `word gold predicted` per line, a blank line per sentence."""
    sents, cur = [], []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            if cur:
                sents.append(cur)
            cur = []
            continue
        parts = line.split(" ")
        if len(parts) >= 3:
            cur.append((" ".join(parts[:-2]), parts[-2], parts[-1]))
    if cur:
        sents.append(cur)
    return sents


def predictions_section(kind: str, tagged: list | None, classified: list | None,
                        note: str = "") -> str:
    if kind == "tagging" and tagged:
        bad = [i for i, s in enumerate(tagged) if any(g != p for _, g, p in s)]
        good = [i for i in range(len(tagged)) if i not in set(bad)]
        # sentences of 4 to 30 words show more than one-word headlines, where there are enough
        fit = {i for i, s in enumerate(tagged) if 4 <= len(s) <= 30}
        if sum(i in fit for i in bad) >= SAMPLE * 2 // 3:
            bad = [i for i in bad if i in fit]
        if sum(i in fit for i in good) >= SAMPLE // 3:
            good = [i for i in good if i in fit]
        pick = sorted([bad[i] for i in _spread(len(bad), SAMPLE * 2 // 3)]
                      + [good[i] for i in _spread(len(good), SAMPLE - min(len(bad),
                                                                             SAMPLE * 2 // 3))])
        n_bad = sum(1 for s in tagged if any(g != p for _, g, p in s))
        out = [f'<p class="legend">{n_bad} of {len(tagged)} dev sentences have at least one '
               "wrong tag; below, under each word, the predicted tag, and for a wrong one "
               '<span class="err-mark">predicted (gold)</span></p>']
        for i in pick:
            toks = []
            for w, g, p in tagged[i]:
                if g == p:
                    toks.append(f'<span class="tok">{E(w)}<small>{E(p)}</small></span>')
                else:
                    toks.append(f'<span class="tok err" title="gold {E(g)}">{E(w)}<small>'
                                f"{E(p)} ({E(g)})</small></span>")
            cls = "sent bad" if any(g != p for _, g, p in tagged[i]) else "sent"
            out.append(f'<div class="{cls}">{"".join(toks)}</div>')
        return section("predictions", "Dev predictions", "".join(out))
    if kind == "classification" and classified:
        n_bad = sum(1 for g, p, _ in classified if g is not None and g != p)
        bad = [i for i, (g, p, _) in enumerate(classified) if g is not None and g != p]
        good = [i for i in range(len(classified)) if i not in set(bad)]
        pick = sorted([bad[i] for i in _spread(len(bad), SAMPLE // 2)]
                      + [good[i] for i in _spread(len(good), SAMPLE - min(len(bad),
                                                                             SAMPLE // 2))])
        rows = []
        for i in pick:
            g, p, text = classified[i]
            wrong = g is not None and g != p
            mark = '<span class="err-mark">✗</span>' if wrong else "✓" if g is not None else ""
            rows.append(f'<tr class="{"err" if wrong else ""}"><td>{mark}</td>'
                        f"<td>{E(p)}</td><td>{E(g if g is not None else '?')}</td>"
                        f'<td style="text-align:left;white-space:normal">{E(text)}</td></tr>')
        legend = (f'<p class="legend">{n_bad} of {len(classified)} dev examples are wrong '
                  "(marked ✗)</p>")
        table = ('<div class="scroll"><table><thead><tr><th></th><th>predicted</th><th>gold</th>'
                 '<th style="text-align:left">text</th></tr></thead><tbody>'
                 f"{''.join(rows)}</tbody></table></div>")
        return section("predictions", "Dev predictions",
                       legend + (f'<p class="note">{E(note)}</p>' if note else "") + table)
    return section("predictions", "Dev predictions",
                   f'<p class="note">{E(note or "no dev predictions in this run directory")}</p>')


def unrolled_section(svg: str | None, sentence: str, note: str) -> str:
    if svg:
        body = (f"<p class=\"legend\">the trained network unrolled over the dev sentence "
                f"“{E(sentence)}” (layer level)</p>"
                f'<div class="wide">{_img(svg, "unrolled network")}</div>')
    else:
        body = f'<p class="note">{E(note)}</p>'
    return section("unrolled", "The network unrolled over a dev sentence", body)


# --- building the page ---------------------------------------------------------------------------
def _dev_examples(prep: Any, conf: Mapping[str, Any]) -> list:
    data = prep.data
    if data.args.get("dev") is None:
        return []
    return data.subset(data.read_split("dev"), conf.get("limit"))


def _unrolled_svg(prep: Any, dev: list) -> tuple[str | None, str, str]:
    """The picture of one short dev sentence, or (None, "", why not)."""
    from ..render import unrolled

    if not dev:
        return None, "", "no dev sentence to draw (the run has no dev data)"
    if prep.data.kind == "lm":
        cands = [ex for ex in dev if 4 <= len(ex.words) <= 10] or dev
        words = list(cands[0].words)[:10]
    else:
        cands = [ex for ex in dev if 4 <= len(ex.words) <= 10] or dev
        words = list(cands[0].words)
    try:
        g = unrolled(prep.net, words, data=prep.data, level="layer")
        svg = g.pipe(format="svg").decode("utf-8")
    except (RnnError, RuntimeError, OSError, ValueError) as e:
        msg = getattr(e, "message", None) or str(e)
        return None, " ".join(words), f"the unrolled picture could not be drawn: {msg}"
    except Exception as e:  # graphviz.ExecutableNotFound and the like: the page still comes
        return None, " ".join(words), (f"the unrolled picture could not be drawn "
                                       f"({type(e).__name__}: {e})")
    return svg, " ".join(words), ""


def build_report(run_dir: str | Path, prep: Any) -> str:
    """The report page of a run directory as HTML text; ``prep`` is the run's network and data
    with its best weights (``run.load_run``, or the trainer's at the end of a run)."""
    from .. import lang

    run_dir = Path(run_dir)
    conf = _read_json(run_dir / "config.json")
    final = _read_json(run_dir / "metrics.json")
    history = _history(run_dir)
    spec_text = (run_dir / "spec.rnn").read_text("utf-8")
    summary = lang.summary_table(prep.spec, prep.data.sizes())
    kind = prep.data.kind
    try:
        dev = _dev_examples(prep, conf)
        dev_note = ""
    except RnnError as e:
        dev, dev_note = [], f"the dev file could not be read ({e.message})"
    tagged = classified = None
    note = dev_note
    if kind == "tagging" and (run_dir / "predictions.dev.txt").exists():
        tagged = read_tagged(run_dir / "predictions.dev.txt")
    elif kind == "classification" and (run_dir / "predictions.dev.tsv").exists():
        lines = (run_dir / "predictions.dev.tsv").read_text("utf-8").splitlines()
        preds = [ln.partition("\t") for ln in lines if ln]
        if len(dev) == len(preds):
            classified = [(ex.label, p, text) for ex, (p, _, text) in zip(dev, preds)]
        else:
            note = note or "the dev file no longer matches the run's predictions: gold unknown"
            classified = [(None, p, text) for p, _, text in preds]
    svg, sentence, why = _unrolled_svg(prep, dev)
    title = f"{conf.get('model', 'model')} on {conf.get('data', 'data')}"
    nav = "".join(f'<a href="#{sid}">{E(t)}</a>' for sid, t in (
        ("summary", "Spec and model"), ("curves", "Curves"), ("metrics", "Metrics"),
        ("confusion", "Confusion"), ("predictions", "Predictions"), ("unrolled", "Unrolled")))
    spec_path = conf.get("spec_path", "")
    parts = [
        summary_section(spec_text, summary, conf, final),
        curves_section(history),
        metrics_section(final, kind),
        confusion_section(final),
        predictions_section(kind, tagged, classified, note),
        unrolled_section(svg, sentence, why),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>rnndsl report: {E(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{E(title)}</h1><p class=\"sub\">rnndsl run {E(str(run_dir))} · spec "
            f"{E(Path(spec_path).name)}</p><nav>{nav}</nav></header><main>"
            + "".join(parts) + "</main></body></html>\n")


def write_report(run_dir: str | Path, prep: Any, out: str | Path | None = None) -> Path:
    """Write the report of a run (default RUN_DIR/report.html) atomically; returns its path."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    text = build_report(run_dir, prep)
    checkpoint.atomic_write_text(path, text)
    return path


__all__ = ["build_report", "write_report"]
