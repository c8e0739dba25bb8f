"""Draw the lecture's figures from the specs in examples/figures/ (and a few more).

    python examples/make_figures.py [OUT_DIR] [--format svg|png|pdf|dot] [--char-run RUN_DIR]

Writes, into OUT_DIR (default examples/figures/):
    acceptor.svg     the acceptor training graph, coloured by ||dL/ds_t|| (gold label from the data)
    transducer.svg   the transducer training graph: a local loss at every position
    birnn.svg        the biRNN over "the brown fox jumped over the dog"
    stacked.svg      the stacked RNN (three layers)
    bilstm_crf.svg   the BiLSTM-CRF: a CRF chain over the tags
    lstm-cell.svg    one LSTM unrolled at the cell level (gates i, f, o, z; memory c)
    vanishing.png    ||dL/ds_t|| of an S-RNN, a GRU and an LSTM acceptor over one long input
    char_acceptor.svg  the lecture's acceptor example 1: a BiLSTM over the characters of
                     "jumped", its final states predict the POS tag; the loss of the gold VERB
    pos_tagger_chars.svg  the POS tagger over "the brown fox jumped": a character chain under
                     every word feeding x_i of the word-level BiLSTMs (training loss of
                     DET ADJ NOUN VERB)
    hierarchical.svg the span model (Li et al. 2015) over the lecture's positive sentence: one
                     BiLSTM chain per span, an acceptor over the span vectors (label 1, positive)
The networks of these three are untrained (weights from the spec's seed): the pictures show
the structure and where the gradient of the training loss goes, not a trained model. With
--char-run RUN_DIR (a run of specs/char_pos_acceptor.rnn) char_acceptor is drawn from that
trained run instead: the shipped figure is, and it predicts VERB.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import rnndsl
import rnndsl.render as R
from rnndsl.run import prepare

HERE = Path(__file__).resolve().parent / "figures"
FOX = "the brown fox jumped over the dog"

# spec file -> (sentence, options of rnndsl.render.unrolled)
SPEC_FIGURES: dict[str, tuple[str, dict]] = {
    "acceptor.rnn": (FOX, {"grad": True}),
    "transducer.rnn": (FOX, {}),
    "birnn.rnn": (FOX, {}),
    "stacked.rnn": ("the brown fox jumped", {}),
    "bilstm_crf.rnn": (FOX, {}),
}

LONG = (
    "the brown fox jumped over the lazy dog and the dog did not mind at all because "
    "it was a very old and very tired dog that had seen many foxes before"
).split()

LECTURE_POSITIVE = "it 's not life-affirming -- it 's vulgar and mean , but i liked it ."

# lecture figures drawn from specs/: file name -> (spec, sentence, options of unrolled)
NESTED_FIGURES: dict[str, tuple[str, str, dict]] = {
    "char_acceptor": ("char_pos_acceptor.rnn", "jumped", {"grad": True, "labels": "VERB"}),
    "pos_tagger_chars": (
        "pos_tagger.rnn",
        "the brown fox jumped",
        {"grad": True, "labels": "DET ADJ NOUN VERB"},
    ),
    "hierarchical": ("hierarchical_sst2.rnn", LECTURE_POSITIVE, {"grad": True, "labels": "1"}),
}
SPECS = HERE.parent.parent / "specs"

CELLS = {
    "S-RNN": "srnn(d=16) |> last |> softmax(2)",
    "GRU": "gru(d=16) |> last |> softmax(2)",
    "LSTM (forget bias 1)": "lstm(d=16, forget_bias=1.0) |> last |> softmax(2)",
}


def spec_figure(spec: Path, words: str, out: Path, **options) -> Path:
    """Render the model of ``spec`` unrolled over ``words``."""
    prep = prepare(rnndsl.load(str(spec)), log=lambda s: None)
    prep.net.graph.graph.setdefault("name", prep.cfg.model)
    return R.write(R.unrolled(prep.net, words, data=prep.data, **options), out)


def vanishing_plot(out: Path) -> Path:
    """The vanishing-gradient lesson: the same long input through three acceptors."""
    named = {}
    for name, pipeline in CELLS.items():
        net = rnndsl.compile(pipeline, input_dim=8, seed=0)
        norms = R.norms_of(net, LONG)
        named[name] = [float(v) for v in next(iter(norms.values()))[0]]
    return R.plot_norms(
        named,
        out,
        LONG,
        title="‖∂L/∂s_i‖ of an acceptor's loss on y_n (untrained, one long sentence)",
    )


def main(argv: Sequence[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(HERE))
    ap.add_argument("--format", default="svg", choices=["svg", "png", "pdf", "dot"])
    ap.add_argument("--char-run", default=None, help="a trained run of char_pos_acceptor.rnn")
    args = ap.parse_args(argv)
    out = Path(args.out)
    ext = args.format
    written = []
    for spec, (words, options) in SPEC_FIGURES.items():
        written.append(spec_figure(HERE / spec, words, out / f"{Path(spec).stem}.{ext}", **options))
    lstm = rnndsl.compile("lstm(d=4) |> last", input_dim=8, seed=0)
    lstm.graph.graph["name"] = "lstm(d=4) |> last"
    written.append(
        R.write(
            R.unrolled(lstm, "the brown fox", level="cell", grad=True), out / f"lstm-cell.{ext}"
        )
    )
    written.append(vanishing_plot(out / "vanishing.png"))
    for name, (spec, words, options) in NESTED_FIGURES.items():
        what = args.char_run if name == "char_acceptor" and args.char_run else str(SPECS / spec)
        written.append(R.unrolled(what, words, **options).save(out / f"{name}.{ext}"))
    for p in written:
        print(f"wrote {p}")
    return written


if __name__ == "__main__":
    try:
        main()
    except rnndsl.RnnError as e:
        print(e.format(), file=sys.stderr)
        sys.exit(e.exit_code)
