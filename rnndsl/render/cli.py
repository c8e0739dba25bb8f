"""`rnndsl render` and `rnndsl gradflow`: pictures and gradient norms from the command line.

    rnndsl render SPEC [--input "the brown fox"] [--unrolled | --model] [--level layer|cell|op]
                  [--grad] [--labels "DET ADJ NOUN" | --label pos] [--expand K]
                  [--checkpoint RUN_DIR] [--steps N] -o FILE.svg|png|pdf|dot
    rnndsl gradflow SPEC --input "..." [--checkpoint RUN_DIR] [-o FILE.png]

SPEC is a .rnn file (the model of its train statement, else its last model; the data it declares
gives the vocabulary and, for a sentence found in it, the gold labels), a run directory, or a
bare pipeline such as "srnn(d=8) |> last" run on fixed pseudo-random word vectors. With
--checkpoint the trained run's own spec, vocabulary and best weights are used. Notes (what was
folded or collapsed, words outside the vocabulary) go to stderr.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import RnnError
from . import dot as D
from . import model, trace, unrolled
from .api import Target, default_sentence, load_target
from .gradflow import norm_series, norms_table, plot_norms
from .labels import plain
from .tape import RenderError


def _note(msg: str) -> None:
    print(msg, file=sys.stderr)


def render_command(args: argparse.Namespace) -> int:
    D.output_format(args.output)  # a bad extension fails before any work
    labels = getattr(args, "labels", None)
    expand = getattr(args, "expand", None)
    if args.model and (args.grad or labels is not None or expand):
        flag = "--grad" if args.grad else "--labels" if labels is not None else "--expand"
        raise RenderError(
            f"{flag} applies to the unrolled graph; the model graph has no gradients",
            hint="drop --model (the unrolled graph is the default)",
        )
    target = load_target(args.spec, args.checkpoint, log=_note)
    target.net.graph.graph.setdefault("name", target.name)
    if args.model:
        pic = model(target.net, title=_model_title(target))
    else:
        words = args.input.split() if args.input else default_sentence(target)
        pic = unrolled(
            target.net,
            words,
            level=args.level,
            grad=args.grad,
            steps=args.steps,
            data=target.data,
            labels=labels,
            expand=expand,
        )
    for note in pic.notes:
        _note(f"note: {note}")
    path = pic.save(args.output)
    _note(f"wrote {path}")
    return 0


def _model_title(target: Target) -> str:
    from .labels import esc

    return f"<B>{esc(target.name)}</B>: model graph, {target.net.parameter_count():,} parameters"


def gradflow_command(args: argparse.Namespace) -> int:
    target = load_target(args.spec, args.checkpoint, log=_note)
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
