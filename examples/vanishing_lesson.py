"""The vanishing-gradient lesson, measured: S-RNN vs LSTM vs GRU on the first-token task.

    python examples/vanishing_lesson.py [--ns 5,20,50,100] [--epochs 30] [--out runs/vanishing]
                                        [--cells srnn,lstm,gru]

Each sequence's label is its first token, followed by n random distractors; an acceptor must
carry the first token through all n steps. For every cell (specs/vanishing_{srnn,lstm,gru}.rnn)
and every n, the spec is trained with n replaced, and the table of dev accuracies is printed and
written to OUT/results.md; OUT/gradflow.png plots ||dL/ds_t|| of the three trained models
over one dev sequence of the largest n.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from rnndsl.run import load_text, run

SPECS = Path(__file__).resolve().parent.parent / "specs"
CELLS = ("srnn", "lstm", "gru")


def spec_with_n(cell: str, n: int, epochs: int, tmp: Path) -> Path:
    """A copy of specs/vanishing_<cell>.rnn with n distractors, beside the original's data."""
    text = (SPECS / f"vanishing_{cell}.rnn").read_text()
    text = re.sub(r"\bn=\d+", f"n={n}", text)
    text = re.sub(r"\bepochs = \d+", f"epochs = {epochs}", text)
    path = tmp / f"vanishing_{cell}_n{n}.rnn"
    path.write_text(text)
    load_text(text, str(path))  # fail early on a bad substitution
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="5,20,50,100")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="runs/vanishing")
    ap.add_argument("--cells", default=",".join(CELLS),
                    help="cells to train; the others' runs are read back from OUT")
    args = ap.parse_args()
    ns = [int(x) for x in args.ns.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    acc: dict[tuple[str, int], float] = {}
    train = set(args.cells.split(","))
    for n in ns:
        for cell in CELLS:
            if cell not in train:  # keep the run already in OUT
                acc[cell, n] = best_accuracy(out / f"{cell}_n{n}")
                continue
            spec = spec_with_n(cell, n, args.epochs, out)
            t = time.time()
            final = run(spec, out=str(out / f"{cell}_n{n}"), log=lambda s: None)
            acc[cell, n] = final["dev_accuracy"]
            print(f"n={n:3d} {cell:4s} dev accuracy {acc[cell, n]:6.2f}  "
                  f"({time.time() - t:.0f} s)", flush=True)
    lines = ["| cell | " + " | ".join(f"n = {n}" for n in ns) + " |",
             "|---|" + "---|" * len(ns)]
    for cell in CELLS:
        lines.append(f"| {cell} | " + " | ".join(f"{acc[cell, n]:.1f}" for n in ns) + " |")
    lines += ["", "Epoch at which dev accuracy first reached 99% (- : never):", "",
              "| cell | " + " | ".join(f"n = {n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
    for cell in CELLS:
        lines.append(f"| {cell} | " + " | ".join(
            str(solved_epoch(out / f"{cell}_n{n}") or "-") for n in ns) + " |")
    table = "\n".join(lines)
    print(table)
    (out / "results.md").write_text(
        f"Dev accuracy (%) on the first-token task, {args.epochs} epochs, "
        f"{time.strftime('%Y-%m-%d')}; chance is 50.\n\n{table}\n")
    plot_gradflow(out, max(ns))


def best_accuracy(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return max(r.get("dev_accuracy", 0.0) for r in rows)


def solved_epoch(run_dir: Path, level: float = 99.0) -> int | None:
    """The first epoch whose dev accuracy reached `level`, from the run's metrics.jsonl."""
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("dev_accuracy", 0) >= level:
            return int(row["epoch"])
    return None


def plot_gradflow(out: Path, n: int) -> None:
    """||dL/ds_t|| of the three trained models over one dev sequence with n distractors."""
    from rnndsl.render import trace
    from rnndsl.render.gradflow import norm_series, plot_norms
    from rnndsl.run import load_run

    series = {}
    words = None
    for cell in CELLS:
        prep, _ = load_run(out / f"{cell}_n{n}", log=lambda s: None)
        ex = prep.data.read_split("dev")[0]
        words = list(ex.words)
        tr = trace(prep.net, words, grad=True, data=prep.data)
        for label, values in norm_series(tr).items():
            series[f"{cell}: {label}"] = values
    plot_norms(series, out / "gradflow.png", words=words,
               title=f"||dL/ds_t|| of trained acceptors, n = {n}")


if __name__ == "__main__":
    main()
