"""Dataset readers: golden error messages for broken files, and reading small inline data."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.data import (
    Example,
    check_labels,
    load_vectors,
    read_classification,
    read_conll,
    read_conllu,
    read_labelled_files,
    read_text,
)
from rnndsl.errors import DataError

BAD = Path(__file__).parent / "data_bad"

# how each golden broken file is read; the expected message is in <name>.expected
GOLDEN = {
    "conllu_wrong_columns.conllu": read_conllu,
    "conllu_spaces.conllu": read_conllu,
    "conllu_bad_id.conllu": read_conllu,
    "conll_ragged.txt": read_conll,
    "conll_missing_column.txt": lambda p: read_conll(p, tag_column=3),
    "conll_one_column.txt": read_conll,
    "cls_missing_label.txt": read_classification,
    "cls_empty.txt": read_classification,
    "tsv_unknown_column.tsv": lambda p: read_classification(p, format="tsv"),
    "tsv_ragged.tsv": lambda p: read_classification(p, format="tsv"),
    "rt_bad_encoding.pos": lambda p: read_labelled_files([p], ["pos"]),
    "vectors_bad_dim.txt": load_vectors,
    "vectors_not_number.txt": load_vectors,
    "vectors_bad_header.txt": lambda p: load_vectors(p, format="word2vec"),
    "vectors_count_mismatch.txt": load_vectors,
    "vectors_truncated.bin": load_vectors,
}


def test_every_golden_file_has_a_reader_and_an_expected_message():
    broken = {p.name for p in BAD.iterdir() if p.suffix != ".expected"}
    expected = {p.name[: -len(".expected")] for p in BAD.glob("*.expected")}
    assert broken == set(GOLDEN)
    assert expected == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_error_message(name):
    path = BAD / name
    with pytest.raises(DataError) as info:
        GOLDEN[name](str(path))
    got = info.value.format().replace(str(path), name)
    assert got == (BAD / f"{name}.expected").read_text(encoding="utf-8").rstrip("\n")


def write(path: Path, text: str | bytes) -> Path:
    """Write text (UTF-8, newlines kept as given) or bytes; a .gz name is gzip-compressed."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
# CoNLL-U

CONLLU = (
    "# sent_id = a\n"
    "# text = Don't go.\n"
    "1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t3:aux\t_\n"
    "2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t3:advmod\t_\n"
    "3\tgo\tgo\tVERB\tVB\t_\t0\troot\t0:root\tSpaceAfter=No\n"
    "3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_\n"
    "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t3:punct\t_\n"
    "\n"
    "1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t0:root\t_\n"
)


@pytest.mark.parametrize("name", ["ud.conllu", "ud.conllu.gz"])
def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path, name):
    path = write(tmp_path / name, CONLLU)
    a, b = read_conllu(path)
    tags = ("AUX", "PART", "VERB", "PUNCT")
    assert a == Example(("Do", "n't", "go", "."), tags, None, str(path), 1)
    assert b.words == ("Yes",) and b.tags == ("INTJ",) and b.line == 10  # no final blank line


def test_conllu_xpos_and_crlf(tmp_path):
    path = write(tmp_path / "ud.conllu", CONLLU.replace("\n", "\r\n"))
    a, _ = read_conllu(path, tags="xpos")
    assert a.tags == ("VBP", "RB", "VB", ".")
    assert a.words[-1] == "."


def test_conllu_unknown_tags_argument(tmp_path):
    path = write(tmp_path / "ud.conllu", CONLLU)
    with pytest.raises(ValueError, match="tags='UPOS' is not one of 'upos', 'xpos'"):
        read_conllu(path, tags="UPOS")


# ---------------------------------------------------------------------------------------------
# CoNLL columns

CONLL2000 = (
    "-DOCSTART- -X- O\n"
    "\n"
    "Confidence NN B-NP\n"
    "in IN B-PP\n"
    "the DT B-NP\n"
    "\n"
    "\n"
    "Rockwell NNP B-NP\n"
    "said VBD B-VP\n"
)


def test_conll_columns(tmp_path):
    path = write(tmp_path / "train.txt", CONLL2000)
    a, b = read_conll(path)
    assert a.words == ("Confidence", "in", "the") and a.tags == ("B-NP", "B-PP", "B-NP")
    assert (a.line, b.line) == (3, 8)
    pos = read_conll(path, tag_column=1)
    assert pos[1].tags == ("NNP", "VBD")
    words_only = read_conll(path, tag_column=None)
    assert words_only[0].tags is None and words_only[0].words == a.words
    swapped = read_conll(path, word_column=-1, tag_column=0)
    assert swapped[1].words == ("B-NP", "B-VP")


def test_conll_tab_separated_words_with_spaces(tmp_path):
    path = write(tmp_path / "ner.tsv.gz", "New York\tB-LOC\nis\tO\n")
    [ex] = read_conll(path, sep="\t")
    assert ex.words == ("New York", "is") and ex.tags == ("B-LOC", "O")


def test_conll_ragged_rows_in_different_sentences_are_fine(tmp_path):
    path = write(tmp_path / "mixed.txt", "a X\n\nb Y Z\n")
    assert [e.tags for e in read_conll(path)] == [("X",), ("Z",)]


tokens = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=6)
# sep=None splits on any Unicode whitespace (U+0085 and U+00A0 included), so tokens have none
tokens = tokens.filter(lambda t: not any(c.isspace() for c in t))
tokens = tokens.filter(lambda t: not t.startswith("-DOCSTART-"))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.tuples(tokens, tokens), min_size=1, max_size=5), min_size=1, max_size=3)
)
def test_conll_round_trip(tmp_path_factory, sentences):
    path = tmp_path_factory.mktemp("conll") / "x.txt"
    text = "\n".join("".join(f"{w} {t}\n" for w, t in sent) for sent in sentences)
    write(path, text)
    got = read_conll(path)
    assert [list(zip(e.words, e.tags)) for e in got] == sentences


# ---------------------------------------------------------------------------------------------
# classification

SST = (
    "1 a stirring , funny and finally transporting re-imagining of beauty and the beast\n"
    "0 apparently reassembled from the cutting-room floor of any given daytime soap .\n"
    "\n"
    "1\tTab Separated\n"
)


def test_classification_lines(tmp_path):
    path = write(tmp_path / "stsa.binary.dev", SST)
    a, b, c = read_classification(path)
    assert a.label == "1" and a.words[:3] == ("a", "stirring", ",") and a.line == 1
    assert b.label == "0" and b.words[-1] == "." and b.line == 2
    assert c.label == "1" and c.words == ("Tab", "Separated") and c.line == 4
    assert read_classification(path, lowercase=True)[2].words == ("tab", "separated")


def test_classification_tsv_glue(tmp_path):
    text = "sentence\tlabel\nhide new secretions from the parental units \t0\n\ncontains wit \t1\n"
    path = write(tmp_path / "dev.tsv", text)
    a, b = read_classification(path, format="tsv")
    assert a.words == ("hide", "new", "secretions", "from", "the", "parental", "units")
    assert (a.label, a.line, b.label, b.line) == ("0", 2, "1", 4)


def test_classification_csv_quotes_and_line_numbers(tmp_path):
    text = 'id,text,polarity\n7,"good, really",pos\n8,"spans\ntwo lines",neg\n9,plain,neg\n'
    path = write(tmp_path / "x.csv", text)
    got = read_classification(path, format="csv", label_column="polarity", text_column="text")
    assert [(e.words, e.label, e.line) for e in got] == [
        (("good,", "really"), "pos", 2),
        (("spans", "two", "lines"), "neg", 3),
        (("plain",), "neg", 5),
    ]


def test_classification_csv_unterminated_quote(tmp_path):
    path = write(tmp_path / "x.csv", 'sentence,label\n"never closed,1\n')
    with pytest.raises(DataError, match=r"x\.csv:\d+: malformed CSV"):
        read_classification(path, format="csv")


def test_classification_empty_fields(tmp_path):
    path = write(tmp_path / "x.tsv", "sentence\tlabel\nfine\t1\n  \t0\n")
    with pytest.raises(DataError, match=r"x\.tsv:3: empty text in column 'sentence'"):
        read_classification(path, format="tsv")
    path = write(tmp_path / "y.tsv", "sentence\tlabel\nfine\t \n")
    with pytest.raises(DataError, match=r"y\.tsv:2: empty label in column 'label'"):
        read_classification(path, format="tsv")


def test_classification_bad_arguments(tmp_path):
    path = write(tmp_path / "x.txt", SST)
    with pytest.raises(ValueError, match="format='json'"):
        read_classification(path, format="json")
    with pytest.raises(ValueError, match="tokenize"):
        read_classification(path, tokenize="spacy")


# ---------------------------------------------------------------------------------------------
# rt-polarity: Windows-1252, one sentence a line, label = file

RT_POS = b"effective but too-tepid biopic \nit's a \x91gem\x92 \x85 really \x96 good \n"
RT_NEG = b"simplistic , silly and tedious . \n\n"


def test_labelled_files_cp1252(tmp_path):
    pos = write(tmp_path / "rt-polarity.train.pos", RT_POS)
    neg = write(tmp_path / "rt-polarity.train.neg", RT_NEG)
    got = read_labelled_files([pos, neg], ["pos", "neg"], encoding="cp1252")
    assert [(e.label, e.line) for e in got] == [("pos", 1), ("pos", 2), ("neg", 1)]
    assert got[1].words == ("it's", "a", "\u2018gem\u2019", "\u2026", "really", "\u2013", "good")


def test_lines_split_on_newline_only(tmp_path):
    # latin-1 decodes 0x85 to U+0085, which str.splitlines would treat as a line break
    pos = write(tmp_path / "x.pos", RT_POS)
    got = read_labelled_files([pos], ["pos"], encoding="latin-1")
    assert [e.line for e in got] == [1, 2]


def test_labelled_files_arguments(tmp_path):
    pos = write(tmp_path / "x.pos", RT_POS)
    with pytest.raises(ValueError, match="2 paths but 1 labels"):
        read_labelled_files([pos, pos], ["pos"])
    empty = write(tmp_path / "x.neg", b"\n")
    with pytest.raises(DataError, match=r"x\.neg: no examples"):
        read_labelled_files([pos, empty], ["pos", "neg"], encoding="cp1252")


# ---------------------------------------------------------------------------------------------
# language-model text

PTB = (
    " pierre <unk> N years old will join the board as a nonexecutive director nov. N \n"
    " mr. <unk> is chairman of <unk> n.v. the dutch publishing group \n"
)


@pytest.mark.parametrize("name", ["ptb.train.txt", "ptb.train.txt.gz"])
def test_read_text_appends_eos(tmp_path, name):
    path = write(tmp_path / name, PTB)
    a, b = read_text(path)
    assert a.words[:2] == ("pierre", "<unk>") and a.words[-2:] == ("N", "<eos>")
    assert len(a.words) == 16 and len(b.words) == 12 and b.line == 2
    assert read_text(path, eos=None)[0].words[-1] == "N"


def test_read_text_blank_lines(tmp_path):
    path = write(tmp_path / "t.txt", "a b\n\nc")
    assert [e.words for e in read_text(path)] == [("a", "b", "<eos>"), ("<eos>",), ("c", "<eos>")]
    assert [e.line for e in read_text(path, eos=None)] == [1, 3]


# ---------------------------------------------------------------------------------------------
# files: missing, compressed, odd bytes


def test_missing_file_suggests_a_close_name(tmp_path):
    write(tmp_path / "train.txt", CONLL2000)
    with pytest.raises(DataError) as info:
        read_conll(tmp_path / "trian.txt")
    assert info.value.message == f"{tmp_path / 'trian.txt'}: no such file"
    assert info.value.hint == "did you mean 'train.txt'?"


def test_missing_directory_and_directory_path(tmp_path):
    with pytest.raises(DataError, match="does not exist either"):
        read_text(tmp_path / "nope" / "x.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_text(tmp_path)


def test_corrupt_gzip(tmp_path):
    data = gzip.compress(PTB.encode() * 50, mtime=0)
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_text(path)


def test_gzip_detected_without_gz_name(tmp_path):
    path = tmp_path / "packed.txt"
    path.write_bytes(gzip.compress(b"a b\n", mtime=0))
    assert read_text(path)[0].words == ("a", "b", "<eos>")


def test_byte_order_mark_is_dropped(tmp_path):
    path = write(tmp_path / "bom.tsv", "\ufeffsentence\tlabel\nok\t1\n")
    assert read_classification(path, format="tsv")[0].words == ("ok",)


def test_example_checks_tag_count():
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        Example(("a", "b"), ("X",))


# ---------------------------------------------------------------------------------------------
# checks across splits


def test_check_labels_names_first_dev_occurrence(tmp_path):
    train = read_conll(write(tmp_path / "train.txt", "a DT B-NP\nb NN I-NP\n"))
    dev_path = write(tmp_path / "dev.txt", "c NN B-NP\n\nd VB B-VP\ne VB B-VP\n\nf X B-ADJP\n")
    dev = read_conll(dev_path)
    assert check_labels(train, dev) == [
        f"{dev_path}:3: tag 'B-VP' never occurs in the training data (2 times in dev)",
        f"{dev_path}:6: tag 'B-ADJP' never occurs in the training data (once in dev)",
    ]
    cls_train = [Example(("x",), label="pos"), Example(("y",), label="neg")]
    cls_dev = [Example(("z",), label="neutral", source="dev.txt", line=4)]
    assert check_labels(cls_train, cls_dev, what="label") == [
        "dev.txt:4: label 'neutral' never occurs in the training data (once in dev)"
    ]
    assert check_labels(cls_train, cls_train, what="label") == []


def test_limit_spreads_over_a_file_grouped_by_class(tmp_path):
    # rt-polarity style: all positives, then all negatives; a --limit smoke run must see both
    from rnndsl.data.dataset import TaskData

    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("".join(f"good film {i}\n" for i in range(30)))
    neg.write_text("".join(f"bad film {i}\n" for i in range(30)))
    data = TaskData("rt", "labelled_files", {"train": [str(pos), str(neg)],
                                             "labels": ["pos", "neg"]}, limit=6)
    assert [ex.label for ex in data.train] == ["pos"] * 3 + ["neg"] * 3
    assert len({ex.words for ex in data.train}) == 6  # distinct examples, in file order
    assert [ex.words[-1] for ex in data.train] == ["0", "10", "20", "0", "10", "20"]
    full = TaskData("rt", "labelled_files", {"train": [str(pos), str(neg)],
                                             "labels": ["pos", "neg"]}, limit=100)
    assert len(full.train) == 60


def test_limit_keeps_a_language_models_text_contiguous(tmp_path):
    from rnndsl.data.dataset import TaskData

    f = tmp_path / "t.txt"
    f.write_text("".join(f"line {i}\n" for i in range(10)))
    data = TaskData("ptb", "text", {"train": str(f)}, limit=3)
    assert [ex.words[1] for ex in data.train] == ["0", "1", "2"]
