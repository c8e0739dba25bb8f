"""The full hostile-input run (issue 23): >= 5,000 specs, 500 data files, 200 run directories
through the CLI, one table per family (tried / clean / internal / hang / memory / wrong position
/ silently accepted), the worst time and peak memory, then SIGKILLs during checkpoint writes.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/fuzz_hostile.py \
        [--specs 5000] [--data 500] [--rundirs 200] [--kills 20]

Exit status 1 when any failure column is non-zero. The cases come from tests/fuzz_cases.py, the
same generators tests/test_fuzz_hostile.py samples.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from fuzz_cases import (  # noqa: E402
    STATUSES,
    data_cases,
    peak_rss_self,
    run_case,
    rundir_cases,
    spec_cases,
    train_base,
)

HEAD = ("family", "tried", "clean", "internal", "hang", "memory", "position", "accepted")


def run_family(name, cases, tmp: Path, worst: dict) -> tuple[list, list]:
    counts = collections.Counter()
    failures = []
    for i, case in enumerate(cases):
        res = run_case(case, tmp / f"{name}{i}")
        counts[res.status] += 1
        counts["tried"] += 1
        if res.seconds > worst["seconds"][0]:
            worst["seconds"] = (res.seconds, f"{name}:{case.kind}")
        if res.rss > worst["rss"][0]:
            worst["rss"] = (res.rss, f"{name}:{case.kind}")
        if res.status != "clean":
            failures.append((res.status, case.kind, res.output[-400:]))
    return [name, counts["tried"], *(counts[s] for s in STATUSES)], failures


CKPT_SPEC = """data toy = synthetic(task=first_token, n=8, vocab=4000, size=1000, seed=0)
model = embed(toy.words, d=256) |> lstm(d=64) |> last |> softmax(toy.labels)
train model on toy { optimizer = adam(lr=0.01); epochs = 50; batch = 64; seed = 3
                     checkpoint_every = 1 }
"""


def kills_during_writes(n: int, tmp: Path) -> dict:
    """SIGKILL a run the moment a checkpoint's temporary file appears (a write in progress);
    then the last checkpoint must load, and after the next save (a resume) no temporary file
    may be left."""
    from rnndsl.train import checkpoint  # noqa: PLC0415

    spec = tmp / "ckpt.rnn"
    spec.write_text(CKPT_SPEC)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    out = {"kills": 0, "during_write": 0, "unloadable": 0, "tmp_after_next_save": 0}
    for i in range(n):
        run_dir = tmp / f"k{i}"
        proc = subprocess.Popen([sys.executable, "-m", "rnndsl.cli", "run", str(spec), "--out",
                                 str(run_dir), "--no-progress"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ck = run_dir / "ckpt"
        t = time.time()
        saw = False
        skip = i % 4  # kill during the 1st..4th write seen, so writes of both kinds are hit
        while proc.poll() is None and time.time() - t < 120:
            if ck.exists() and any(ck.glob(".*.tmp")):
                if skip == 0:
                    saw = True
                    break
                skip -= 1
                while any(ck.glob(".*.tmp")) and proc.poll() is None:
                    time.sleep(0.0005)
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out["kills"] += 1
        out["during_write"] += saw
        if (ck / "last.json").exists():
            try:
                checkpoint.load(ck, "last")
            except Exception:  # noqa: BLE001
                out["unloadable"] += 1
        # the next save: a resume (the killed run's lock is stale and taken over), or, killed
        # during the very first write, a fresh run into the same folder
        if (ck / "last.json").exists():
            epochs = int(json.loads((ck / "last.json").read_text())["state"]["epoch"]) + 1
            argv = ["--resume", str(run_dir), "--epochs", str(epochs)]
        else:
            argv = [str(spec), "--out", str(run_dir), "--epochs", "1"]
        subprocess.run([sys.executable, "-m", "rnndsl.cli", "run", *argv, "--no-progress"],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=300)
        out["tmp_after_next_save"] += len(list(ck.glob(".*.tmp"))) + \
            len(list(run_dir.glob(".*.tmp")))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", type=int, default=5000)
    ap.add_argument("--data", type=int, default=500)
    ap.add_argument("--rundirs", type=int, default=200)
    ap.add_argument("--kills", type=int, default=20)
    args = ap.parse_args()
    worst = {"seconds": (0.0, ""), "rss": (0, "")}
    rows, failures = [], []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, cases in (("specs", spec_cases(args.specs, seed=11)),
                            ("data files", data_cases(args.data, seed=12))):
            row, bad = run_family(name, cases, tmp, worst)
            rows.append(row)
            failures += bad
        base = train_base(tmp / "base")
        row, bad = run_family("run dirs", rundir_cases(args.rundirs, base, seed=13), tmp, worst)
        rows.append(row)
        failures += bad
        kills = kills_during_writes(args.kills, tmp) if args.kills else None
    widths = [max(len(str(r[i])) for r in [HEAD, *rows]) for i in range(len(HEAD))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(HEAD, widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    print(f"worst time per input: {worst['seconds'][0]:.2f} s ({worst['seconds'][1]})")
    print(f"peak RSS: isolated cases {worst['rss'][0] / 2**20:.0f} MiB ({worst['rss'][1]}); "
          f"this process (in-process cases) {peak_rss_self() / 2**20:.0f} MiB")
    if kills is not None:
        print(f"SIGKILL during checkpoint writes: {kills}")
    print(f"total {time.time() - t0:.0f} s")
    for status, kind, output in failures[:20]:
        print(f"--- {status} {kind}\n{output}")
    bad_kills = kills and (kills["unloadable"] or kills["tmp_after_next_save"])
    return 1 if failures or bad_kills else 0


if __name__ == "__main__":
    sys.exit(main())
