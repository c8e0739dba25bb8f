"""The linear-chain CRF: partition, Viterbi, k-best and marginals against brute-force enumeration,
gradients against finite differences and a tape of primitive ops, constrained decoding, PyTorch.

Arrays live on the backend that $RNNDSL_BACKEND names (NumPy by default); the enumeration runs on
the host in float64.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnndsl.autodiff import Tensor, apply, check_grads
from rnndsl.autodiff.backend import get_backend, host, to_host
from rnndsl.errors import DataError, ShapeError
from rnndsl.nn import crf as C

np = host
xp = get_backend().xp


# --- helpers --------------------------------------------------------------------------------------
def enumerate_taggings(
    em: Any, trans: Any, start: Any, end: Any, allowed: tuple[Any, Any, Any] | None = None
) -> tuple[Any, Any]:
    """Every tagging of one sequence em (n, K) and its score(x, s), by brute force (host)."""
    n, k = em.shape
    paths = np.array(list(itertools.product(range(k), repeat=n)), dtype=np.int64)
    scores = start[paths[:, 0]] + end[paths[:, -1]] + em[np.arange(n), paths].sum(axis=1)
    if n > 1:
        scores = scores + trans[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    if allowed is not None:
        al, al_s, al_e = allowed
        ok = al_s[paths[:, 0]] & al_e[paths[:, -1]]
        if n > 1:
            ok &= al[paths[:, :-1], paths[:, 1:]].all(axis=1)
        paths, scores = paths[ok], scores[ok]
    return paths, scores


def logsumexp(a: Any) -> float:
    m = a.max()
    return float(m + np.log(np.exp(a - m).sum()))


def random_problem(
    rng: Any, lengths: list[int], k: int, t: int | None = None, garbage: float = 1e6
) -> dict[str, Any]:
    """Host float64 arrays for a batch; padded emissions hold huge garbage, padded tags -1."""
    lengths_a = np.array(lengths)
    t = max(lengths) if t is None else t
    mask = np.arange(t)[None, :] < lengths_a[:, None]
    em = rng.standard_normal((len(lengths), t, k))
    em[~mask] = garbage * rng.standard_normal((int((~mask).sum()), k))
    tags = np.where(mask, rng.integers(0, k, mask.shape), -1)
    return {
        "em": em,
        "trans": rng.standard_normal((k, k)),
        "start": rng.standard_normal(k),
        "end": rng.standard_normal(k),
        "tags": tags,
        "mask": mask,
    }


def dev(*arrays: Any) -> tuple[Any, ...]:
    return tuple(xp.asarray(a) for a in arrays)


def nll_grads(fn: Any, p: dict[str, Any], **kw: Any) -> tuple[Any, list[Any]]:
    """NLL values and the gradients of sum(u * NLL), u = linspace(0.5, 1.5), as host arrays."""
    ts = [Tensor(a, requires_grad=True) for a in dev(p["em"], p["trans"], p["start"], p["end"])]
    out = fn(*ts, *dev(p["tags"], p["mask"]), **kw)
    out.backward(xp.asarray(cotangent(out.shape[0])))
    return to_host(out.data), [to_host(t.grad) for t in ts]


def cotangent(n: int) -> Any:
    return np.linspace(0.5, 1.5, n) if n > 1 else np.ones(1)


def op_nll(*args: Any, **kw: Any) -> Tensor:
    return apply("crf_nll", *args, **kw)


# --- brute force ----------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_single_sequence_against_enumeration(n: int, k: int) -> None:
    rng = np.random.default_rng(100 * n + k)
    p = random_problem(rng, [n], k)
    em, tr, s, e = p["em"][0], p["trans"], p["start"], p["end"]
    paths, scores = enumerate_taggings(em, tr, s, e)
    log_z = logsumexp(scores)
    args = dev(p["em"], tr, s, e)

    assert to_host(C.log_partition(*args))[0] == pytest.approx(log_z, abs=1e-10)
    gold = rng.integers(0, k, n)
    gold_score = scores[np.flatnonzero((paths == gold).all(axis=1))[0]]
    nll = op_nll(*args, xp.asarray(gold[None]), None).data
    assert to_host(nll)[0] == pytest.approx(log_z - gold_score, abs=1e-10)

    best, best_score = C.viterbi(*args)
    assert best == [paths[scores.argmax()].tolist()]
    assert best_score[0] == pytest.approx(scores.max(), abs=1e-10)

    order = np.argsort(-scores)[:3]
    got = C.nbest(*args, k=3)[0]
    assert [g[0] for g in got] == [paths[i].tolist() for i in order]
    assert np.allclose([g[1] for g in got], scores[order], atol=1e-10)

    prob = np.exp(scores - log_z)
    expect = np.zeros((n, k))
    for i in range(n):
        np.add.at(expect[i], paths[:, i], prob)
    assert np.allclose(to_host(C.marginals(*args))[0], expect, atol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_padded_batch_against_enumeration(k: int) -> None:
    """A batch mixing lengths 5, 1, 3, 0, 4, 2 with garbage padding equals each row alone."""
    lengths = [5, 1, 3, 0, 4, 2]
    rng = np.random.default_rng(k)
    p = random_problem(rng, lengths, k, t=6)
    args = dev(p["em"], p["trans"], p["start"], p["end"])
    mask = xp.asarray(p["mask"])
    log_z = to_host(C.log_partition(*args, mask))
    paths_b, scores_b = C.viterbi(*args, mask)
    top_b = C.nbest(*args, mask, k=3)
    marg = to_host(C.marginals(*args, mask))
    nll = to_host(op_nll(*args, xp.asarray(p["tags"]), mask).data)
    assert np.isfinite(marg).all() and np.isfinite(nll).all()
    for b, n in enumerate(lengths):
        if n == 0:
            assert log_z[b] == 0 and nll[b] == 0 and scores_b[b] == 0
            assert paths_b[b] == [] and top_b[b] == [([], 0.0)]
            assert (marg[b] == 0).all()
            continue
        paths, scores = enumerate_taggings(p["em"][b, :n], p["trans"], p["start"], p["end"])
        assert log_z[b] == pytest.approx(logsumexp(scores), abs=1e-10)
        gold = p["tags"][b, :n]
        gold_score = scores[np.flatnonzero((paths == gold).all(axis=1))[0]]
        assert nll[b] == pytest.approx(logsumexp(scores) - gold_score, abs=1e-10)
        assert paths_b[b] == paths[scores.argmax()].tolist()
        assert scores_b[b] == pytest.approx(scores.max(), abs=1e-10)
        order = np.argsort(-scores)[:3]
        assert [g[0] for g in top_b[b]] == [paths[i].tolist() for i in order]
        assert (marg[b, n:] == 0).all()
        assert np.allclose(marg[b, :n].sum(axis=1), 1, atol=1e-12)


def test_nbest_returns_fewer_when_fewer_taggings_exist() -> None:
    p = random_problem(np.random.default_rng(0), [1, 2], 2)
    got = C.nbest(*dev(p["em"], p["trans"], p["start"], p["end"], p["mask"]), k=5)
    assert [len(g) for g in got] == [2, 4]
    assert all(a[1] >= b[1] for g in got for a, b in zip(g, g[1:]))


def test_padding_invariance_of_values_and_gradients() -> None:
    """A padded batch gives each sequence the NLL and gradients it gets when run alone."""
    lengths = [5, 2, 4]
    p = random_problem(np.random.default_rng(7), lengths, 4, t=7)
    out, grads = nll_grads(op_nll, p)
    u = cotangent(len(lengths))
    sum_g = [np.zeros_like(g) for g in grads[1:]]
    for b, n in enumerate(lengths):
        alone = dict(
            p,
            em=p["em"][b : b + 1, :n],
            tags=p["tags"][b : b + 1, :n],
            mask=p["mask"][b : b + 1, :n],
        )
        o, g = nll_grads(op_nll, alone)
        assert o[0] == pytest.approx(out[b], abs=1e-12)
        assert np.allclose(grads[0][b, :n], u[b] * g[0][0], atol=1e-12)
        assert (grads[0][b, n:] == 0).all()
        for acc, gi in zip(sum_g, g[1:]):
            acc += u[b] * gi
    for gi, acc in zip(grads[1:], sum_g):
        assert np.allclose(gi, acc, atol=1e-12)


# --- gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("exact", [False, True])
def test_gradcheck_nll_with_masks(exact: bool) -> None:
    p = random_problem(np.random.default_rng(3), [4, 2, 1, 0], 3, garbage=1e3)
    small = [0.5 * p[n] for n in ("em", "trans", "start", "end")]
    res = check_grads(
        lambda *a: op_nll(*a, exact=exact), *dev(*small, p["tags"], p["mask"]), tol=1e-6, eps=1e-5
    )
    assert res.ok, str(res)


def test_gradcheck_row() -> None:
    from gradcheck_rows.crf import ROWS  # tests/ is on sys.path under pytest

    f, args = ROWS["crf_nll"]()
    res = check_grads(f, *args)
    assert res.ok, str(res)


@pytest.mark.parametrize("exact", [False, True])
def test_op_equals_tape_reference(exact: bool) -> None:
    p = random_problem(np.random.default_rng(11), [6, 3, 1, 0, 5], 5, t=7)
    ref_out, ref_g = nll_grads(C.crf_nll_reference, p)
    out, g = nll_grads(op_nll, p, exact=exact)
    assert np.allclose(out, ref_out, rtol=0, atol=1e-10)
    for a, b in zip(g, ref_g):
        assert np.allclose(a, b, rtol=0, atol=1e-10)


def test_large_score_ranges_fall_back_to_log_space() -> None:
    """Scores spanning thousands of nats underflow the scaled kernel; the op must notice."""
    p = random_problem(np.random.default_rng(5), [6, 4, 2], 4, t=6)
    p["em"] = 800.0 * p["em"]
    p["trans"] = 300.0 * p["trans"]
    lens = C.batch_lengths(xp, p["em"].shape, xp.asarray(p["mask"]))
    em = C._time_major(xp, xp.asarray(p["em"]), lens, "float64")
    assert not C._Scaled(xp, em, *dev(p["trans"], p["start"], p["end"]), lens).ok
    ref_out, ref_g = nll_grads(C.crf_nll_reference, p)
    out, g = nll_grads(op_nll, p)
    assert np.allclose(out, ref_out, rtol=1e-12, atol=1e-9)
    for a, b in zip(g, ref_g):
        assert np.allclose(a, b, atol=1e-9)


def test_wide_float32_gaps_use_float64_exponentials() -> None:
    """Emission gaps past ~69 nats would flush float32 exp: the kernel redoes phi in float64."""
    p = random_problem(np.random.default_rng(12), [7, 3, 5], 5, t=8, garbage=1e30)
    p["em"] = (40.0 * p["em"]).astype(np.float32)
    lens = C.batch_lengths(xp, p["em"].shape, xp.asarray(p["mask"]))
    em = C._time_major(xp, xp.asarray(p["em"]), lens)
    params = dev(p["trans"], p["start"], p["end"])
    assert not C._Scaled(xp, em, *params, lens, fast_exp=True).ok
    assert C._Scaled(xp, em, *params, lens, fast_exp=False).ok
    out32 = op_nll(
        *dev(
            p["em"],
            p["trans"].astype(np.float32),
            p["start"].astype(np.float32),
            p["end"].astype(np.float32),
            p["tags"],
            p["mask"],
        )
    )
    p64 = dict(
        p,
        em=p["em"].astype(np.float64),
        trans=p["trans"].astype(np.float32) * 1.0,
        start=p["start"].astype(np.float32) * 1.0,
        end=p["end"].astype(np.float32) * 1.0,
    )
    ref, _ = nll_grads(C.crf_nll_reference, p64)
    assert np.allclose(to_host(out32.data), ref, rtol=1e-6)


def test_ordinary_scores_take_the_scaled_path() -> None:
    p = random_problem(np.random.default_rng(6), [25] * 4, 17)
    p["em"] *= 10
    lens = C.batch_lengths(xp, p["em"].shape, None)
    em = C._time_major(xp, xp.asarray(p["em"]), lens, "float64")
    assert C._Scaled(xp, em, *dev(p["trans"], p["start"], p["end"]), lens).ok


def test_float32_matches_float64() -> None:
    p = random_problem(np.random.default_rng(8), [9, 4, 6], 6)
    out64, g64 = nll_grads(op_nll, p)
    p32 = {n: (a.astype(np.float32) if a.dtype.kind == "f" else a) for n, a in p.items()}
    out32, g32 = nll_grads(op_nll, p32)
    assert out32.dtype == np.float32 and all(g.dtype == np.float32 for g in g32)
    assert np.allclose(out32, out64, rtol=1e-5)
    for a, b in zip(g32, g64):
        assert np.allclose(a, b, atol=1e-5)


def test_all_empty_batch() -> None:
    k = 3
    em = Tensor(xp.zeros((2, 0, k)), requires_grad=True)
    nll = op_nll(
        em, *dev(np.zeros((k, k)), np.zeros(k), np.zeros(k)), xp.zeros((2, 0), dtype=xp.int64), None
    )
    assert to_host(nll.data).tolist() == [0.0, 0.0]
    nll.sum().backward()
    assert em.grad.shape == (2, 0, k)
    assert C.viterbi(em, *dev(np.zeros((k, k)), np.zeros(k), np.zeros(k)))[0] == [[], []]


def test_bad_inputs_raise() -> None:
    p = random_problem(np.random.default_rng(0), [3, 2], 3)
    args = dev(p["em"], p["trans"], p["start"], p["end"])
    holes = np.array([[True, False, True], [True, True, False]])
    with pytest.raises(ShapeError, match="prefix mask"):
        op_nll(*args, xp.asarray(p["tags"]), xp.asarray(holes))
    bad_tags = np.where(p["mask"], 3, 0)
    with pytest.raises(DataError, match="tags must lie"):
        op_nll(*args, xp.asarray(bad_tags), xp.asarray(p["mask"]))
    with pytest.raises(ShapeError, match="trans"):
        C.viterbi(args[0], args[1][:2], *args[2:])


# --- tag schemes ----------------------------------------------------------------------------------
def table(names: list[str], scheme: str) -> dict[tuple[str, str], bool]:
    al, s, e = C.allowed_transitions(names, scheme)
    out = {(a, b): bool(al[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)}
    out.update({("<s>", b): bool(s[j]) for j, b in enumerate(names)})
    out.update({(a, "</s>"): bool(e[i]) for i, a in enumerate(names)})
    return out


def test_bio_rules() -> None:
    t = table(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "bio")
    assert t["B-PER", "I-PER"] and t["I-PER", "I-PER"] and t["O", "B-LOC"]
    assert not t["O", "I-PER"] and not t["B-LOC", "I-PER"] and not t["I-LOC", "I-PER"]
    assert not t["<s>", "I-PER"] and t["<s>", "B-PER"] and t["<s>", "O"]
    assert t["I-PER", "B-PER"] and t["I-PER", "</s>"] and t["B-LOC", "</s>"]


def test_iob1_rules() -> None:
    t = table(["O", "I-PER", "B-PER", "I-LOC", "B-LOC"], "iob1")
    assert t["O", "I-PER"] and t["I-LOC", "I-PER"] and t["<s>", "I-PER"]
    assert t["I-PER", "B-PER"] and t["B-PER", "B-PER"] and t["B-PER", "I-PER"]
    assert not t["O", "B-PER"] and not t["<s>", "B-PER"] and not t["I-LOC", "B-PER"]
    assert t["B-PER", "</s>"] and t["B-LOC", "O"]


def test_iobes_rules() -> None:
    names = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    t = table(names, "iobes")
    for a in ("B-PER", "I-PER"):
        assert {b for b in names if t[a, b]} == {"I-PER", "E-PER"}
        assert not t[a, "</s>"]
    for a in ("O", "E-PER", "S-LOC"):
        assert {b for b in names if t[a, b]} == {"O", "B-PER", "S-PER", "B-LOC", "S-LOC"}
        assert t[a, "</s>"]
    assert {b for b in names if t["<s>", b]} == {"O", "B-PER", "S-PER", "B-LOC", "S-LOC"}


def test_scheme_errors() -> None:
    for bad in ("E-PER", "BI-PER", "-PER", "B-", "B_PER"):
        with pytest.raises(DataError, match="not a BIO tag"):
            C.allowed_transitions(["O", bad], "bio")
    with pytest.raises(DataError, match="unknown tag scheme"):
        C.allowed_transitions(["O"], "bilo")
    with pytest.raises(DataError, match="repeat"):
        C.allowed_transitions(["O", "O"], "bio")
    with pytest.raises(DataError, match="allows no tagging"):
        C.allowed_transitions(["I-PER"], "bio")
    al, s, e = C.allowed_transitions(["O", "B-A-B", "I-A-B"], "bioes")  # alias; type "A-B"
    assert al.shape == (3, 3) and al[1, 2]
    assert C.allowed_transitions(["x", "y"], "none")[0].all()


def scheme_tags(types: list[str], scheme: str) -> list[str]:
    prefixes = {"bio": "BI", "iob1": "IB", "iobes": "BIES"}[scheme]
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


def is_allowed(path: list[int], allowed: tuple[Any, Any, Any]) -> bool:
    al, s, e = allowed
    if not path:
        return True
    return bool(s[path[0]] and e[path[-1]] and all(al[a, b] for a, b in zip(path, path[1:])))


@settings(max_examples=40, deadline=None)
@given(
    scheme=st.sampled_from(["bio", "iob1", "iobes"]),
    n_types=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1.0, 10.0, 1000.0]),
)
def test_constrained_decoding_never_takes_a_forbidden_step(
    scheme: str, n_types: int, seed: int, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    names = scheme_tags(["PER", "LOC", "ORG"][:n_types], scheme)
    names = [names[i] for i in rng.permutation(len(names))]
    allowed = C.allowed_transitions(names, scheme)
    crf = C.CRF(names, scheme, rng=rng, dtype="float32")
    crf.trans.data = xp.asarray(scale * rng.standard_normal(crf.trans.shape), dtype="float32")
    lengths = rng.integers(0, 9, size=5)
    mask = np.arange(8)[None, :] < lengths[:, None]
    em = xp.asarray(scale * rng.standard_normal((5, 8, len(names))), dtype="float32")
    paths = crf.decode(em, xp.asarray(mask))
    assert [len(pth) for pth in paths] == lengths.tolist()
    assert all(is_allowed(pth, allowed) for pth in paths)
    for top in crf.nbest(em, xp.asarray(mask), k=3):
        assert top and all(is_allowed(pth, allowed) for pth, _ in top)


def test_constrained_nll_is_the_nll_over_allowed_taggings() -> None:
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed = C.allowed_transitions(names, "bio")
    rng = np.random.default_rng(4)
    crf = C.CRF(names, "bio", rng=rng, dtype="float64")
    em = rng.standard_normal((1, 4, 5))
    gold = np.array([[1, 2, 0, 3]])
    nll = crf.nll(Tensor(xp.asarray(em)), xp.asarray(gold), reduction="none")
    tr, s, e = (to_host(crf.parameters()[n].data) for n in ("trans", "start", "end"))
    paths, scores = enumerate_taggings(em[0], tr, s, e, allowed)
    gold_score = scores[np.flatnonzero((paths == gold[0]).all(axis=1))[0]]
    assert to_host(nll.data)[0] == pytest.approx(logsumexp(scores) - gold_score, abs=1e-10)
    nll.sum().backward()
    al, al_s, al_e = allowed
    assert (to_host(crf.trans.grad)[~al] == 0).all()
    assert (to_host(crf.start.grad)[~al_s] == 0).all()
    assert (to_host(crf.end.grad)[~al_e] == 0).all()
    marg = to_host(crf.marginals(em))[0]
    assert marg[0, names.index("I-PER")] == 0 and np.allclose(marg.sum(axis=1), 1)


def test_constraints_can_be_turned_off_and_violations_counted() -> None:
    names = ["O", "B-PER", "I-PER"]
    crf = C.CRF(names, "bio", dtype="float64")
    em = np.zeros((1, 3, 3))
    em[0, :, 2] = 5.0  # I-PER everywhere: forbidden at the start
    assert crf.decode(em) == [[1, 2, 2]]
    crf.constrain = False
    assert crf.decode(em) == [[2, 2, 2]]
    crf.constrain = True
    tags = np.array([[2, 2, 0], [0, 1, 2], [2, 0, 2]])
    mask = np.array([[True] * 3, [True] * 3, [True, True, False]])
    assert crf.violations(tags, mask).tolist() == [1, 0, 1]
    nll = to_host(crf.nll(np.zeros((3, 3, 3)), tags, mask, reduction="none").data)
    assert nll[0] > 9000 and nll[1] < 10 and nll[2] > 9000


# --- the head -------------------------------------------------------------------------------------
def test_crf_head_api() -> None:
    k = 4
    zero = C.CRF(k, dtype="float32")
    assert set(zero.parameters()) == {"trans", "start", "end"}
    assert all(float(abs(to_host(p.data)).max()) == 0 for p in zero.parameters().values())
    crf = C.CRF(k, rng=np.random.default_rng(0), dtype="float32")
    for p in crf.parameters().values():
        v = to_host(p.data)
        assert p.requires_grad and v.dtype == np.float32 and 0 < abs(v).max() <= 0.1
    rng = np.random.default_rng(1)
    em = Tensor(xp.asarray(rng.standard_normal((3, 5, k)), dtype="float32"), requires_grad=True)
    tags = xp.asarray(rng.integers(0, k, (3, 5)))
    mask = xp.asarray(np.arange(5)[None, :] < np.array([5, 3, 1])[:, None])
    per = crf.nll(em, tags, mask, reduction="none")
    assert per.shape == (3,)
    total = to_host(per.data).sum()
    assert to_host(crf.nll(em, tags, mask, reduction="sum").data) == pytest.approx(total, rel=1e-6)
    mean = crf.nll(em, tags, mask)
    assert to_host(mean.data) == pytest.approx(total / 3, rel=1e-6)
    mean.backward()
    assert em.grad.shape == (3, 5, k) and crf.trans.grad.shape == (k, k)
    assert [len(p) for p in crf.decode(em, mask)] == [5, 3, 1]
    assert [len(t) for t in crf.nbest(em, mask, k=2)] == [2, 2, 2]
    assert crf.marginals(em, mask).shape == (3, 5, k)
    with pytest.raises(ValueError, match="reduction"):
        crf.nll(em, tags, mask, reduction="token")
    with pytest.raises(ShapeError):
        crf.nll(Tensor(xp.zeros((3, 5, k + 1))), tags, mask)


# --- PyTorch --------------------------------------------------------------------------------------
def torch_log_likelihood(
    torch: Any, em: Any, tr: Any, s: Any, e: Any, tags: Any, lengths: Any
) -> Any:
    """A small hand-written forward algorithm in torch (batch-first, per-sequence lengths)."""
    out = []
    for b, n in enumerate(lengths.tolist()):
        x, y = em[b, :n], tags[b, :n]
        alpha = s + x[0]
        for i in range(1, n):
            alpha = torch.logsumexp(alpha[:, None] + tr, dim=0) + x[i]
        log_z = torch.logsumexp(alpha + e, dim=0)
        gold = s[y[0]] + e[y[-1]] + x[torch.arange(n), y].sum() + tr[y[:-1], y[1:]].sum()
        out.append(gold - log_z)
    return torch.stack(out)


def test_against_torch_forward_algorithm() -> None:
    torch = pytest.importorskip("torch")
    lengths = np.array([6, 2, 5, 1])
    p = random_problem(np.random.default_rng(9), lengths.tolist(), 5)
    t = {n: torch.tensor(p[n]) for n in ("em", "trans", "start", "end")}
    tags = torch.tensor(np.where(p["mask"], p["tags"], 0))
    llh = torch_log_likelihood(torch, t["em"], t["trans"], t["start"], t["end"], tags, lengths)
    ours = op_nll(*dev(p["em"], p["trans"], p["start"], p["end"], p["tags"], p["mask"]))
    assert np.allclose(-to_host(ours.data), llh.numpy(), atol=1e-10)


def test_against_pytorch_crf() -> None:
    torch = pytest.importorskip("torch")
    torchcrf = pytest.importorskip("torchcrf")
    k, lengths = 6, np.array([7, 3, 5, 1])
    p = random_problem(np.random.default_rng(10), lengths.tolist(), k)
    ref = torchcrf.CRF(k, batch_first=True).double()
    with torch.no_grad():
        ref.transitions.copy_(torch.tensor(p["trans"]))
        ref.start_transitions.copy_(torch.tensor(p["start"]))
        ref.end_transitions.copy_(torch.tensor(p["end"]))
    em_t = torch.tensor(p["em"], requires_grad=True)
    tags_t = torch.tensor(np.where(p["mask"], p["tags"], 0))
    mask_t = torch.tensor(p["mask"])
    llh = ref(em_t, tags_t, mask_t, reduction="sum")
    (-llh).backward()
    crf = C.CRF(k, dtype="float64")
    for n, a in zip(("trans", "start", "end"), ("trans", "start", "end")):
        crf.parameters()[n].data = xp.asarray(p[a])
    em = Tensor(xp.asarray(p["em"]), requires_grad=True)
    nll = crf.nll(em, xp.asarray(p["tags"]), xp.asarray(p["mask"]), reduction="sum")
    nll.backward()
    assert to_host(nll.data) == pytest.approx(-llh.item(), abs=1e-9)
    assert np.allclose(to_host(em.grad), em_t.grad.numpy(), atol=1e-10)
    assert np.allclose(to_host(crf.trans.grad), ref.transitions.grad.numpy(), atol=1e-10)
    assert crf.decode(em, xp.asarray(p["mask"])) == ref.decode(em_t.detach(), mask_t)


def test_dsl_head_builds_emissions_loss_and_paths() -> None:
    """CRFHead, as network.py builds it: time-major emissions (T, B, K), loss, decoded paths."""
    from rnndsl.nn.heads import CRFHead
    from rnndsl.nn.layers import Init
    from rnndsl.nn.module import SeqInfo, SeqValue

    init = Init(np.random.default_rng(0), get_backend(), np.dtype("float32"))
    names = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    head = CRFHead("out", 8, 5, init, tag_names=names, scheme="bio")
    assert set(head.named_parameters()) == {"trans", "start", "end", "proj.weight", "proj.bias"}
    info = SeqInfo([4, 2], 4, xp)
    x = Tensor(xp.asarray(np.random.default_rng(1).random((4, 2, 8)), dtype="float32"))
    em = head.emissions(SeqValue(x, info))
    assert em.shape == (4, 2, 5)
    loss = head.loss(em, xp.zeros((4, 2), dtype=xp.int64), info.mask[:, :, 0])
    loss.backward()
    assert head.crf.trans.grad.shape == (5, 5)
    paths = head.decode(em, info.mask[:, :, 0])
    assert [len(p) for p in paths] == [4, 2]
    assert all(is_allowed(p, C.allowed_transitions(names, "bio")) for p in paths)
