"""Behaviour check for refactors: a short run of every spec, its metrics written or compared.

    python benchmarks/compare_specs.py --write before.json            # on the old code
    python benchmarks/compare_specs.py --compare before.json          # on the new code

Each spec in specs/ trains one epoch on `--limit` examples of each file (a language model: its
first `--limit` lines) with one BLAS thread, and the final metrics (metrics.json) of the run are
recorded, with the last epoch's training loss and a digest of the prediction files.
`--compare` runs the same and prints, per spec, every metric that differs, exiting 1 when any
does. Specs that need another run (`--pretrained`) train from scratch here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_spec(spec: Path, limit: int, out: Path) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", RNNDSL_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--epochs", "1", "--limit",
           str(limit), "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    metrics = json.loads((out / "metrics.json").read_text())
    for log in sorted(out.glob("**/metrics.jsonl")):  # chain-thaw: one per stage
        epochs = [json.loads(line) for line in log.read_text().splitlines()]
        stage = log.parent.relative_to(out).as_posix()
        metrics[f"{stage}/train_loss"] = epochs[-1].get("train_loss") if epochs else None
    for pred in sorted(out.glob("predictions*")):
        metrics[pred.name + ".sha256"] = hashlib.sha256(pred.read_bytes()).hexdigest()[:16]
    return metrics


def flatten(d: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value
    return flat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, help="record the metrics into this JSON file")
    group.add_argument("--compare", type=Path, help="compare against a recorded JSON file")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--only", default="", help="comma-separated spec names (default: all)")
    args = ap.parse_args()

    specs = sorted((ROOT / "specs").glob("*.rnn"))
    if args.only:
        wanted = set(args.only.split(","))
        specs = [s for s in specs if s.stem in wanted]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            metrics = run_spec(spec, args.limit, Path(tmp) / spec.stem)
            results[spec.stem] = flatten(metrics)
            shown = {k: v for k, v in results[spec.stem].items() if not k.endswith("seconds")}
            print(f"{spec.stem}: {json.dumps(shown)[:300]}", flush=True)

    if args.write:
        args.write.write_text(json.dumps(results, indent=1, sort_keys=True))
        return 0
    before = json.loads(args.compare.read_text())
    differ = 0
    names = set(results) if args.only else set(before) | set(results)
    for name in sorted(names):
        old, new = before.get(name, {}), results.get(name, {})
        keys = sorted(k for k in set(old) & set(new) if not k.endswith(("seconds", "tokens_per_s")))
        diffs = [(k, old[k], new[k]) for k in keys if old[k] != new[k]]
        if name not in before or name not in results:
            print(f"{name}: only in {'after' if name not in before else 'before'}")
        elif diffs:
            differ += 1
            for k, a, b in diffs:
                print(f"{name}: {k}: {a} -> {b}")
        else:
            print(f"{name}: same ({len(keys)} metrics)")
    print(f"{len(results)} specs, {differ} with different metrics")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
