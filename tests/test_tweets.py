"""TweetEval's layout (text file -> labels beside it -> names from mapping.txt), the tweet
tokenizer, TweetEval's metrics (macro-F1, F1 of label 1) and `rnndsl eval RUN test_text.txt`."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rnndsl
from rnndsl.data.tweets import labels_path, read_mapping, read_tweeteval, shorten, tokenize_tweet
from rnndsl.errors import DataError
from rnndsl.predict import predict
from rnndsl.run import eval_file, run
from rnndsl.train.tweet_metrics import class_f1, f1_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, tokens", [
    ("Sooo happy!!!! @bob look https://t.co/xyz #Blessed", (
        "soo", "happy", "!!", "@user", "look", "<url>", "#blessed")),
    ("I love mom's cooking 😂😂 ❤️", ("i", "love", "mom's", "cooking", "😂", "😂", "❤️")),
    ("👍🏽 🇺🇸 👨‍👩‍👧 ok", ("👍🏽", "🇺🇸", "👨‍👩‍👧", "ok")),  # skin tone, flag, ZWJ family
    ("nice :) but :-( <3 www.x.com/a", ("nice", ":)", "but", ":-(", "<3", "<url>")),
    ("I love how you never reply back..", ("i", "love", "how", "you", "never", "reply", "back",
                                           "..")),
    ("Love ️ ️ people @ San…", ("love", "people", "@", "san", "…")),  # stray selectors go
    ("wait...... 3:30pm", ("wait", "..", "3", ":", "30pm")),
])
def test_tweet_tokenizer(text, tokens):
    assert tokenize_tweet(text, lowercase=True) == tokens


def test_tokenizer_keeps_case_without_lowercase_and_shortens_like_deepmoji():
    assert tokenize_tweet("LOOOL #NBA") == ("LOOL", "#NBA")
    assert shorten("heyyyy") == "heyy" and shorten("see") == "see" and shorten("!!!!") == "!!"


def _task(tmp, texts, labels, mapping="0\tnon_irony\n1\tirony\n", gz=False, split="train"):
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "mapping.txt").write_text(mapping)
    suffix = ".txt.gz" if gz else ".txt"
    for name, lines in ((f"{split}_text", texts), (f"{split}_labels", labels)):
        data = "".join(f"{x}\n" for x in lines).encode()
        (tmp / f"{name}{suffix}").write_bytes(gzip.compress(data) if gz else data)
    return tmp / f"{split}_text{suffix}"


def test_reader_pairs_lines_and_names_labels(tmp_path):
    path = _task(tmp_path, ["Great, another Monday 😒", "I love it"], ["1", "0"], gz=True)
    assert labels_path(path).name == "train_labels.txt.gz"
    exs = read_tweeteval(path, lowercase=True)
    assert [e.label for e in exs] == ["irony", "non_irony"]
    assert exs[0].words == ("great", ",", "another", "monday", "😒") and exs[1].line == 2
    assert read_tweeteval(path, tokenize="whitespace")[0].words == (
        "Great,", "another", "Monday", "😒")


def test_emoji_mapping_has_three_columns_and_a_trailing_tab():
    m = read_mapping(ROOT / "specs/data/tweeteval/emoji/mapping.txt")
    assert len(m) == 20 and (m[0].id, m[0].name, m[0].emoji) == (0, "red_heart", "❤")
    assert m[11].emoji == "🇺🇸" and m[19].name == "winking_face_with_tongue"


@pytest.mark.parametrize("texts, labels, mapping, message", [
    (["a", "b"], ["0"], None, "2 tweets, but train_labels.txt has 1 labels"),
    (["a", "b"], ["0", "2"], None, "train_labels.txt:2: label '2' is not an id of mapping.txt"),
    (["a", "", "c"], ["0", "1", "0"], None, "train_text.txt:2: an empty tweet"),
    (["a"], ["0"], "0\tx\n2\ty\n", "mapping.txt:2: label id 2, expected 1"),
    (["a"], ["0"], "0\tx\n", "1 label(s), a classification task needs at least 2"),
    (["a"], ["0"], "0 x\n1 y\n", "mapping.txt:1: expected 'id<TAB>name'"),
])
def test_broken_task_folders(tmp_path, texts, labels, mapping, message):
    path = _task(tmp_path, texts, labels, **({"mapping": mapping} if mapping else {}))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_tweeteval(path)


def test_a_text_file_must_name_its_split(tmp_path):
    p = tmp_path / "tweets.txt"
    p.write_text("a\n")
    (tmp_path / "mapping.txt").write_text("0\ta\n1\tb\n")
    with pytest.raises(DataError, match="has '_text' in it"):
        read_tweeteval(p)


def test_f1_as_scikit_learn_defines_it():
    gold = ["a", "a", "b", "b", "c", "c"]
    pred = ["a", "b", "b", "b", "a", "c"]
    # a: P 1/2 R 1/2 -> 50; b: P 2/3 R 1 -> 80; c: P 1 R 1/2 -> 66.67
    assert f1_of("b", pred, gold) == pytest.approx(80.0)
    out = class_f1(pred, gold, positive="c")
    assert out["macro_f1"] == pytest.approx((50 + 80 + 200 / 3) / 3)
    assert out["f1"] == pytest.approx(200 / 3)
    assert class_f1(["a", "a"], ["b", "b"]) == {"macro_f1": 0.0}  # a never gold, b never found


SPEC = """data tw = tweeteval(train="{d}/train_text.txt", dev="{d}/val_text.txt", lowercase=true)
m = embed(tw.words, d=8) |> bilstm(d=8) |> attention |> softmax(tw.labels)
train m on tw {{ epochs = 2; batch = 4; seed = 1{extra} }}
"""


def _irony(tmp_path):
    texts = ["oh great, more rain 😒", "i love sunny days", "yeah right, best day ever",
             "happy birthday mom ❤️", "sure, i love waiting in line", "this cake is amazing"] * 4
    labels = ["1", "0", "1", "0", "1", "0"] * 4
    d = tmp_path / "irony"
    _task(d, texts, labels)
    _task(d, texts[:12], labels[:12], split="val")
    _task(d, texts[12:], labels[12:], split="test")
    return d


def test_a_run_reports_tweeteval_metrics_and_eval_reads_test_text(tmp_path):
    d = _irony(tmp_path)
    spec = tmp_path / "s.rnn"
    spec.write_text(SPEC.format(d=d, extra=""))
    final = run(spec, out=str(tmp_path / "run"), log=lambda s: None)
    assert {"dev_accuracy", "dev_macro_f1", "dev_f1"} <= set(final)
    res = eval_file(tmp_path / "run", str(d / "test_text.txt"), log=lambda s: None)
    assert 0 <= res["f1"] <= 100 and 0 <= res["macro_f1"] <= 100
    out = subprocess.run([sys.executable, "-m", "rnndsl.cli", "eval", str(tmp_path / "run"),
                          str(d / "test_text.txt"), "--json"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    flat = {k: v for k, v in res.items() if not isinstance(v, dict)}
    assert {k: printed[k] for k in flat} == pytest.approx(flat)
    assert {k: printed[k] for k in res if isinstance(res[k], dict)} == \
        {k: v for k, v in res.items() if isinstance(v, dict)}
    raw = tmp_path / "raw.txt"
    raw.write_text("Sooo happy!!!! @bob 😂😂\n")
    buf = io.StringIO()
    (label, p), = predict(str(tmp_path / "run"), str(raw), confidence=True, out=buf)
    assert label in ("irony", "non_irony") and 0.5 <= p <= 1
    assert buf.getvalue().endswith("\tsoo happy !! @user 😂 😂\n")  # the tweet tokenizer's


def test_early_stop_on_tweeteval_metrics_is_checked(tmp_path):
    d = _irony(tmp_path)
    spec = tmp_path / "s.rnn"
    spec.write_text(SPEC.format(d=d, extra="; early_stop = dev.f1(patience=1)"))
    assert not rnndsl.check(spec)
    sst = tmp_path / "sst.rnn"
    sst.write_text(f"""data s = classification(train="{d}/train_text.txt", dev="{d}/val_text.txt")
m = embed(s.words, d=8) |> last |> softmax(s.labels)
train m on s {{ epochs = 1; early_stop = dev.f1(patience=1) }}
""")
    diags = rnndsl.check(sst)
    assert len(diags) == 1 and "defined for TweetEval's two-class tasks" in diags[0].message
    assert diags[0].hint == "use macro_f1 or accuracy"
