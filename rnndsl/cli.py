"""The command line: rnndsl run | check | eval | report | predict | generate | export | render |
gradflow | gradcheck.

Exit codes: 0 ok, 1 runtime failure, 2 bad spec or bad input, 130 interrupted (Ctrl-C).
No Python traceback for a user's mistake unless --debug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence

from .errors import RnnError, SpecError


def _int_in(lo: int, hi: int):
    """An argparse type: an int in [lo, hi], else a usage error naming the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in [{lo:,}, {hi:,}], got {value:,}")
        return value
    return parse


_COUNT = _int_in(1, 1_000_000_000)
_SEED = _int_in(0, 2**63 - 1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnndsl",
        description="Declare, train and draw recurrent neural networks for NLP.",
        epilog="Run `rnndsl COMMAND --help` for a command's options.",
    )
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend (default: $RNNDSL_BACKEND or numpy)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("run", help="train the model a spec declares and evaluate it on dev")
    r.add_argument("spec", nargs="?", help="the .rnn spec (not needed with --resume)")
    r.add_argument("--out", help="run directory (default runs/<spec>-<timestamp>)")
    r.add_argument("--epochs", type=_COUNT, help="override the spec's epochs")
    r.add_argument("--seed", type=_SEED, help="override the spec's seed")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly")
    r.add_argument("--backend", dest="backend_", choices=["numpy", "cupy"], default=None)
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--pretrained", metavar="RUN_DIR",
                   help="start from another run's weights (overrides the spec's `pretrained`)")
    r.add_argument("--chain-thaw", dest="chain_thaw", action="store_true", default=None,
                   help="fine-tune with the chain-thaw schedule (overrides the spec)")
    r.add_argument("--no-chain-thaw", dest="chain_thaw", action="store_false",
                   help="train all layers together (overrides the spec)")
    r.add_argument("--profile", action="store_true",
                   help="print where the training time went (data, forward, backward, ...)")
    r.add_argument("--limit", type=_COUNT, default=None, metavar="N",
                   help="use only N training and dev examples, spread evenly over each file (a "
                        "language model's text: its first N lines); a quick smoke run")
    r.add_argument("--ignore-data-errors", action="store_true",
                   help="train even when the data checks find errors (see `check --data`)")
    r.add_argument("--workers", type=_int_in(1, 1024), default=1,
                   help="data-parallel processes on this machine (runs mpiexec -n N); "
                        "across machines use mpiexec -n N --hostfile ... rnndsl run SPEC")

    c = sub.add_parser("check", help="check a spec: all errors at once, or a model summary")
    c.add_argument("spec")
    c.add_argument("--no-data", action="store_true",
                   help="do not read the data files (sizes shown as ?)")
    c.add_argument("--data", action="store_true",
                   help="also check the data: tag scheme, unseen labels, duplicates, overlap, "
                        "balance, lengths, OOV rate (exit code 2 on a data error)")

    e = sub.add_parser("eval", help="evaluate a trained run on a file in the spec's format")
    e.add_argument("run_dir")
    e.add_argument("file")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    rp = sub.add_parser("report", help="write a run's report: one self-contained HTML page")
    rp.add_argument("run_dir")
    rp.add_argument("-o", "--output", default=None, help="the HTML file (default "
                    "RUN_DIR/report.html)")

    pr = sub.add_parser("predict", help="tag or classify raw text (one sentence per line)")
    pr.add_argument("run_dir")
    pr.add_argument("file", nargs="?", default="-", help="input file, or - for stdin")
    pr.add_argument("--format", choices=["text", "input"], default="text",
                    help="text: whitespace-tokenized sentences; input: the spec's reader format")
    pr.add_argument("--confidence", action="store_true",
                    help="add each prediction's probability (CRF: posterior marginal)")

    gn = sub.add_parser("generate", help="text from a trained language model")
    gn.add_argument("run_dir")
    gn.add_argument("--prompt", default="", help="text the model reads first (default: none)")
    gn.add_argument("--tokens", type=int, default=50, help="how many tokens to generate")
    gn.add_argument("--temperature", type=float, default=1.0,
                    help="divides the scores before sampling; 0 is greedy (default 1)")
    gn.add_argument("--top-k", dest="top_k", type=int, default=None,
                    help="sample among the k highest-scoring tokens only")
    gn.add_argument("--seed", type=int, default=None, help="makes sampling reproducible")
    gn.add_argument("--stop-at-eos", dest="stop_at_eos", action="store_true",
                    help="stop after the first <eos> (the end of a line)")

    ex = sub.add_parser("export", help="write a trained run's network as an ONNX model")
    ex.add_argument("run_dir")
    ex.add_argument("-o", "--output", required=True, help="FILE.onnx")

    rd = sub.add_parser("render", help="draw the model graph or the network unrolled over input")
    rd.add_argument("spec", nargs="?", help="a .rnn spec or a pipeline (not needed with "
                                            "--checkpoint)")
    rd.add_argument("--input", default=None, help='a sentence, e.g. "the brown fox jumped"')
    g = rd.add_mutually_exclusive_group()
    g.add_argument("--unrolled", action="store_true", help="unrolled over --input (default)")
    g.add_argument("--model", action="store_true", help="the model (IR) graph")
    rd.add_argument("--level", choices=["layer", "cell", "op"], default="layer")
    rd.add_argument("--grad", action="store_true", help="colour states by ||dL/ds_t||")
    rd.add_argument("--checkpoint", metavar="RUN_DIR", help="use a trained run's weights")
    rd.add_argument("--steps", type=_COUNT, default=None, help="fold the middle of long inputs")
    rd.add_argument("--labels", "--label", dest="labels", default=None, metavar="LABELS",
                    help='gold labels for --grad: tags per word ("DET ADJ NOUN VERB") or an '
                         "acceptor's label (pos)")
    rd.add_argument("--expand", type=int, action="append", metavar="K",
                    help="draw word (span) K's inner chain in full (1-based; repeatable)")
    rd.add_argument("-o", "--output", required=True, help="FILE.svg|png|pdf|dot")

    gf = sub.add_parser("gradflow", help="per-step gradient norms ||dL/ds_t|| as a table + plot")
    gf.add_argument("spec", nargs="?", help="a .rnn spec (not needed with --checkpoint)")
    gf.add_argument("--input", required=True)
    gf.add_argument("--checkpoint", metavar="RUN_DIR")
    gf.add_argument("-o", "--output", default="gradflow.png")

    gc = sub.add_parser("gradcheck", help="finite-difference check of every op and cell")
    gc.add_argument("--op", action="append", help="only these ops")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    backend = getattr(args, "backend_", None) or args.backend
    if backend:
        os.environ["RNNDSL_BACKEND"] = backend
    try:
        from .autodiff.backend import host, tune_allocator  # `--help` stays fast

        tune_allocator()

        # a loss or gradient that turns inf/NaN is reported as a TrainingError with its step
        # and a hint; NumPy's own overflow warnings would only add noise before it
        with host.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return COMMANDS[args.command](args)
    except SpecError as e:
        print(e.format(), file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 2
    except RnnError as e:
        print(e.format(), file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug of ours, not the user's: say so
        if args.debug:
            traceback.print_exc()
        else:
            print(f"internal error: {type(e).__name__}: {e}\n"
                  "  this is a bug in rnndsl; rerun with --debug for the traceback",
                  file=sys.stderr)
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run
    from .train.loop import Interrupted
    from .train.progress import Bars, console, print_metrics

    if not args.spec and not args.resume:
        print("error: give a spec to run, or --resume RUN_DIR", file=sys.stderr)
        return 2
    if args.workers > 1:
        from .train.distributed import get_comm, launch

        if get_comm().size == 1:
            argv = [a for a in sys.argv[1:] if not a.startswith("--workers")]
            if "--workers" in sys.argv[1:]:
                i = sys.argv[1:].index("--workers")
                argv = sys.argv[1:][:i] + sys.argv[1:][i + 2:]
            return launch(argv, args.workers)
    out = console()
    bars = Bars(console(stderr=True), enabled=False if args.no_progress else None)
    try:
        final = run(args.spec, out=args.out, epochs=args.epochs, seed=args.seed,
                    resume=args.resume, log=lambda s: out.print(s, markup=False),
                    progress=bars, limit=args.limit, pretrained=args.pretrained,
                    chain_thaw=args.chain_thaw, profile=args.profile,
                    ignore_data_errors=args.ignore_data_errors)
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 for Ctrl-C, 143 for SIGTERM
    finally:
        from .train.lock import release_all

        release_all()
    print_metrics(out, "final metrics (best epoch)", final)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from . import lang

    diags = lang.check_file(args.spec)
    errors = [d for d in diags if d.severity == "error"]
    if diags:
        print("\n".join(d.format() for d in diags), file=sys.stderr)
    if errors:
        n = len(errors)
        print(f"{n} error{'s' if n != 1 else ''} in {args.spec}", file=sys.stderr)
        return 2
    spec = lang.load(args.spec)
    sizes = None
    if args.data:
        from .data.checks import check_data_command

        return check_data_command(spec, print)
    failed: RnnError | None = None
    if not args.no_data and spec.train is not None:
        from .run import prepare

        try:
            prep = prepare(spec, log=lambda s: None)
            sizes = prep.data.sizes()
        except RnnError as e:  # the spec is fine, its data is not: still an error
            failed = e
    print(lang.summary_table(spec, sizes))
    batch = spec.train.batch if spec.train is not None else 32
    for g in spec.models.values():
        est = lang.resources.estimate(g, batch, sizes)
        print(lang.resources.describe(est, lang.resources.machine_memory()))
    if failed is not None:
        print(failed.format(), file=sys.stderr)
        print(f"the data of {args.spec} cannot be read (sizes shown as ?); "
              "`check --no-data` checks the spec alone", file=sys.stderr)
        return failed.exit_code
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .prepare import eval_file
    from .train.progress import console, print_metrics

    res = eval_file(args.run_dir, args.file, log=lambda s: None)
    if args.json:
        print(json.dumps(res))
    else:
        print_metrics(console(), f"{args.file}", res)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .prepare import load_run
    from .report import write_report

    prep, _ = load_run(args.run_dir, log=lambda s: None)
    print(write_report(args.run_dir, prep, args.output))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict

    predict(args.run_dir, args.file, fmt=args.format, confidence=args.confidence)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .runs import load_run

    run = load_run(args.run_dir)
    text = run.sample(args.prompt, args.tokens, temperature=args.temperature, top_k=args.top_k,
                      seed=args.seed, stop_at_eos=args.stop_at_eos)
    from .generate import is_char_level

    sep = "" if is_char_level(run.prep.data) or not args.prompt or text.startswith("\n") \
        else " "
    print(f"{args.prompt}{sep}{text}".rstrip("\n"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export.onnx import export_run

    info = export_run(args.run_dir, args.output)
    print(f"wrote {args.output}: {info}", file=sys.stderr)
    return 0


def _spec_or_checkpoint(args: argparse.Namespace) -> bool:
    if args.spec is None and not args.checkpoint:
        print(f"error: give a spec to {args.command}, or --checkpoint RUN_DIR", file=sys.stderr)
        return False
    return True


def cmd_render(args: argparse.Namespace) -> int:
    from .render.cli import render_command

    return render_command(args) if _spec_or_checkpoint(args) else 2


def cmd_gradflow(args: argparse.Namespace) -> int:
    from .render.cli import gradflow_command

    return gradflow_command(args) if _spec_or_checkpoint(args) else 2


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradchecks import run_gradchecks

    ok = run_gradchecks(args.op, print)
    return 0 if ok else 1


COMMANDS = {"run": cmd_run, "check": cmd_check, "eval": cmd_eval, "report": cmd_report,
            "predict": cmd_predict, "generate": cmd_generate, "export": cmd_export,
            "render": cmd_render, "gradflow": cmd_gradflow, "gradcheck": cmd_gradcheck}


if __name__ == "__main__":
    sys.exit(main())
