"""Behaviour check for refactors: a one-epoch run of every spec in specs/ on a slice of its data.

    python benchmarks/spec_metrics.py --save before.json      # on the old commit
    python benchmarks/spec_metrics.py --compare before.json   # on the new one: exit 1 on a change

Each spec trains for one epoch on ``--limit`` examples of each split (the same slice as
tests/test_specs_run.py) with its own seed; every figure in metrics.json except the seconds must
match to the last digit. Run it with OPENBLAS_NUM_THREADS=1 RNNDSL_THREADS=1 so that the
summation order, and with it the last digit, is the same both times.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rnndsl.run import run

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.rnn"))


def metrics_of(spec: Path, limit: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        final = run(spec, out=str(Path(tmp) / "run"), epochs=1, limit=limit, log=lambda s: None)
    return {k: v for k, v in final.items() if "seconds" not in k}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--save", help="write the metrics of every spec to this JSON file")
    ap.add_argument("--compare", help="compare with the metrics saved in this JSON file")
    ap.add_argument("specs", nargs="*", help="spec names (default: all of specs/)")
    args = ap.parse_args()
    specs = [s for s in SPECS if not args.specs or s.stem in args.specs]
    got = {}
    for spec in specs:
        got[spec.stem] = metrics_of(spec, args.limit)
        print(spec.stem, json.dumps(got[spec.stem]), flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if args.compare:
        want = json.loads(Path(args.compare).read_text())
        changed = [k for k in got if k in want and got[k] != want[k]]
        missing = [k for k in want if k not in got and (not args.specs or k in args.specs)]
        for k in changed:
            print(f"CHANGED {k}: before {json.dumps(want[k])}, now {json.dumps(got[k])}")
        for k in missing:
            print(f"MISSING {k}")
        print(f"{len(got) - len(changed)} of {len(got)} specs give the same metrics")
        return 1 if changed or missing else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
