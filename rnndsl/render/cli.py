"""`rnndsl render` and `rnndsl gradflow`: pictures and gradient norms from the command line.

    rnndsl render SPEC [--input "the brown fox"] [--unrolled | --model] [--level layer|cell|op]
                  [--grad] [--checkpoint RUN_DIR] [--steps N] -o FILE.svg|png|pdf|dot
    rnndsl gradflow SPEC --input "..." [--checkpoint RUN_DIR] [-o FILE.png]

SPEC is a .rnn file (the model of its train statement, else its last model; the data it declares
gives the vocabulary and, for a sentence found in it, the gold labels), or a bare pipeline such
as "srnn(d=8) |> last" run on fixed pseudo-random word vectors. With --checkpoint the trained
run's own spec, vocabulary and best weights are used.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import RnnError
from ..nn.network import Network
from . import dot as D
from . import model, trace, unrolled
from .gradflow import norm_series, norms_table, plot_norms
from .labels import esc, plain
from .tape import RenderError

PIPELINE_INPUT_DIM = 8  # the word-vector size of a bare pipeline given on the command line


@dataclass
class Target:
    """What a command draws: the network, the data behind it (or None), and a display name."""

    net: Network
    data: Any
    name: str


def _note(msg: str) -> None:
    print(msg, file=sys.stderr)


def load_target(spec: str, checkpoint: str | None = None) -> Target:
    """The network of a spec file, a trained run, or a bare pipeline."""
    if checkpoint:
        from ..run import load_run

        prep, run_dir = load_run(checkpoint, log=_note)
        return Target(prep.net, prep.data, f"{prep.cfg.model} ({run_dir})")
    path = Path(spec)
    if path.suffix != ".rnn" and not path.exists() and ("|>" in spec or "(" in spec):
        from ..api import compile as compile_pipeline

        net = compile_pipeline(spec, input_dim=PIPELINE_INPUT_DIM)
        net.graph.graph.setdefault("name", spec)
        return Target(net, None, spec)
    if not path.is_file():
        raise RenderError(
            f"no spec file {spec}",
            hint='give a .rnn file, or a pipeline in quotes like "srnn(d=8) |> last"',
        )
    from .. import lang
    from ..run import prepare

    checked = lang.load(str(path))
    if checked.train is not None:
        prep = prepare(checked, log=_note)
        return Target(prep.net, prep.data, prep.cfg.model)
    if not checked.models:
        raise RenderError(f"{spec} defines no model")
    name = list(checked.models)[-1]
    data = checked.models[name].graph.get("data")
    if data is None:
        raise RenderError(
            f"model {name} of {spec} reads no data, so its input size is unknown",
            hint="add a train statement, or draw a pipeline with rnndsl.compile",
        )
    stand_in = SimpleNamespace(
        models=checked.models, data=checked.data, train=SimpleNamespace(model=name, data=data)
    )
    prep = prepare(stand_in, log=_note)
    return Target(prep.net, prep.data, name)


def default_sentence(target: Target) -> list[str]:
    """The first dev (else training) sentence of the data, for a render without --input."""
    data = target.data
    for examples in (getattr(data, "dev", None), getattr(data, "train", None)):
        if examples:
            return list(examples[0].words)
    raise RenderError("give the sentence to unroll over", hint='--input "the brown fox jumped"')


def render_command(args: argparse.Namespace) -> int:
    D.output_format(args.output)  # a bad extension fails before any work
    if args.model and args.grad:
        raise RenderError(
            "--grad colours the unrolled graph; the model graph has no gradients",
            hint="drop --model (the unrolled graph is the default)",
        )
    target = load_target(args.spec, args.checkpoint)
    target.net.graph.graph.setdefault("name", target.name)
    if args.model:
        dg = model(
            target.net,
            title=f"<B>{esc(target.name)}</B>: model graph, "
            f"{target.net.parameter_count():,} parameters",
        )
    else:
        words = args.input.split() if args.input else default_sentence(target)
        dg = unrolled(
            target.net, words, level=args.level, grad=args.grad, steps=args.steps, data=target.data
        )
    path = D.write(dg, args.output)
    _note(f"wrote {path}")
    return 0


def gradflow_command(args: argparse.Namespace) -> int:
    target = load_target(args.spec, args.checkpoint)
    words = args.input.split()
    tr = trace(target.net, words, grad=True, data=target.data)
    named = norm_series(tr)
    if not named:
        raise RenderError("this model has no recurrent layer: there is no gradient through time")
    print(
        f"{target.name}: ‖dL/ds_i‖ over {len(words)} words; {plain(tr.loss_info.text)} "
        f"= {tr.loss_info.value:.4g}"
    )
    print(norms_table(named, words))
    try:
        path = plot_norms(named, args.output, words, title=f"{target.name}: ‖∂L/∂s_i‖")
    except (OSError, ValueError) as e:
        raise RnnError(f"cannot write the plot {args.output}: {e}") from None
    _note(f"wrote {path}")
    return 0
