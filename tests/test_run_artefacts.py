"""A run directory is a model: it stands alone, loads in Python, generates text.

Each run is copied to a new folder and the data it was trained on is renamed away (the tests
run as root, so chmod would not stop reads); every command then works on the copy alone.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from runs_fixture import SPECS, train_all

import rnndsl
from rnndsl.cli import main
from rnndsl.errors import CheckpointError, DataError

EVAL_FILE = {"tagger": "dev.conllu", "crf": "dev.conll", "classifier": "dev.txt", "lm": "dev.lm",
             "charlm": "dev.lm"}


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """(runs copied to a new folder, a copy of the data elsewhere); the original data is gone."""
    base = tmp_path_factory.mktemp("train")
    runs = train_all(base)
    new = tmp_path_factory.mktemp("elsewhere")
    shutil.copytree(base / "data", new / "evaldata")
    for kind, d in runs.items():
        shutil.copytree(d, new / kind)
    (base / "data").rename(base / "data.moved-away")
    for spec in base.glob("*.rnn"):
        spec.rename(spec.with_suffix(".away"))
    yield {k: new / k for k in runs}, new / "evaldata", base
    (base / "data.moved-away").rename(base / "data")


def cli(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["tagger", "crf", "classifier", "lm", "charlm"])
def test_eval_of_a_copied_run_needs_no_training_data(moved, capsys, kind):
    runs, data, _ = moved
    code, out, err = cli(capsys, "eval", runs[kind], data / EVAL_FILE[kind], "--json")
    assert code == 0, err
    res = json.loads(out)
    assert ("perplexity" if kind.endswith("lm") else "accuracy") in res
    assert ("bpc" in res) == (kind == "charlm")
    # the same figures as the API's evaluate, and as the run's own dev evaluation
    assert rnndsl.load_run(runs[kind]).evaluate(data / EVAL_FILE[kind]) == res
    final = json.loads((runs[kind] / "metrics.json").read_text())
    key = "dev_perplexity" if kind.endswith("lm") else "dev_accuracy"
    assert final[key] == pytest.approx(res[key[4:]], rel=1e-9)


@pytest.mark.parametrize("kind", ["tagger", "crf", "classifier"])
def test_predict_of_a_copied_run_matches_the_api(moved, capsys, monkeypatch, kind):
    runs, _, _ = moved
    sentences = ["the brown fox jumped a cat", "this team won", "a lazy dog saw the match"]
    code, out, err = cli(capsys, "predict", runs[kind], "-", "--confidence",
                         stdin="\n".join(sentences) + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    got = rnndsl.load_run(runs[kind]).predict(sentences)
    if kind == "classifier":
        lines = out.strip().split("\n")
        assert [ln.split("\t")[0] for ln in lines] == [r["label"] for r in got]
        assert [float(ln.split("\t")[1]) for ln in lines] == pytest.approx(
            [r["probabilities"][r["label"]] for r in got], abs=5e-5)
        assert all(sum(r["probabilities"].values()) == pytest.approx(1) for r in got)
        return
    blocks = [b.split("\n") for b in out.strip().split("\n\n")]
    assert [[ln.split()[1] for ln in b] for b in blocks] == [r["tags"] for r in got]
    assert [float(ln.split()[2]) for b in blocks for ln in b] == pytest.approx(
        [p for r in got for p in r["probabilities"]], abs=5e-5)
    assert [r["words"] for r in got] == [s.split() for s in sentences]


def test_the_api_keeps_input_order_across_batches(moved):
    run = rnndsl.load_run(moved[0]["tagger"])
    sents = [" ".join(["the", "dog"] + ["saw"] * (k % 5)) for k in range(11)]
    one_by_one = [run.predict([s])[0] for s in sents]
    batched = run.predict(sents, batch=3)  # sorted by length inside, returned in input order
    assert [r["words"] for r in batched] == [s.split() for s in sents]
    assert [r["tags"] for r in batched] == [r["tags"] for r in one_by_one]
    for a, b in zip(batched, one_by_one):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_crf_nbest_from_the_api_is_best_first_and_starts_with_viterbi(moved):
    run = rnndsl.load_run(moved[0]["crf"])
    for r in run.predict(["the dog saw a cat", "a red fox"], nbest=4):
        assert len(r["nbest"]) == 4
        assert r["nbest"][0]["tags"] == r["tags"]
        scores = [b["score"] for b in r["nbest"]]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(b["tags"]) for b in r["nbest"]}) == 4


def test_softmax_tagger_nbest_is_the_product_of_per_token_probabilities(moved):
    import itertools
    import math

    run = rnndsl.load_run(moved[0]["tagger"])
    words = "a dog won"
    r = run.predict([words], nbest=3)[0]
    # brute force over every tag sequence, from the per-token distributions
    net = run.network
    from rnndsl.autodiff import backend as Bk
    from rnndsl.autodiff.tensor import no_grad
    from rnndsl.data.readers import Example
    from rnndsl.nn.batch import on_backend
    from rnndsl.nn.module import RunContext

    data = run.prep.data
    with no_grad():
        b = on_backend(data.batches([Example(tuple(words.split()))], 1, None,
                                    run.prep.needs)[0], net.backend.xp)
        v = net.run(b.inputs, RunContext())[net.output]
        p = Bk.to_host(net.head.probabilities(net.head.scores(v)))[:, 0]  # (T, K)
    names = run.labels
    every = sorted(((sum(math.log(p[t, k]) for t, k in enumerate(seq)), seq)
                    for seq in itertools.product(range(len(names)), repeat=p.shape[0])),
                   reverse=True)[:3]
    assert [b["tags"] for b in r["nbest"]] == [[names[k] for k in s] for _, s in every]
    assert [b["score"] for b in r["nbest"]] == pytest.approx([s for s, _ in every], abs=1e-4)


def test_render_with_a_copied_checkpoint(moved, capsys, tmp_path):
    runs, _, _ = moved
    code, _, err = cli(capsys, "render", "--checkpoint", runs["crf"], "--input",
                       "the brown fox", "-o", tmp_path / "crf.dot")
    assert code == 0, err
    assert "fox" in (tmp_path / "crf.dot").read_text()
    code, _, err = cli(capsys, "render", "--checkpoint", runs["tagger"], "--model",
                       "-o", tmp_path / "tagger.dot")
    assert code == 0, err
    code, _, err = cli(capsys, "render", "--model", "-o", tmp_path / "none.dot")
    assert code == 2 and "--checkpoint" in err


@pytest.mark.parametrize("kind", ["tagger", "crf", "classifier", "lm", "charlm"])
def test_export_of_a_copied_run(moved, capsys, tmp_path, kind):
    pytest.importorskip("onnx", reason="ONNX export needs the optional `onnx` package")
    pytest.importorskip("onnxruntime", reason="the comparison runs the file in onnxruntime")
    from onnx_check import max_difference

    runs, data, _ = moved
    code, _, err = cli(capsys, "export", runs[kind], "-o", tmp_path / "m.onnx")
    assert code == 0, err
    run = rnndsl.load_run(runs[kind])
    examples = run.prep.data.read_file(data / EVAL_FILE[kind])
    assert max_difference(run.network, run.prep.data, run.prep.needs, tmp_path / "m.onnx",
                          examples) < 1e-5


def test_gradflow_with_a_copied_checkpoint(moved, capsys, tmp_path):
    code, out, err = cli(capsys, "gradflow", "--checkpoint", moved[0]["classifier"],
                         "--input", "the team won the match", "-o", tmp_path / "g.png")
    assert code == 0, err
    assert (tmp_path / "g.png").exists()


def test_fine_tuning_from_a_copied_run_and_chain_thaw(moved, capsys, tmp_path):
    runs, data, _ = moved
    spec = tmp_path / "ft.rnn"  # the new task's own data; the source run's data is gone
    spec.write_text(SPECS["classifier"].replace('"data/', f'"{data}/'))
    code, out, err = cli(capsys, "run", spec, "--pretrained", runs["classifier"],
                         "--no-chain-thaw", "--out", tmp_path / "ft", "--no-progress")
    assert code == 0, err
    assert "pretrained weights from" in out
    code, out, err = cli(capsys, "run", spec, "--pretrained", runs["classifier"],
                         "--chain-thaw", "--epochs", "1", "--out", tmp_path / "ct",
                         "--no-progress")
    assert code == 0, err
    assert "chain-thaw step 1" in out


def test_resume_needs_the_training_data_and_says_so(moved, capsys):
    runs, _, base = moved
    code, _, err = cli(capsys, "run", "--resume", runs["classifier"], "--epochs", "3")
    assert code == 2
    assert "train.txt: no such file" in err and "--resume trains further" in err
    assert "Traceback" not in err


def test_resume_of_a_copied_run_without_its_vectors_file(tmp_path, capsys):
    """The pretrained rows live in the run: resuming reads the data, not the vectors file."""
    runs = train_all(tmp_path, ("classifier",))
    (tmp_path / "data" / "vectors.txt").rename(tmp_path / "vectors.away")
    code, out, err = cli(capsys, "run", "--resume", runs["classifier"], "--epochs", "3",
                         "--no-progress")
    assert code == 0, err
    assert len(rnndsl.load_run(runs["classifier"]).metrics) == 3


@pytest.mark.parametrize("chain_thaw", [False, True])
def test_resume_of_a_fine_tuned_run_without_its_source_run(tmp_path, capsys, chain_thaw):
    """A run started from another run's weights records which layers were new, so resuming
    it needs only its own checkpoints once the source run is gone."""
    runs = train_all(tmp_path, ("classifier",))
    flag = "--chain-thaw" if chain_thaw else "--no-chain-thaw"
    code, _, err = cli(capsys, "run", tmp_path / "classifier.rnn", "--pretrained",
                       runs["classifier"], flag, "--epochs", "1", "--out", tmp_path / "ft",
                       "--no-progress")
    assert code == 0, err
    assert (tmp_path / "ft" / "pretrained.json").exists()
    runs["classifier"].rename(tmp_path / "source-gone")
    code, out, err = cli(capsys, "run", "--resume", tmp_path / "ft", "--epochs", "2",
                         "--no-progress")
    assert code == 0, err
    assert "resuming from this run's own checkpoints" in out
    (tmp_path / "ft" / "pretrained.json").write_text('{"source": "x", "new": []}')
    code, _, err = cli(capsys, "run", "--resume", tmp_path / "ft", "--epochs", "3")
    assert code == 2 and "pretrained.json was altered" in err


def test_the_python_api_attributes(moved):
    runs, _, _ = moved
    run = rnndsl.load_run(runs["crf"])
    assert isinstance(run.network, rnndsl.Network)
    assert run.spec.train.model == "tagger"
    assert [r["epoch"] for r in run.metrics] == [1, 2]
    assert "dev_f1" in run.metrics[0]
    assert set(run.labels) == {"B-NP", "I-NP", "B-VP"}
    assert "crf" in repr(run) or "tagging" in repr(run)


# --- generation -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lm", "charlm"])
def test_generate_with_a_seed_repeats_and_greedy_is_deterministic(moved, capsys, kind):
    runs, _, _ = moved
    a = cli(capsys, "generate", runs[kind], "--prompt", "the", "--tokens", "15", "--seed", "7")
    b = cli(capsys, "generate", runs[kind], "--prompt", "the", "--tokens", "15", "--seed", "7")
    c = cli(capsys, "generate", runs[kind], "--prompt", "the", "--tokens", "15", "--seed", "8")
    assert a[0] == 0 and a == b
    assert a[1] != c[1]  # another seed, another text (15 draws from a dozen or more tokens)
    run = rnndsl.load_run(runs[kind])
    assert run.sample("the", 15, seed=7) == run.sample("the", 15, seed=7)
    assert a[1].startswith("the")
    greedy = {run.sample("the", 10, temperature=0, seed=s) for s in range(3)}
    assert len(greedy) == 1
    assert run.sample("the", 10, top_k=1, seed=4) in greedy


def test_sampling_carries_the_state_across_the_prompt(moved):
    """Greedy tokens read one at a time, the state carried, equal the argmax at each position of
    one pass over <eos>, the prompt and those same tokens (eval's view of the text)."""
    run = rnndsl.load_run(moved[0]["lm"])
    from rnndsl.autodiff import backend as Bk
    from rnndsl.autodiff.tensor import no_grad
    from rnndsl.generate import sample
    from rnndsl.nn.module import RunContext, SeqInfo, TokenValue

    net, data = run.network, run.prep.data
    vocab = data.vocabs["words"]
    prompt = "the lazy dog saw a"
    got = sample(net, data, prompt, 6, temperature=0)
    ids = [vocab.index("<eos>")] + vocab.encode(prompt.split()) + vocab.encode(got[:-1])
    xp = net.backend.xp
    with no_grad():
        tv = TokenValue(xp.asarray(Bk.host.array(ids).reshape(-1, 1)),
                        SeqInfo([len(ids)], len(ids), xp))
        s = Bk.to_host(net.head.scores(net.run({"t.words": tv}, RunContext())[net.output]).data)
    s = s[:, 0].copy()
    s[:, vocab.index("<pad>")] = -1e30
    n = len(prompt.split()) + 1
    assert got == [vocab.tokens[int(k)] for k in s[n - 1:].argmax(-1)]


def test_stop_at_eos(moved):
    run = rnndsl.load_run(moved[0]["lm"])
    for seed in range(5):
        text = run.sample("the", 200, seed=seed, stop_at_eos=True)
        assert text.count("\n") <= 1 and (text.endswith("\n") or len(text.split()) == 200)


def test_char_lm_reads_characters_and_space_is_a_token(moved):
    run = rnndsl.load_run(moved[0]["charlm"])
    tokens = run.prep.data.vocabs["words"].tokens
    assert " " in tokens and "<eos>" in tokens
    assert all(len(t) == 1 for t in tokens if not t.startswith("<"))
    text = run.sample("the ", 60, seed=1)
    assert len(text.replace("\n", "")) <= 60
    from rnndsl.generate import prompt_tokens

    # as the reader reads a line: whitespace runs are one space, none at the start
    assert prompt_tokens(run.prep.data, "  a  dog\n") == ["a", " ", "d", "o", "g", " "]


def test_generate_on_a_tagger_is_a_clear_error(moved, capsys):
    code, _, err = cli(capsys, "generate", moved[0]["tagger"], "--prompt", "the")
    assert code == 2
    assert "not a language model" in err and "Traceback" not in err
    with pytest.raises(DataError, match="language model"):
        rnndsl.load_run(moved[0]["lm"]).predict(["the dog"])


@pytest.mark.parametrize("bad", [{"temperature": -1}, {"top_k": 0}, {"tokens": -3}])
def test_bad_sampling_settings_are_refused(moved, bad):
    run = rnndsl.load_run(moved[0]["lm"])
    args = {"prompt": "the", "tokens": 5, **bad}
    with pytest.raises(DataError):
        run.sample(**args)


# --- damaged run directories -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["spec.rnn", "vocab.json", "config.json", "vectors.npz",
                                  "manifest.json"])
@pytest.mark.parametrize("damage", ["missing", "altered"])
def test_a_missing_or_altered_file_is_refused_with_its_name(moved, tmp_path, capsys, name,
                                                            damage):
    run_dir = tmp_path / "r"
    shutil.copytree(moved[0]["classifier"], run_dir)
    f = run_dir / name
    if damage == "missing":
        f.unlink()
    elif name == "config.json":  # a valid value, but not the run's
        conf = json.loads(f.read_text())
        conf["seed"] = conf["seed"] + 1
        f.write_text(json.dumps(conf))
    elif name == "spec.rnn":
        f.write_text(f.read_text().replace("d=8", "d=9"))
    else:
        blob = bytearray(f.read_bytes())
        blob[len(blob) // 2] ^= 1
        f.write_bytes(bytes(blob))
    code, _, err = cli(capsys, "eval", run_dir, moved[1] / "dev.txt")
    assert code == 2, err
    assert name in err and "Traceback" not in err
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        rnndsl.load_run(run_dir)


def test_a_run_from_before_manifests_still_loads_with_a_note(moved, tmp_path, capsys):
    run_dir = tmp_path / "old"
    shutil.copytree(moved[0]["classifier"], run_dir)
    (run_dir / "manifest.json").unlink()
    conf = json.loads((run_dir / "config.json").read_text())
    del conf["manifest"]
    (run_dir / "config.json").write_text(json.dumps(conf))
    code, out, err = cli(capsys, "eval", run_dir, moved[1] / "dev.txt", "--json")
    assert code == 0, err
    assert "accuracy" in json.loads(out)


def test_loading_a_run_directory_as_a_spec_points_to_load_run(moved):
    from rnndsl.errors import SpecError

    with pytest.raises(SpecError) as e:
        rnndsl.load(str(moved[0]["lm"]))
    assert "rnndsl.load_run" in e.value.format()


def test_not_a_run_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such run directory"):
        rnndsl.load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError):
        rnndsl.load_run(tmp_path / "empty")


def test_the_readme_example_gives_the_tags_of_rnndsl_predict(moved, capsys, monkeypatch):
    """The README's `load_run(...).predict([...])` example, on a copied CRF run."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert 'run = rnndsl.load_run("runs/pos")' in readme
    assert 'run.predict(["the brown fox jumped", "time flies"])' in readme
    runs, _, _ = moved
    run = rnndsl.load_run(runs["crf"])
    got = run.predict(["the brown fox jumped", "time flies"])
    code, out, _ = cli(capsys, "predict", runs["crf"], "-",
                       stdin="the brown fox jumped\ntime flies\n", monkeypatch=monkeypatch)
    assert code == 0
    tags = [[ln.split()[1] for ln in b.split("\n")] for b in out.strip().split("\n\n")]
    assert tags == [r["tags"] for r in got]


def test_text_reader_tokens_chars(tmp_path):
    from rnndsl.data.readers import read_text

    f = tmp_path / "t.txt"
    f.write_text(" ab  c\n\nd\n")
    assert [ex.words for ex in read_text(f, tokens="chars")] == [
        ("a", "b", " ", "c", "<eos>"), ("<eos>",), ("d", "<eos>")]
    assert [ex.words for ex in read_text(f)] == [("ab", "c", "<eos>"), ("<eos>",), ("d", "<eos>")]
    with pytest.raises(ValueError, match="tokens"):  # a spec's value is checked before this
        read_text(f, tokens="bytes")
