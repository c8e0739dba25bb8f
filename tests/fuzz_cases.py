"""Hostile inputs for the CLI, shared by tests/test_fuzz_hostile.py (a bounded sample) and
benchmarks/fuzz_hostile.py (the full sizes and the table).

Three families, each a generator of ``Case``s from a seed:
- specs: the project's specs mutated token by token (must be answered cleanly), a hostile
  token put on one line (must be reported on that line), and hostile texts (sizes, nesting, odd
  characters, BOM, CR line ends, FIFOs, devices);
- data files: a valid data file of each format corrupted (BOM, CR-only, NUL, truncated gzip,
  byte flips, long lines and sentences, bad quotes, bad tags, vectors with absurd sizes);
- run directories: a trained run tampered with (weights, JSON files, state, spec copy).

``run_case`` runs one case through ``rnndsl.cli.main`` in this process, or in a subprocess for
the cases that could block or allocate (``isolated``), and classifies the outcome: clean,
internal (an internal error or a traceback), hang (past ``TIME_LIMIT``), memory (past
``RSS_LIMIT``), position (the reported line is not the mutated one) or accepted (exit 0 where
the input must be refused).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "bad_specs" / "data"
TIME_LIMIT = 5.0  # seconds per hostile input
RSS_LIMIT = 1024**3  # bytes of peak memory per isolated case
STATUSES = ("clean", "internal", "hang", "memory", "position", "accepted")


@dataclass
class Case:
    family: str  # spec | data | rundir
    kind: str  # the mutation
    argv: list[str]  # CLI arguments, with {dir} for the case's folder
    files: dict[str, bytes] = field(default_factory=dict)  # written into the case's folder
    must_refuse: bool = False  # exit 0 is a failure ("silently accepted")
    line: int | None = None  # the line an error must be reported on
    needle: str | None = None  # text the reported line must contain
    isolated: bool = False  # run in a subprocess (could block or allocate)
    setup: object = None  # callable(folder) for run directories and special files


@dataclass
class Result:
    status: str
    seconds: float
    rss: int  # peak bytes (isolated cases; 0 in-process)
    output: str


# -- specs ------------------------------------------------------------------------------------

TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\|>|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\w+|.', re.S)

BASE_SPECS = {
    "tagger": """data ewt = conllu(train="data/tiny/train.conllu", dev="data/tiny/dev.conllu")
words = embed(ewt.words, d=8)
tagger = words |> bilstm(d=8) |> stack(2, dropout=0.1) |> softmax(ewt.tags)
train tagger on ewt {
  optimizer = adam(lr=0.01)
  epochs = 2
  batch = 4
  seed = 1
}
""",
    "chunker": """data c = conll(train="data/chunks.txt", dev="data/chunks.txt", scheme=bio)
m = embed(c.words, d=8) |> bilstm(d=4) |> crf(c.tags)
train m on c { epochs = 1; batch = 2; clip = 5 }
""",
    "sentiment": """data s = classification(train="data/sents.tsv", dev="data/sents.tsv",
                        format=tsv)
enc = lstm(d=4) |> last
m = embed(s.words, d=4) |> enc |> mlp([4], act=relu) |> softmax(s.labels)
train m on s { epochs = 1; batch = 2; early_stop = dev.accuracy(patience=2) }
""",
    "lines": """data s = classification(train="data/sst.txt", dev="data/sst.txt")
m = embed(s.words, d=5, pretrained="data/vec5.txt") |> gru(d=4) |> mean |> softmax(s.labels)
train m on s { epochs = 1 }
""",
}

NUMBERS = ["0", "1", "-1", "2", "0.5", "1e-3", "1e999", "-0.0", "100000000000", "3.0", "1e308"]
NAMES = ["lstm", "gru", "bilstm", "stack", "crf", "softmax", "embed", "data", "train", "eval",
         "output", "on", "true", "none", "words", "tags", "labels", "x", "dev", "bio", "last"]
PUNCT = ["(", ")", "[", "]", "{", "}", ",", "=", ".", ";", "|>", ":", '"', "|", "-", "'"]
# put on a line of its own statement; the error must be reported on that line
POSITIONED = [
    ("0x10", "epochs = 0x10"), ("1_000", "epochs = 1_000"), ("1e", "epochs = 1e"),
    ("seed", "seed = -5"), ("bilstn", "bilstn(d=4)"), ("9" * 5000, "epochs = " + "9" * 5000),
    ("\x0b", "epochs = 2 \x0b"), ("\x85", "epochs = 2 \x85"), ("\u2028", "epochs = 2 \u2028"),
    ("\x1c", "epochs = 2 \x1c"), ("@", "epochs = @"), ("'", "epochs = 'x'"),
    ("rot13", 'x = conllu(train="data/tiny/train.conllu", encoding="rot13")'),
    ("d=0", "lstm(d=0)"), ("batch", "batch = 0"), ("clip", "clip = -1"),
]
ODD_BREAKS = ["\f", "\x0b", "\x85", "\u2028", "\u2029", "\x1c", "\x1d", "\x1e"]


def _mutate(rng: random.Random, text: str) -> str:
    toks = TOKEN.findall(text)
    for _ in range(rng.randint(1, 6)):
        if not toks:
            break
        i = rng.randrange(len(toks))
        op = rng.choice(["delete", "duplicate", "swap", "number", "name", "punct"])
        if op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap" and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif op == "number":
            nums = [j for j, t in enumerate(toks) if re.fullmatch(r"-?\d[\d.eE+-]*", t)]
            if nums:
                toks[rng.choice(nums)] = rng.choice(NUMBERS)
        elif op == "name":
            names = [j for j, t in enumerate(toks) if re.fullmatch(r"[A-Za-z_]\w*", t)]
            if names:
                toks[rng.choice(names)] = rng.choice(NAMES)
        else:
            toks.insert(i, rng.choice(PUNCT))
    return "".join(toks)


def _positioned(rng: random.Random) -> Case:
    """A hostile statement or setting on a known line of the tagger spec, after odd line
    breaks in a comment above it (they must not shift the line)."""
    needle, stmt = rng.choice(POSITIONED)
    lines = BASE_SPECS["tagger"].rstrip("\n").split("\n")
    odd = rng.choice(ODD_BREAKS)
    lines.insert(1, f"# a note {odd} with an odd break")
    if stmt.startswith(("epochs", "seed", "batch", "clip")):
        at = next(i for i, x in enumerate(lines) if x.strip().startswith("epochs"))
        lines[at] = "  " + stmt
    elif stmt.startswith("x = "):
        at = 2
        lines.insert(at, stmt)
    else:  # a layer in the pipeline
        at = next(i for i, x in enumerate(lines) if x.startswith("tagger ="))
        lines[at] = lines[at].replace("bilstm(d=8)", stmt)
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.3:
        text = "\ufeff" + text
    if rng.random() < 0.3:
        text = text.replace("\n", "\r\n")
    first = needle.strip()[:20] if needle.strip() else None
    if needle in ("\x0b", "\x85", "\u2028", "\x1c"):
        first = "epochs = 2"
    return Case("spec", f"positioned:{needle[:8]!r}", ["check", "--no-data", "{dir}/x.rnn"],
                {"x.rnn": text.encode()}, must_refuse=True, line=at + 1, needle=first)


def _hostile_spec(rng: random.Random, i: int) -> Case:
    base = BASE_SPECS["tagger"]
    kinds = [
        ("defs", base + "".join(f"a{k} = lstm(d=4)\n" for k in range(120_000))),
        ("last", base + "x = lstm(d=4)" + " |> last" * 600_000 + "\n"),
        ("stages", base + "x = lstm(d=4)" + " |> lstm(d=4)" * 20_000 + "\n"),
        ("nesting", base + "x = " + "f(" * 100_000 + ")" * 100_000 + "\n"),
        ("list-nesting", base + "x = " + "[" * 50_000 + "]" * 50_000 + "\n"),
        ("number", base.replace("epochs = 2", "epochs = " + "7" * 4400)),
        ("name", base.replace("words", "w" * 100_000)),
        ("bigmodel", base.replace("bilstm(d=8) |> stack(2, dropout=0.1)",
                                  "bilstm(d=100000) |> stack(64)")),
        ("synthetic", 'data s = synthetic(size=1000000000000)\n'
                      "m = embed(s.words, d=4) |> lstm(d=4) |> last |> softmax(s.labels)\n"
                      "train m on s { epochs = 1 }\n"),
        ("longpath", base.replace("data/tiny/train.conllu", "p" * 300 + ".conllu")),
        ("nul", base.replace("epochs", "ep\x00ochs")),
        ("binary", bytes(rng.randrange(256) for _ in range(4000)).decode("latin-1")),
        ("doubling", base.replace("bilstm(d=8)", "a39") + "a0 = lstm(d=4)\n"
         + "".join(f"a{k} = a{k - 1} |> a{k - 1}\n" for k in range(1, 40))),
    ]
    kind, text = kinds[i % len(kinds)]
    data = text.encode("utf-8") if kind != "binary" else text.encode("latin-1")
    return Case("spec", f"hostile:{kind}", ["check", "{dir}/x.rnn"], {"x.rnn": data},
                must_refuse=True)


def _special_spec(i: int) -> Case:
    def fifo(folder: Path) -> None:
        os.mkfifo(folder / "x.rnn")

    if i % 2 == 0:
        return Case("spec", "hostile:fifo", ["check", "{dir}/x.rnn"], must_refuse=True,
                    isolated=True, setup=fifo)
    return Case("spec", "hostile:/dev/zero", ["check", "/dev/zero"], must_refuse=True,
                isolated=True)


def spec_cases(n: int, seed: int = 0) -> Iterator[Case]:
    """``n`` spec cases: 70% mutated, 20% positioned, 10% hostile (sizes, FIFOs, devices)."""
    rng = random.Random(seed)
    names = sorted(BASE_SPECS)
    for i in range(n):
        r = i % 10
        if r < 7:
            text = _mutate(rng, BASE_SPECS[names[i % len(names)]])
            yield Case("spec", "mutated", ["check", "--no-data", "{dir}/x.rnn"],
                       {"x.rnn": text.encode()})
        elif r < 9:
            yield _positioned(rng)
        elif i % 40 != 19:
            yield _hostile_spec(rng, i // 10)
        else:  # FIFOs and devices, in a subprocess: a blocking read must not hang the suite
            yield _special_spec(i // 40)


# -- data files ---------------------------------------------------------------------------------

DATA_SPECS = {
    "conllu": ('data d = conllu(train="{f}", dev="{f}")\n'
               "m = embed(d.words, d=4) |> lstm(d=4) |> softmax(d.tags)\n"
               "train m on d { epochs = 1 }\n", DATA / "tiny" / "train.conllu"),
    "conll": ('data d = conll(train="{f}", dev="{f}")\n'
              "m = embed(d.words, d=4) |> bilstm(d=4) |> crf(d.tags)\n"
              "train m on d { epochs = 1 }\n", DATA / "chunks.txt"),
    "tsv": ('data d = classification(train="{f}", dev="{f}", format=tsv)\n'
            "m = embed(d.words, d=4) |> lstm(d=4) |> last |> softmax(d.labels)\n"
            "train m on d { epochs = 1 }\n", DATA / "sents.tsv"),
    "csv": ('data d = classification(train="{f}", dev="{f}", format=csv)\n'
            "m = embed(d.words, d=4) |> lstm(d=4) |> last |> softmax(d.labels)\n"
            "train m on d { epochs = 1 }\n", None),
    "lines": ('data d = classification(train="{f}", dev="{f}")\n'
              "m = embed(d.words, d=4) |> lstm(d=4) |> last |> softmax(d.labels)\n"
              "train m on d { epochs = 1 }\n", DATA / "sst.txt"),
    "vectors": ('data d = classification(train="sst.txt", dev="sst.txt")\n'
                'm = embed(d.words, d=5, pretrained="{f}") |> lstm(d=4) |> last '
                "|> softmax(d.labels)\ntrain m on d { epochs = 1 }\n", DATA / "vec5.txt"),
}
CSV = b'sentence,label\n"a fine film",1\n"a dull, slow film",0\nok film,1\n'
# corruptions that make every format unreadable (exit 0 would be "silently accepted")
FATAL = ("nul", "cr-only", "gzip-truncated", "long-line", "binary", "w2v-header",
         "vector-row", "long-sentence")


def _corrupt(rng: random.Random, kind: str, fmt: str, data: bytes) -> bytes:
    if kind == "bom":
        return b"\xef\xbb\xbf" + data
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n")
    if kind == "cr-only":
        return data.replace(b"\n", b"\r") + b"\r" * 3
    if kind == "nul":
        lines = data.split(b"\n")
        k = rng.randrange(1, max(2, len(lines) - 1))
        lines[k] = lines[k][:1] + b"\x00" + lines[k][1:]
        return b"\n".join(lines)
    if kind == "gzip-truncated":
        z = gzip.compress(data * 50)
        return z[: rng.randrange(12, max(13, len(z) - 10))]
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 5)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == "truncate":
        return data[: rng.randrange(1, len(data))]
    if kind == "long-line":
        return gzip.compress(b"x" * (20 * 1024 * 1024))  # one 20 MB line, no newline
    if kind == "binary":
        return bytes(rng.randrange(256) for _ in range(3000)) + b"\x00"
    if kind == "long-sentence":
        if fmt in ("conll", "conllu"):
            row = b"w\tX\tX\tNOUN\tNN\t_\t0\troot\t_\t_\n" if fmt == "conllu" else b"w NN B-NP\n"
            return row * 300_000
        return b"1 " + b"w " * 1_000_000 + b"\n" if fmt == "lines" else \
            b"sentence,label\n" + b"w " * 1_000_000 + b",1\n"
    if kind == "w2v-header":
        return b"1000000000 1000000000\nthe 0.1\n"
    if kind == "vector-row":
        return b"the " + b"0.5 " * 1_000_000 + b"\n"
    if kind == "quote":
        return data + b'"unclosed,1\nmore,0\n'
    if kind == "bad-tag":
        return data.replace(b"B-NP", b"X-NP", 1)
    if kind == "empty":
        return b""
    return data


def data_cases(n: int, seed: int = 0) -> Iterator[Case]:
    rng = random.Random(seed)
    fmts = sorted(DATA_SPECS)
    kinds = ["bom", "crlf", "cr-only", "nul", "gzip-truncated", "gzip", "flip", "truncate",
             "long-line", "binary", "long-sentence", "quote", "bad-tag", "empty",
             "w2v-header", "vector-row"]
    for i in range(n):
        fmt = fmts[i % len(fmts)]
        kind = kinds[(i // len(fmts)) % len(kinds)]
        spec, src = DATA_SPECS[fmt]
        data = CSV if src is None else src.read_bytes()
        if kind in ("w2v-header", "vector-row") and fmt != "vectors":
            kind = "binary"
        if fmt == "vectors" and kind == "long-sentence":
            kind = "vector-row"
        bad = _corrupt(rng, kind, fmt, data)
        files = {"f.dat": bad, "spec.rnn": spec.replace("{f}", "f.dat").encode()}
        if fmt == "vectors":
            files["sst.txt"] = (DATA / "sst.txt").read_bytes()
        must = kind in FATAL or (kind == "empty") or (kind == "bad-tag" and fmt == "conll") \
            or (kind == "quote" and fmt == "csv")
        yield Case("data", f"{fmt}:{kind}", ["check", "{dir}/spec.rnn"], files,
                   must_refuse=must, isolated=kind in ("long-line", "long-sentence",
                                                       "w2v-header", "vector-row"))
    for j in range(2):  # special files as data
        def fifo(folder: Path) -> None:
            os.mkfifo(folder / "f.dat")

        spec, _ = DATA_SPECS["lines"]
        yield Case("data", "lines:fifo", ["check", "{dir}/spec.rnn"],
                   {"spec.rnn": spec.replace("{f}", "f.dat").encode()}, must_refuse=True,
                   isolated=True, setup=fifo)


# -- run directories ---------------------------------------------------------------------------

RUN_SPEC = """data toy = synthetic(task=first_token, n=4, vocab=6, size=60, seed=0)
model = embed(toy.words, d=6) |> lstm(d=6) |> last |> softmax(toy.labels)
train model on toy { optimizer = adam(lr=0.01); epochs = 2; batch = 16; seed = 3 }
"""


def train_base(folder: Path) -> Path:
    """One trained run to tamper with (a few seconds)."""
    from rnndsl.run import run  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy.rnn").write_text(RUN_SPEC)
    run(str(folder / "toy.rnn"), out=str(folder / "base"), log=lambda s: None)
    return folder / "base"


def _arrays(ck: Path, name: str):
    from rnndsl.train import checkpoint  # noqa: PLC0415

    return checkpoint.load(ck, name)


def _rewrite(ck: Path, name: str, arrays: dict, meta: dict) -> None:
    import numpy as np  # noqa: PLC0415

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    (ck / meta["weights"]).write_bytes(blob)
    meta = {**meta, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    (ck / f"{name}.json").write_text(json.dumps(meta))


def _tamper(rng: random.Random, kind: str, run_dir: Path, name: str) -> None:
    """Tamper with ``run_dir``; ``name``: the checkpoint the command reads (predict: best,
    --resume: last)."""
    import numpy as np  # noqa: PLC0415

    ck = run_dir / "ckpt"
    if kind.startswith("w-"):
        arrays, meta = _arrays(ck, name)
        params = [k for k in arrays if k.startswith("param::")]
        k = rng.choice(params)
        a = arrays[k]
        if kind == "w-shape":
            arrays[k] = np.zeros(tuple(s + rng.randint(1, 3) for s in a.shape), a.dtype)
        elif kind == "w-int":
            arrays[k] = a.astype(np.int32)
        elif kind == "w-complex":
            arrays[k] = a.astype(np.complex128)
        elif kind == "w-nan":
            a = a.copy()
            a.flat[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, -np.inf])
            arrays[k] = a
        elif kind == "w-extra":
            arrays["param::ghost.W"] = np.zeros((2, 2), np.float32)
        elif kind == "w-missing":
            del arrays[k]
        elif kind == "w-moments":
            for key in [x for x in arrays if x.startswith("opt::")]:
                del arrays[key]
            name = "last"
        elif kind == "w-copied":  # weights of another model (d=7)
            arrays[k] = np.zeros((a.shape[0] + 1,) + a.shape[1:], np.float32)
        _rewrite(ck, name, arrays, meta)
        return
    if kind == "edit-d":
        p = run_dir / "spec.rnn"
        p.write_text(p.read_text().replace("lstm(d=6)", f"lstm(d={rng.choice([5, 7, 12])})"))
        return
    if kind == "spec-deleted":
        (run_dir / "spec.rnn").unlink()
        return
    if kind == "spec-binary":
        (run_dir / "spec.rnn").write_bytes(b"\xff\xfe\x00" + os.urandom(50))
        return
    if kind == "spec-error":
        p = run_dir / "spec.rnn"
        p.write_text(p.read_text().replace("lstm(d=6)", "lstmm(d=6)"))
        return
    if kind == "vocab-list":
        (run_dir / "vocab.json").write_text("[]")
        return
    if kind == "deep-json":
        target = rng.choice(["vocab.json", "config.json", f"ckpt/{name}.json"])
        (run_dir / target).write_text("[" * 100_000 + "]" * 100_000)
        return
    if kind == "weights-fifo":
        os.mkfifo(ck / "fifo.npz")
        meta = json.loads((ck / f"{name}.json").read_text())
        meta["weights"] = "fifo.npz"
        (ck / f"{name}.json").write_text(json.dumps(meta))
        return
    meta = json.loads((ck / "last.json").read_text())
    st = meta["state"]
    if kind == "state-empty":
        meta["state"] = {}
    elif kind == "state-epoch":
        st["epoch"] = -1
    elif kind == "state-step":
        st["step"] = 1_000_000
    elif kind == "opt-t":
        meta["optimizer"]["t"] = 10**30
    elif kind == "state-type":
        ints = ["epoch", "step", "global_step", "best_epoch", "bad_epochs", "epoch_steps"]
        st[rng.choice(ints)] = rng.choice(["x", None, [], {}, 1.5, 10**40])
    (ck / "last.json").write_text(json.dumps(meta))


RUN_KINDS = ["w-shape", "w-int", "w-complex", "w-nan", "w-extra", "w-missing", "w-moments",
             "w-copied", "edit-d", "spec-deleted", "spec-binary", "spec-error", "vocab-list",
             "deep-json", "weights-fifo", "state-empty", "state-epoch", "state-step", "opt-t",
             "state-type"]
# tampering only the state or the moments shows on --resume, the rest on eval too
RESUME_ONLY = {"w-moments", "state-empty", "state-epoch", "state-step", "opt-t", "state-type"}


def rundir_cases(n: int, base: Path, seed: int = 0) -> Iterator[Case]:
    rng = random.Random(seed)
    for i in range(n):
        kind = RUN_KINDS[i % len(RUN_KINDS)]
        r = random.Random(rng.random())
        resume = kind in RESUME_ONLY or i % 2 == 1

        def setup(folder: Path, kind=kind, r=r, resume=resume) -> None:
            shutil.copytree(base, folder / "r")
            conf = json.loads((folder / "r" / "config.json").read_text())
            conf["spec_path"] = str(base.parent / "toy.rnn")
            (folder / "r" / "config.json").write_text(json.dumps(conf))
            _tamper(r, kind, folder / "r", "last" if resume else "best")

        argv = (["run", "--resume", "{dir}/r", "--no-progress"] if resume
                else ["predict", "{dir}/r", "{dir}/in.txt"])
        yield Case("rundir", f"{kind}:{argv[0]}", argv, {"in.txt": b"1 2 3\n"},
                   must_refuse=True, setup=setup, isolated=kind == "weights-fifo")


# -- running a case ---------------------------------------------------------------------------


def _argv(case: Case, folder: Path) -> list[str]:
    return [a.replace("{dir}", str(folder)) for a in case.argv]


def _classify(case: Case, rc: int | None, output: str) -> str:
    if "internal error" in output or "Traceback (most recent call last)" in output:
        return "internal"
    if rc is None:
        return "hang"
    if rc == 0 and case.must_refuse:
        return "accepted"
    if rc not in (0, 1, 2):
        return "internal"
    if case.line is not None and rc != 0:
        m = re.search(r"x\.rnn:(\d+):\d+: error", output)
        if not m or int(m.group(1)) != case.line:
            return "position"
        if case.needle is not None:
            shown = output[m.end():].split("\n")
            src = next((s for s in shown[1:3] if re.match(r"\s+\d+ \| ", s)), "")
            if case.needle not in src and "..." not in src:
                return "position"
    return "clean"


def run_case(case: Case, folder: Path) -> Result:
    folder.mkdir(parents=True, exist_ok=True)
    if case.family == "spec":  # the specs' data paths: data/tiny/..., data/chunks.txt
        (folder / "data").symlink_to(DATA, target_is_directory=True)
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    if case.setup is not None:
        case.setup(folder)
    argv = _argv(case, folder)
    if case.isolated:
        return _run_isolated(case, argv)
    from rnndsl.cli import main  # noqa: PLC0415

    out, err = io.StringIO(), io.StringIO()
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 2
    except BaseException:  # noqa: BLE001 - anything escaping main is a bug of ours
        import traceback  # noqa: PLC0415

        err.write("Traceback (most recent call last)\n" + traceback.format_exc())
        rc = 1
    seconds = time.perf_counter() - t
    output = out.getvalue() + err.getvalue()
    status = _classify(case, rc, output)
    if status == "clean" and seconds > TIME_LIMIT:
        status = "hang"
    return Result(status, seconds, 0, output)


def _run_isolated(case: Case, argv: list[str]) -> Result:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    timer = threading.Timer(TIME_LIMIT + 3.0, proc.kill)  # + the interpreter's start
    timer.start()
    output = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t
    rc = proc.returncode if proc.returncode >= 0 else None
    child = _child_seconds(output)
    state = _classify(case, rc, output)
    rss = usage.ru_maxrss * 1024
    if state == "clean" and (child or seconds) > TIME_LIMIT:
        state = "hang"
    if state == "clean" and rss > RSS_LIMIT:
        state = "memory"
    return Result(state, child or seconds, rss, output)


# the child times main() itself, so the interpreter's start-up is not counted as the input's
_CHILD = """
import sys, time
t = time.perf_counter()
from rnndsl.cli import main
t0 = time.perf_counter()
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code if isinstance(e.code, int) else 2
sys.stdout.flush()
print(f"\\n[case-seconds {time.perf_counter() - t0:.3f}]", file=sys.stderr)
sys.exit(rc)
"""


def _child_seconds(output: str) -> float | None:
    m = re.search(r"\[case-seconds ([\d.]+)\]", output)
    return float(m.group(1)) if m else None


def peak_rss_self() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


__all__ = ["STATUSES", "Case", "Result", "data_cases", "rundir_cases", "run_case",
           "spec_cases", "train_base"]
