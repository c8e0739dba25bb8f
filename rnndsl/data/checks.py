"""Data checks before training: `rnndsl check --data SPEC`, and at the start of `rnndsl run`.

Each check looks at the examples a data statement reads (train, dev, test) and returns
findings. An error makes training meaningless and stops `run` before the first step (unless
`--ignore-data-errors`); a warning is printed and training goes on; an info line is a
statistic that `check --data` prints. The checks, by kind:

- TagScheme (error): a tag the declared scheme forbids where it stands (an I-LOC at a sentence
  start or after O under scheme=bio), with the first places as file:line, the count, and the
  scheme that would fit all the tags if one does (IOB1 for CoNLL-2003-style data);
- OneClass (error): the training data has a single label (or tag): nothing to learn;
- UnseenLabel (warning): a dev or test label that train never has (it can never be predicted);
- an example without words never gets here: the readers refuse it with its file:line;
- Duplicate (warning): the same example more than once in train; Conflict (warning): the same
  words with different labels in train;
- Overlap (warning): dev or test examples that also occur in train (scores then flatter);
- Imbalance (warning): a classifier's most frequent label is 10 or more times as frequent as its
  rarest one;
- Length (warning): sentences over 250 tokens, or words over 40 characters making 0.1% of the
  words or more (slow; often a tokenisation problem);
- OOV (warning over 30%): the share of dev tokens the training vocabulary lacks;
- Balance, Lengths, OOV (info): label shares, sentence and word lengths, the OOV rate.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import DataError
from .readers import Example, check_labels

LONG_SENTENCE = 250  # tokens
LONG_WORD = 40  # characters
IMBALANCE = 10.0  # most / least frequent label of a classifier
HIGH_OOV = 30.0  # percent of dev tokens
SHOWN = 3  # places named per finding
RARE = 0.001  # long words below this share of the words are an info line, not a warning


@dataclass(frozen=True)
class Finding:
    """One result of a data check; ``where`` is file:line (or "") and leads the message."""

    severity: str  # error | warning | info
    kind: str
    message: str
    where: str = ""
    hint: str | None = None

    def format(self) -> str:
        lead = f"{self.where}: " if self.where else ""
        out = f"{lead}{self.severity}[{self.kind}]: {self.message}"
        return out + (f"\n  hint: {self.hint}" if self.hint else "")


def _n(k: int, noun: str) -> str:
    """'1 example', '3 examples'."""
    return f"{k} {noun}" if k == 1 else f"{k} {noun}s"


def _shown_path(source: str) -> str:
    """A file as the messages show it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(source)
    except ValueError:  # another drive (Windows)
        return source
    return source if rel.startswith("..") else rel


def _place(ex: Example, offset: int = 0) -> str:
    return f"{_shown_path(ex.source)}:{ex.line + offset}"


def _places(places: Sequence[str]) -> str:
    shown = ", ".join(places[:SHOWN])
    return shown + (f" and {len(places) - SHOWN} more" if len(places) > SHOWN else "")


# --- tag schemes ---------------------------------------------------------------------------------
def _split(tag: str) -> tuple[str, str]:
    prefix, hyphen, kind = tag.partition("-")
    return (prefix, kind) if hyphen else (tag, "")


def scheme_violation(prev: str | None, tag: str, scheme: str) -> str | None:
    """Why ``tag`` may not follow ``prev`` (None: the sentence start) under ``scheme``, or None.

    The rules are those of the CRF's constraints (rnndsl/nn/crf.py, allowed_transitions)."""
    prefixes = "BIES" if scheme == "iobes" else "BI"
    p, t = _split(tag)
    if tag != "O" and not (p in prefixes and len(p) == 1 and t):
        want = "O or B-/I-/E-/S-TYPE" if scheme == "iobes" else "O or B-TYPE / I-TYPE"
        return f"{tag!r} is not a {scheme.upper()} tag ({want})"
    pp, pt = _split(prev) if prev is not None else ("O", "")
    after = "at the start of a sentence" if prev is None else f"after {prev}"
    inside = pp in "BI" and prev not in (None, "O") and pt == t
    if scheme == "bio" and p == "I" and not inside:
        return f"{tag} {after} (under scheme=bio a chunk starts with B-)"
    if scheme == "iob1" and p == "B" and not inside:
        return (f"{tag} {after} (under scheme=iob1 B- only starts a chunk right after one of "
                "the same type)")
    if scheme == "iobes":
        if p in "IE" and not inside:
            return f"{tag} {after} (under scheme=iobes I- and E- continue a B- or I- chunk)"
        if prev not in (None, "O") and pp in "BI" and p not in "IE":
            return f"{tag} after {prev} (under scheme=iobes a B-/I- chunk ends with E-)"
    return None


def _sentence_end_violation(last: str, scheme: str) -> str | None:
    if scheme == "iobes" and last != "O" and _split(last)[0] in "BI":
        return f"the sentence ends inside a chunk at {last} (under scheme=iobes it ends with E-)"
    return None


def scheme_violations(examples: Iterable[Example], scheme: str) -> list[tuple[str, str]]:
    """(file:line, why) for each tag the scheme forbids where it stands."""
    out = []
    for ex in examples:
        prev = None
        for i, tag in enumerate(ex.tags or ()):
            why = scheme_violation(prev, tag, scheme)
            if why:
                out.append((_place(ex, i), why))
            prev = tag
        if ex.tags:
            why = _sentence_end_violation(ex.tags[-1], scheme)
            if why:
                out.append((_place(ex, len(ex.tags) - 1), why))
    return out


def _fitting_scheme(splits: Sequence[Sequence[Example]], declared: str) -> str | None:
    for scheme in ("bio", "iob1", "iobes"):
        if scheme != declared and not any(scheme_violations(s, scheme) for s in splits):
            return scheme
    return None


_SCHEME_NOTES = {"iob1": "IOB1: I- starts a chunk and B- only separates two chunks of one type, "
                         "as in CoNLL-2003",
                 "bio": "IOB2: every chunk starts with B-",
                 "iobes": "IOBES: B- I- ... E- chunks and S- singletons"}


def check_scheme(splits: dict[str, list[Example]], scheme: str) -> list[Finding]:
    found = {name: scheme_violations(exs, scheme) for name, exs in splits.items()}
    if not any(found.values()):
        return []
    fits = _fitting_scheme(list(splits.values()), scheme)
    hint = (f"scheme={fits} fits all the tags ({_SCHEME_NOTES[fits]}): set it in the data "
            "statement" if fits else "fix the tags, or set scheme=none to train on plain tags")
    out = []
    for name, v in found.items():
        if v:
            where, why = v[0]
            rest = _places([w for w, _ in v[1:]])
            more = f"; {_n(len(v), 'such tag')} in {name}" + (f" (also at {rest})" if rest else "")
            out.append(Finding("error", "TagScheme", why + more, where, hint))
    return out


# --- labels --------------------------------------------------------------------------------------
def labels_of(ex: Example) -> list[str]:
    if ex.tags is not None:
        return list(ex.tags)
    return [] if ex.label is None else [ex.label]


def check_one_class(train: list[Example], kind: str) -> list[Finding]:
    labels = Counter(lab for ex in train for lab in labels_of(ex))
    if len(labels) == 1:
        (lab,) = labels
        noun = "tag" if kind == "tagging" else "label"
        return [Finding("error", "OneClass",
                        f"every training example has the {noun} {lab!r}: there is nothing to "
                        "learn", _shown_path(train[0].source),
                        "check the label/tag column, or the file list of labelled_files")]
    return []


def check_unseen(train: list[Example], others: dict[str, list[Example]], kind: str
                 ) -> list[Finding]:
    what = "tags" if kind == "tagging" else "label"
    out = []
    for name, exs in others.items():
        for w in check_labels(train, exs, what, name):
            where, _, msg = w.partition(": ")
            path, _, line = where.rpartition(":")
            out.append(Finding("warning", "UnseenLabel", msg, f"{_shown_path(path)}:{line}",
                               "the model can never predict it; is the file from the same "
                               "data set and tag set?"))
    return out


def check_balance(train: list[Example], kind: str) -> list[Finding]:
    labels = Counter(lab for ex in train for lab in labels_of(ex))
    total = sum(labels.values())
    if not total:
        return []
    top = labels.most_common()
    noun = "tags" if kind == "tagging" else "labels"
    share = ", ".join(f"{lab} {100 * n / total:.1f}%" for lab, n in top[:8])
    more = f" and {len(top) - 8} more" if len(top) > 8 else ""
    out = [Finding("info", "Balance", f"{noun} in train: {share}{more}")]
    if kind == "classification" and len(top) > 1 and top[0][1] >= IMBALANCE * top[-1][1]:
        out.append(Finding(
            "warning", "Imbalance",
            f"label {top[0][0]!r} has {top[0][1]} training examples but {top[-1][0]!r} only "
            f"{top[-1][1]} ({top[0][1] / top[-1][1]:.0f}x)", _shown_path(train[0].source),
            "accuracy then says little: look at macro_f1 and the per-class scores"))
    return out


# --- examples ------------------------------------------------------------------------------------
def _key(ex: Example) -> tuple:
    return tuple(ex.words)


def check_duplicates(train: list[Example]) -> list[Finding]:
    first: dict[tuple, Example] = {}
    dups: list[tuple[Example, Example]] = []
    conflicts: list[tuple[Example, Example]] = []
    for ex in train:
        if not ex.words:
            continue
        seen = first.get(_key(ex))
        if seen is None:
            first[_key(ex)] = ex
        elif labels_of(seen) == labels_of(ex):
            dups.append((seen, ex))
        else:
            conflicts.append((seen, ex))
    out = []
    if dups:
        a, b = dups[0]
        out.append(Finding("warning", "Duplicate",
                           f"{_n(len(dups), 'training example')} "
                           f"{'repeats' if len(dups) == 1 else 'repeat'} an earlier one exactly "
                           f"(this one repeats {_place(a)})", _place(b),
                           "repeats weigh those examples more; remove them if that is not meant"))
    if conflicts:
        a, b = conflicts[0]
        out.append(Finding("warning", "Conflict",
                           f"{_n(len(conflicts), 'training example')} with the words of an "
                           f"earlier one but other labels (this one: {_place(a)})", _place(b),
                           "the labels contradict each other; check the annotation"))
    return out


def check_overlap(train: list[Example], others: dict[str, list[Example]]) -> list[Finding]:
    in_train = {}
    for ex in train:
        if ex.words:
            in_train.setdefault(_key(ex), ex)
    out = []
    for name, exs in others.items():
        shared = [(ex, in_train[_key(ex)]) for ex in exs if ex.words and _key(ex) in in_train]
        if shared:
            ex, tr = shared[0]
            out.append(Finding(
                "warning", "Overlap",
                f"{len(shared)} of {len(exs)} {name} examples ({100 * len(shared) / len(exs):.1f}%)"
                f" also occur in train (this one is {_place(tr)})", _place(ex),
                f"{name} scores on examples seen in training flatter the model"))
    return out


def check_lengths(splits: dict[str, list[Example]], kind: str) -> list[Finding]:
    out = []
    for name, exs in splits.items():
        lens = sorted(len(ex.words) for ex in exs)
        if not lens:
            continue
        words = [len(w) for ex in exs for w in ex.words]
        out.append(Finding("info", "Lengths",
                           f"{name}: {_n(len(exs), 'example')}, {_n(sum(lens), 'token')}; "
                           f"tokens per example min {lens[0]}, median {lens[len(lens) // 2]}, "
                           f"max {lens[-1]}"
                           + (f"; characters per word max {max(words)}" if words else "")))
        if kind == "lm":
            continue
        long_s = [_place(ex) for ex in exs if len(ex.words) > LONG_SENTENCE]
        if long_s:
            out.append(Finding("warning", "Length",
                               f"{_n(len(long_s), name + ' example')} with more than "
                               f"{LONG_SENTENCE} tokens" + (f" (also at {_places(long_s[1:])})"
                                           if len(long_s) > 1 else ""), long_s[0],
                               "long sequences are slow to unroll and often two sentences "
                               "run together (a missing blank line)"))
        long_w = [(_place(ex), w) for ex in exs for w in ex.words if len(w) > LONG_WORD]
        if long_w and len(long_w) < RARE * len(words):  # a few URLs: worth a line, no more
            out.append(Finding("info", "Lengths", f"{name}: {_n(len(long_w), 'word')} over "
                               f"{LONG_WORD} characters, e.g. {long_w[0][1][:60]!r} at "
                               f"{long_w[0][0]}"))
        elif long_w:
            where, w = long_w[0]
            out.append(Finding("warning", "Length",
                               f"{_n(len(long_w), name + ' word')} with more than "
                               f"{LONG_WORD} characters, e.g. {w[:60]!r}", where,
                               "a URL or text without spaces; the character encoder pays for "
                               "every character"))
    return out


def check_oov(known: Callable[[str], bool], dev: list[Example]) -> list[Finding]:
    """``known``: whether the training vocabulary has a word (as the model will look it up)."""
    if not dev:
        return []
    tokens = [w for ex in dev for w in ex.words]
    if not tokens:
        return []
    unseen = [w for w in tokens if not known(w)]
    types = set(tokens)
    rate = 100 * len(unseen) / len(tokens)
    msg = (f"dev: {rate:.1f}% of the tokens ({100 * len(set(unseen)) / len(types):.1f}% of the "
           "word types) are not in the training vocabulary")
    if rate > HIGH_OOV:
        return [Finding("warning", "OOV", msg, _shown_path(dev[0].source),
                        "is dev from the same domain? are lowercase and encoding the same as "
                        "for train?")]
    return [Finding("info", "OOV", msg)]


# --- all of them ---------------------------------------------------------------------------------
def check_data(data: object) -> list[Finding]:
    """Every check over a TaskData's splits: errors first, then warnings, then info lines."""
    train = list(data.train)
    splits = {"train": train, "dev": list(data.dev), "test": list(getattr(data, "test", []))}
    splits = {k: v for k, v in splits.items() if v}
    others = {k: v for k, v in splits.items() if k != "train"}
    kind = data.kind
    out: list[Finding] = []
    if kind == "tagging" and data.scheme != "none":
        out += check_scheme(splits, data.scheme)
    if kind != "lm":
        out += check_one_class(train, kind)
        out += check_unseen(train, others, kind)
        out += check_duplicates(train)
        out += check_overlap(train, others)
        out += check_balance(train, kind)
    out += check_lengths(splits, kind)
    words = data.vocabs.get("words")
    if words is not None and kind != "lm":
        out += check_oov(lambda w: w in words, list(data.dev))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda f: order[f.severity])


def enforce(findings: Sequence[Finding], log: Callable[[str], None], ignore: bool = False,
            shown: Iterable[str] = ()) -> None:
    """At the start of `run`: print the warnings and errors all at once; stop on an error
    unless ``ignore``. ``shown`` are messages already printed (not repeated)."""
    shown = set(shown)
    errors = [f for f in findings if f.severity == "error"]
    for f in findings:
        if f.severity == "info" or any(w.endswith(f": {f.message}") for w in shown):
            continue
        log(f.format())
    if errors and not ignore:
        n = len(errors)
        raise DataError(f"{n} data error{'s' if n != 1 else ''} (above) make training "
                        "meaningless; nothing was trained",
                        hint="fix the data or the data statement; --ignore-data-errors trains "
                             "anyway")


def check_data_command(spec: object, out: Callable[[str], None]) -> int:
    """`rnndsl check --data SPEC`: every data statement's findings; exit code 2 on an error."""
    from .dataset import TaskData

    n_err = n_warn = 0
    for name, decl in spec.data.items():
        data = TaskData(name, decl.reader, decl.args)
        findings = check_data(data)
        out(f"data {name} ({decl.reader}):")
        for f in findings:
            out(("  " + f.format()).replace("\n", "\n  "))
        n_err += sum(f.severity == "error" for f in findings)
        n_warn += sum(f.severity == "warning" for f in findings)
    out(f"{n_err} data error{'s' if n_err != 1 else ''}, {n_warn} warning"
        f"{'s' if n_warn != 1 else ''}")
    return 2 if n_err else 0


__all__ = ["Finding", "check_data", "check_data_command", "enforce", "scheme_violation",
           "scheme_violations"]
