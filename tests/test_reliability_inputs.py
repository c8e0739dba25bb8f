"""Hostile specs and data files: the right line, a named limit, a clean DataError, never an
internal error. Each case is one of issue 23's minimal cases."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from rnndsl import limits
from rnndsl.cli import main
from rnndsl.data import readers
from rnndsl.data.embeddings import load_vectors, load_word2vec_binary
from rnndsl.errors import DataError, Diagnostic, Span, source_lines
from rnndsl.lang import check_text

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "bad_specs" / "data" / "tiny"

BASE = """data ewt = conllu(train="tiny/train.conllu", dev="tiny/dev.conllu")
tagger = embed(ewt.words, d=8) |> bilstm(d=8) |> softmax(ewt.tags)
train tagger on ewt {
  epochs = 2
  batch = 4
}
"""


@pytest.fixture
def spec_dir(tmp_path):
    shutil.copytree(TINY, tmp_path / "tiny")
    return tmp_path


def errors_of(text: str, base: Path) -> list[Diagnostic]:
    _, diags = check_text(text, str(base / "x.rnn"), base)
    return [d for d in diags if d.severity == "error"]


def shown_line(d: Diagnostic) -> str:
    return d.format().split("\n")[1]


# -- positions ------------------------------------------------------------------------------


@pytest.mark.parametrize("odd", ["\f", "\v", "\x85", "\u2028", "\u2029", "\x1c", "\x1d"])
def test_odd_line_breaks_earlier_do_not_shift_the_shown_line(spec_dir, odd):
    text = BASE.replace("epochs = 2", f"epochs = 2 # {odd} note").replace(
        "batch = 4", "batch = 4 )"
    )
    (d,) = errors_of(text, spec_dir)
    assert d.span.line == 5
    assert "batch = 4 )" in shown_line(d)


def test_source_lines_split_at_newline_only():
    assert source_lines("a\fb\u2028c\nd") == ["a\fb\u2028c", "d"]


@pytest.mark.parametrize("bad", ["\v", "\x85", "\u2028", "\x1c"])
def test_odd_character_is_reported_on_its_own_line(spec_dir, bad):
    (d,) = errors_of(BASE.replace("epochs = 2", f"epochs = 2 {bad}"), spec_dir)
    assert d.span.line == 4 and "epochs = 2" in shown_line(d)
    assert "\n" not in shown_line(d) and all(c.isprintable() for c in shown_line(d))


@pytest.mark.parametrize("number", ["0x10", "1_000", "1e", "1.2.3"])
def test_malformed_number_on_its_own_line(spec_dir, number):
    (d,) = errors_of(BASE.replace("epochs = 2", f"epochs = {number}"), spec_dir)
    assert (d.span.line, d.span.column) == (4, 12)
    assert f"malformed number '{number}'" in d.message
    assert number in shown_line(d)


def test_bom_and_cr_line_ends_in_a_spec(spec_dir):
    assert errors_of("\ufeff" + BASE, spec_dir) == []
    assert errors_of(BASE.replace("\n", "\r\n"), spec_dir) == []
    (d,) = errors_of(BASE.replace("\n", "\r").replace("batch = 4", "batch = 4 )"), spec_dir)
    assert d.span.line == 5 and "batch = 4 )" in shown_line(d)


def test_nesting_is_reported_where_it_happens(spec_dir):
    deep = "f(" * 500 + ")" * 500
    (d,) = errors_of(BASE + f"\nx = {deep}\n", spec_dir)
    assert d.span.line == 8 and d.span.column > 1
    assert "MAX_NESTING" in d.message


def test_long_number_is_a_parse_error_not_an_internal_error(spec_dir):
    (d,) = errors_of(BASE.replace("epochs = 2", "epochs = " + "9" * 5000), spec_dir)
    assert d.kind == "ParseError" and "MAX_NUMBER_CHARS" in d.message and d.span.line == 4
    assert len(shown_line(d)) < 200  # a window around the caret, not the whole line


@pytest.mark.parametrize(
    "tail, limit",
    [
        ("".join(f"a{i} = lstm(d=4)\n" for i in range(limits.MAX_STATEMENTS + 5)),
         "MAX_STATEMENTS"),
        ("x = lstm(d=4)" + " |> last" * (limits.MAX_PIPELINE_STAGES + 5), "MAX_PIPELINE_STAGES"),
        ("x = lstm(d=4)" + " |> last" * 100_000, "MAX_SPEC_BYTES"),
    ],
)
def test_spec_size_limits(spec_dir, tail, limit):
    diags = errors_of(BASE + tail, spec_dir)
    assert len(diags) == 1 and limit in diags[0].message


def test_spec_file_must_be_regular(tmp_path, capsys):
    fifo = tmp_path / "spec.rnn"
    os.mkfifo(fifo)
    assert main(["check", str(fifo)]) == 2
    assert "FIFO" in capsys.readouterr().err
    assert main(["check", "/dev/zero"]) == 2
    assert "device" in capsys.readouterr().err


# -- data files -------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt, sep", [("tsv", "\t"), ("csv", ",")])
def test_table_with_a_bom(tmp_path, fmt, sep):
    f = write(tmp_path / f"x.{fmt}", f"\ufeffsentence{sep}label\ngood film{sep}1\n".encode())
    (ex,) = readers.read_classification(f, format=fmt)
    assert ex.label == "1"
    spec = f'data s = classification(train="x.{fmt}", format={fmt})\n'
    spec += "m = embed(s.words, d=4) |> lstm(d=4) |> last |> softmax(s.labels)\n"
    assert errors_of(spec, tmp_path) == []


@pytest.mark.parametrize(
    "data, line, words",
    [
        (b"sentence,label\r\"a\",1\r\"b\",0\r", 1, "carriage return"),
        (b"sentence,label\na,1\nb\x00c,0\n", 3, "NUL byte"),
        (b'sentence,label\na,1\nb,0\n"c,1\nd,0\ne,1\nf,0\n', 4, "quote"),
    ],
)
def test_broken_csv_is_a_data_error_at_its_line(tmp_path, data, line, words):
    f = write(tmp_path / "x.csv", data)
    with pytest.raises(DataError, match=rf"x\.csv:{line}: .*{words}"):
        readers.read_classification(f, format="csv")


def test_truncated_gzip(tmp_path):
    f = write(tmp_path / "x.tsv", gzip.compress(b"sentence\tlabel\n" + b"a b\t1\n" * 1000)[:40])
    with pytest.raises(DataError, match="truncated gzip"):
        readers.read_classification(f, format="tsv")


def test_line_and_sentence_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNDSL_MAX_LINE_BYTES", "1000")
    f = write(tmp_path / "x.txt", gzip.compress(b"x" * 100_000))  # one line, no newline
    with pytest.raises(DataError, match=r"x\.txt:1: .*max_line_bytes.*RNNDSL_MAX_LINE_BYTES"):
        readers.read_text(f)
    monkeypatch.setenv("RNNDSL_MAX_SENTENCE_TOKENS", "50")
    f = write(tmp_path / "y.txt", b"1 ok\n1 " + b"w " * 60 + b"\n")
    with pytest.raises(DataError, match=r"y\.txt:2: .*tokens.*RNNDSL_MAX_SENTENCE_TOKENS"):
        readers.read_classification(f)
    f = write(tmp_path / "z.conll", b"".join(b"w%d NN O\n" % i for i in range(60)))
    with pytest.raises(DataError, match=r"z\.conll:1: .*tokens"):
        readers.read_conll(f)


def test_data_files_must_be_regular(tmp_path):
    os.mkfifo(tmp_path / "fifo.txt")
    with pytest.raises(DataError, match="FIFO"):
        readers.read_text(tmp_path / "fifo.txt")
    with pytest.raises(DataError, match="device"):
        readers.read_text("/dev/zero")
    spec = 'data s = text(train="fifo.txt")\n'
    (d,) = errors_of(spec, tmp_path)
    assert "FIFO" in d.message and d.span.line == 1


def test_vector_sizes_checked_before_allocating(tmp_path):
    f = write(tmp_path / "v.bin", b"1000000000 1000000000\nab")
    with pytest.raises(DataError, match="MAX_VECTOR_DIM"):
        load_word2vec_binary(f)
    f = write(tmp_path / "w.bin", b"1000000000 300\nab")
    with pytest.raises(DataError, match="header announces 1,000,000,000 vectors"):
        load_word2vec_binary(f)
    f = write(tmp_path / "g.txt", b"the " + b"0.1 " * 1_000_000 + b"\n")
    with pytest.raises(DataError, match=r"g\.txt:1: .*MAX_VECTOR_DIM"):
        load_vectors(f, format="glove")
    f = write(tmp_path / "h.txt", b"9" * 5000 + b" 3\n")
    with pytest.raises(DataError, match="expected a header"):
        load_vectors(f, format="word2vec")


@pytest.mark.parametrize("codec", ["rot13", "hex", "base64", "zlib_codec", "punycode", "utf-16"])
def test_encodings_are_ascii_compatible_text_codecs(tmp_path, codec):
    write(tmp_path / "t.txt", b"a b\n")
    (d,) = errors_of(f'data s = classification(train="t.txt", encoding="{codec}")\n', tmp_path)
    assert d.kind == "BadValue" and codec in d.message and d.hint


def test_long_path_is_a_bad_value(tmp_path):
    (d,) = errors_of(f'data s = text(train="{"p" * 300}.txt")\n', tmp_path)
    assert d.kind == "BadValue" and "characters long" in d.message


def test_bad_bio_prefix_under_a_crf_names_file_and_line(tmp_path, capsys):
    write(tmp_path / "c.txt", b"a DT B-NP\nb NN X-NP\n\nc DT O\n")
    spec = tmp_path / "c.rnn"
    spec.write_text(
        'data c = conll(train="c.txt", dev="c.txt")\n'
        "m = embed(c.words, d=4) |> bilstm(d=4) |> crf(c.tags)\n"
        "train m on c { epochs = 1 }\n"
    )
    assert main(["check", str(spec)]) == 2  # the data cannot be used: not exit 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'c.txt'}:2: tag 'X-NP' is not a BIO tag" in err


def test_diagnostic_window_keeps_the_caret_under_the_column():
    line = "x" * 500 + "BAD" + "y" * 500
    d = Diagnostic("ParseError", "m", Span(1, 501, 1, 504, "p"), source=line)
    text, caret = d.format().split("\n")[1:3]
    at = caret.index("^")
    assert text[at : at + 3] == "BAD" and caret.count("^") == 3


# -- settings and model size ------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, words",
    [("seed = -5", "seed must be >= 0"), ("epochs = 10000000000", "epochs must be <= ")],
)
def test_integer_settings_have_ranges(spec_dir, setting, words):
    (d,) = errors_of(BASE.replace("epochs = 2", setting), spec_dir)
    assert d.kind == "OutOfRange" and words in d.message and d.span.line == 4


def test_synthetic_size_is_bounded(tmp_path):
    (d,) = errors_of("data s = synthetic(size=1000000000000)\n", tmp_path)
    assert d.kind == "OutOfRange" and "size" in d.message


def test_cli_integer_options_are_checked(spec_dir, capsys):
    (spec_dir / "x.rnn").write_text(BASE)
    with pytest.raises(SystemExit) as e:
        main(["run", str(spec_dir / "x.rnn"), "--seed", "-5"])
    assert e.value.code == 2 and "--seed: must be in [0" in capsys.readouterr().err


def test_model_too_large_for_parameters_is_refused_at_check(spec_dir, capsys):
    text = BASE.replace("bilstm(d=8)", "bilstm(d=100000) |> stack(64)")
    (d,) = errors_of(text, spec_dir)
    assert d.kind == "ModelTooLarge" and "MAX_PARAMETERS" in d.message and d.span.line == 3


def test_model_too_large_for_memory(spec_dir, monkeypatch):
    from rnndsl.lang import resources

    monkeypatch.setattr(resources, "machine_memory", lambda: 1024**2)  # a 1 MiB machine
    (d,) = errors_of(BASE.replace("batch = 4", "batch = 512"), spec_dir)
    assert d.kind == "ModelTooLarge" and "per training step" in d.message


def test_check_prints_the_memory_estimate(spec_dir, capsys):
    (spec_dir / "x.rnn").write_text(BASE)
    assert main(["check", str(spec_dir / "x.rnn")]) == 0
    assert "Estimated memory per training step:" in capsys.readouterr().out


def test_line_readers_and_run_refuse_devices_fifos_and_long_paths(tmp_path, capsys):
    os.mkfifo(tmp_path / "in.fifo")  # predict reads its input through iter_lines too
    for path, words in ((tmp_path / "in.fifo", "FIFO"), ("/dev/zero", "device")):
        with pytest.raises(DataError, match=words):
            list(readers.iter_lines(path))
    (tmp_path / "x.rnn").write_text(BASE)
    shutil.copytree(TINY, tmp_path / "tiny")
    out = tmp_path / ("p" * 300)
    assert main(["run", str(tmp_path / "x.rnn"), "--out", str(out), "--no-progress"]) == 2
    assert "cannot create the run directory" in capsys.readouterr().err


def test_definitions_that_double_at_each_level_are_refused_quickly(spec_dir):
    defs = "a0 = lstm(d=4)\n" + "".join(f"a{i} = a{i - 1} |> a{i - 1}\n" for i in range(1, 40))
    (d,) = errors_of(BASE.replace("bilstm(d=8)", "a39") + defs, spec_dir)
    assert d.kind == "ModelTooLarge" and "MAX_EXPANDED_STAGES" in d.message
    assert d.span.line > 6  # at the definition where the expansion passed the limit
