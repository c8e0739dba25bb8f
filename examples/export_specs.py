"""Export every spec in specs/ to ONNX after a quick run, and compare onnxruntime's scores with
rnndsl's on dev batches (the figures of the README's ONNX section).

    python examples/export_specs.py [--limit 200] [--out /tmp/export-specs]

Each spec trains for one epoch on its first --limit training and dev examples (`rnndsl run
--limit N --epochs 1`), is exported with `rnndsl export`, and its dev examples run through both.
Needs onnx and onnxruntime (the test extra).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from onnx_check import max_difference  # noqa: E402

from rnndsl.errors import RnnError  # noqa: E402
from rnndsl.export.onnx import export_run  # noqa: E402
from rnndsl.run import load_run, run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--out", default="/tmp/export-specs")
    ap.add_argument("specs", nargs="*")
    a = ap.parse_args()
    specs = [Path(s) for s in a.specs] or sorted((ROOT / "specs").glob("*.rnn"))
    rows = []
    for spec in specs:
        out = Path(a.out) / spec.stem
        t0 = time.time()
        try:
            run(spec, out=str(out), epochs=1, limit=a.limit, log=lambda s: None)
            export_run(out, out / "model.onnx")
            prep, _ = load_run(out, log=lambda s: None)
            diff = max_difference(prep.net, prep.data, prep.needs, out / "model.onnx",
                                  prep.data.dev[: a.limit] if prep.data.dev else
                                  prep.data.read_split("dev")[: a.limit])
            rows.append((spec.stem, "exports", f"{diff:.2e}", f"{time.time() - t0:.0f} s"))
        except RnnError as e:
            rows.append((spec.stem, "cannot", e.message.split(";")[0], f"{time.time() - t0:.0f} s"))
        print(" | ".join(rows[-1]), flush=True)
    print("\n| spec | ONNX | largest difference / why not |\n|---|---|---|")
    for name, ok, what, _ in rows:
        print(f"| `{name}` | {ok} | {what} |")


if __name__ == "__main__":
    main()
