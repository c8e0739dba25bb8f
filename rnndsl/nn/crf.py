"""Linear-chain CRF output layer (Huang et al. 2015): the NLL op, decoding, tag-scheme constraints.

Notation (the lecture's). A sentence x of n tokens gets emission scores emit_i[k] (tag k at
position i, from the layer below), transition scores trans[j, k] (tag j followed by tag k) and
boundary scores start[k], end[k]. A tagging s = s_1 .. s_n scores

    score(x, s) = start[s_1] + sum_{i=1..n} emit_i[s_i]
                  + sum_{i=2..n} trans[s_{i-1}, s_i] + end[s_n]

and p(s | x) = exp(score(x, s)) / Z(x), Z(x) = sum over all K^n taggings s' of exp(score(x, s')).
Training minimises NLL = -log p(gold | x) = log Z(x) - score(x, gold). The forward algorithm

    alpha_1[k] = start[k] + emit_1[k]
    alpha_i[k] = emit_i[k] + logsumexp_j (alpha_{i-1}[j] + trans[j, k])
    log Z      = logsumexp_k (alpha_n[k] + end[k])

gives log Z; the backward algorithm (beta_n[k] = end[k], beta_{i-1}[j] = logsumexp_k (trans[j, k] +
emit_i[k] + beta_i[k])) gives the posteriors, which are the gradient of log Z:

    d log Z / d emit_i[k]     = p(s_i = k | x)                = exp(alpha_i[k] + beta_i[k] - log Z)
    d log Z / d trans[j, k]   = sum_i p(s_{i-1} = j, s_i = k | x)
    d log Z / d start[k]      = p(s_1 = k | x),    d log Z / d end[k] = p(s_n = k | x)

and d score(x, gold) / d (.) counts the gold path's uses of each score. Decoding is Viterbi (max for
logsumexp, with backpointers) and a k-best Viterbi that keeps the k best prefixes per (i, tag).

Batches are batch-first: emissions (B, T, K) float, tags (B, T) int, mask (B, T) bool with
mask[b, t] = t < length[b] (a prefix mask; anything else is an error). Emissions and tags at
padded positions are never read, so they may hold anything. A sequence of length 0 has exactly one
tagging, the empty one: its NLL is 0 with zero gradient, its Viterbi path is [] with score 0, and
its marginals are all 0.

Numerics. The op accumulates in float64 whatever the input dtype and casts its results back. Its
fast path is the scaled forward algorithm in probability space (Rabiner 1989): with
E = exp(trans - max trans) and phi_i = exp(emit_i - max_k emit_i[k]),

    a_i = (a_{i-1} E) * phi_i / c_i,    c_i = sum_k ((a_{i-1} E) * phi_i)[k]

so every step is one (B, K) x (K, K) product, and log Z = sum_i (log c_i + the shifts); the
backward pass reuses the c_i, and the summed pair marginals are one (K, B*T) x (B*T, K) product.
Each step is renormalised, so nothing overflows. For float32 emissions phi is exponentiated in
float32 (as precise as the emissions themselves). The kernel refuses a batch, which then goes to
float64 phi and, failing that, to the log-space algorithm above (exact for any scores), when
an emission lies more than ~69 nats (float32 phi) / ~667 nats (float64) below its position's
best, so that phi would flush to 0, or when any c_i falls below 1e-150. Tests hold the kernels
equal to each other and to a tape of primitive ops to 1e-10. What remains unguarded is a forward
entry a_i[k] below 1e-308 of its step's total that later regains ~700 nats in steps that each keep
c_i above 1e-150: far beyond the scores any tagger produces.

Constraints. ``allowed_transitions`` turns a tag scheme (BIO, IOB1, IOBES) into boolean masks.
Training replaces forbidden scores by ``PENALTY`` = -1e4 (see there); decoding by -inf, so a decoded
path never takes a forbidden step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..autodiff import backend as Bk
from ..autodiff import functional as F
from ..autodiff.backend import host
from ..autodiff.ops import apply, op
from ..autodiff.tensor import Tensor, no_grad
from ..errors import DataError, ShapeError

Array = Any  # an array of the backend namespace ``xp`` (numpy.ndarray or cupy.ndarray)

PENALTY = -1.0e4
"""Score given to a forbidden transition/start/end in training.

exp(-1e4) is exactly 0 in float32 and float64, so forbidden steps carry no probability mass in
log Z, yet the value is finite: a gold path that breaks the scheme gets a large finite loss (about
1e4 per violation, see ``CRF.violations``) instead of inf/NaN, and float32 still resolves it. The
masked entries are constants (``where``), so they receive zero gradient."""

SCHEMES = ("bio", "iob1", "iobes", "none")
_SCHEME_ALIASES = {"iob2": "bio", "bioes": "iobes"}
_WORK = "float64"  # working precision of the forward-backward kernels
_GUARD = 1e-150  # a scaled step's normaliser below this sends the batch to the log-space kernel
_PHI_MIN = 1e-290  # smallest exp(emit - max emit) the scaled kernel takes (gaps under ~667 nats)
_PHI_MIN32 = 1e-30  # the same for float32 exponentials (gaps under ~69 nats: nothing flushes)
_TINY = 1e-300  # floor for a normaliser before dividing by it (only reached past _GUARD)


# --- batches --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lengths:
    """The validated mask of a batch, time-major, with its lengths on the host.

    valid (T, B) bool; lengths (B,) host int; has (B,) bool (length > 0); last (B,) int, the index
    of each sequence's last position (0 for a length-0 sequence); t_min / t_max: the shortest and
    longest length (steps t < t_min need no masking, steps t >= t_max no work at all).
    """

    valid: Array
    lengths: Any
    has: Array
    last: Array
    t_min: int
    t_max: int


def batch_lengths(xp: Any, shape: tuple[int, ...], mask: Array | None) -> Lengths:
    """Check that ``mask`` (B, T) is a prefix mask for emissions of ``shape`` (B, T, K)."""
    if len(shape) != 3 or shape[2] < 1:
        raise ShapeError(f"emissions must be (batch, time, tags) with tags >= 1, got {shape}")
    b, t = shape[0], shape[1]
    if mask is None:
        lengths = host.full(b, t, dtype=host.int64)
        valid = xp.ones((t, b), dtype=bool)
    else:
        mask = xp.asarray(mask).astype(bool)
        if tuple(mask.shape) != (b, t):
            raise ShapeError(f"mask must have shape {(b, t)} like the emissions, got {mask.shape}")
        n = mask.sum(axis=1)
        prefix = xp.arange(t)[None, :] < n[:, None]
        if not bool(xp.all(prefix == mask)):
            raise ShapeError(
                "mask must be a prefix mask (mask[b, t] = t < length[b])",
                hint="padding goes after each sequence's end; build it as arange(T) < lengths",
            )
        lengths = Bk.to_host(n).astype(host.int64)
        valid = xp.ascontiguousarray(mask.T)
    lengths_x = xp.asarray(lengths)
    return Lengths(
        valid=valid,
        lengths=lengths,
        has=lengths_x > 0,
        last=xp.maximum(lengths_x - 1, 0),
        t_min=int(lengths.min()) if b else 0,
        t_max=int(lengths.max()) if b else 0,
    )


def _time_major(xp: Any, emissions: Array, lens: Lengths, dtype: Any = None) -> Array:
    """(B, T, K) -> a fresh (t_max, B, K) contiguous copy, 0 at padded positions (garbage never
    leaks, not even inf or NaN)."""
    n_b, _, k = emissions.shape
    em = xp.empty((lens.t_max, n_b, k), dtype=dtype or emissions.dtype)
    em[...] = emissions[:, : lens.t_max].transpose(1, 0, 2)
    if lens.t_min < lens.t_max:
        em[~lens.valid[: lens.t_max]] = 0
    return em


def _check_params(emissions: Array, trans: Array, start: Array, end: Array) -> None:
    k = emissions.shape[-1]
    if tuple(trans.shape) != (k, k) or tuple(start.shape) != (k,) or tuple(end.shape) != (k,):
        raise ShapeError(
            f"for {k} tags trans must be ({k}, {k}) and start, end ({k},); got "
            f"{tuple(trans.shape)}, {tuple(start.shape)}, {tuple(end.shape)}"
        )


def _lse(xp: Any, a: Array, axis: int) -> Array:
    """log sum exp along ``axis``; -inf (not NaN) where every entry is -inf."""
    m = a.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = xp.exp(a - m).sum(axis=axis, keepdims=True)
    tiny = xp.where(s > 0, s, 1)
    return xp.squeeze(xp.where(s > 0, xp.log(tiny), -xp.inf) + m, axis=axis)


def _data(x: Any) -> Array:
    return x.data if isinstance(x, Tensor) else x


def _as_array(xp: Any, x: Any) -> Array:
    return xp.asarray(_data(x))


# --- forward-backward kernels ---------------------------------------------------------------------
class _Scaled:
    """Forward-backward in probability space with per-step normalisation (the fast path).

    a[t] (t_max, B, K): normalised forward vectors; c[t] (t_max, B): their normalisers (1 at
    padded steps). The scaled backward vectors b[t] use the same c[t], so that

        p(s_t = k)                = a[t, k] b[t, k]
        p(s_{t-1} = j, s_t = k)   = a[t-1, j] E[j, k] phi[t, k] b[t, k] / c[t]

    phi is 0 at padded positions, so a and b vanish there and no step needs a mask. With
    ``fast_exp`` (float32 emissions) phi is exponentiated in float32, as precise as the emissions
    themselves. ``ok`` is False (use another kernel) where an emission gap would flush phi
    (_PHI_MIN, _PHI_MIN32) or some c falls below _GUARD.
    """

    def __init__(
        self,
        xp: Any,
        em: Array,
        trans: Array,
        start: Array,
        end: Array,
        lens: Lengths,
        fast_exp: bool = False,
    ):
        self.xp, self.lens = xp, lens
        n_t, n_b, _ = em.shape
        padded = lens.t_min < n_t
        m_tr, m_s, m_e = trans.max(), start.max(), end.max()
        self.E = xp.exp(trans - m_tr)
        self.e_end = xp.exp(end - m_e)
        me = em.max(axis=2)
        if fast_exp:
            phi = xp.exp(em - me[:, :, None])
            unflushed = phi.min() >= _PHI_MIN32
            phi = phi.astype(_WORK)
        else:
            me = me.astype(_WORK)
            phi = xp.exp(em.astype(_WORK) - me[:, :, None])
            unflushed = phi.min() >= _PHI_MIN
        if padded:
            phi *= lens.valid[:n_t, :, None]
        self.phi = phi
        self.a = a = xp.empty_like(phi)
        self.c = c = xp.empty((n_t, n_b), dtype=_WORK)
        floor = xp.empty(n_b, dtype=_WORK)
        xp.multiply(xp.exp(start - m_s), phi[0], out=a[0])
        for t in range(n_t):
            if t > 0:
                xp.matmul(a[t - 1], self.E, out=a[t])
                a[t] *= phi[t]
            a[t].sum(axis=1, out=c[t])
            xp.maximum(c[t], _TINY, out=floor)
            a[t] /= floor[:, None]
        if padded:
            c[...] = xp.where(lens.valid[:n_t], c, 1)
        c_end = (a[lens.last, xp.arange(n_b)] * self.e_end).sum(axis=1)
        self.c_end = xp.where(lens.has, c_end, 1)
        finite = xp.isfinite(m_tr + m_s + m_e) & unflushed
        self.ok = bool(finite & xp.all(c >= _GUARD) & xp.all(self.c_end >= _GUARD))
        n_trans = xp.maximum(xp.asarray(lens.lengths) - 1, 0).astype(_WORK)
        log_c = xp.log(xp.maximum(c, _TINY)).sum(axis=0)
        log_z = (
            log_c
            + me.astype(_WORK).sum(axis=0)
            + n_trans * m_tr
            + m_s
            + m_e
            + xp.log(xp.maximum(self.c_end, _TINY))
        )
        self.log_z = xp.where(lens.has, log_z, 0)

    def posteriors(self, weight: Array) -> tuple[Array, Array]:
        """Node marginals p (t_max, B, K), 0 at padding; sum_b weight[b] sum_t pair marginals."""
        xp, lens, a, c, phi, E = self.xp, self.lens, self.a, self.c, self.phi, self.E
        n_t, n_b, k = a.shape
        b = xp.empty_like(a)
        w = xp.empty_like(a)  # w[t] = phi[t] b[t] / c[t], the right factor of the pair marginals
        b_end = self.e_end[None, :] / xp.maximum(self.c_end, _TINY)[:, None]
        b[n_t - 1] = b_end
        ending = {  # step -> the sequences whose backward pass starts there (their last position)
            int(n) - 1: xp.asarray(host.flatnonzero(lens.lengths == n))
            for n in host.unique(lens.lengths)
            if 1 <= n < n_t
        }
        for t in range(n_t - 1, 0, -1):
            xp.multiply(phi[t], b[t], out=w[t])
            w[t] /= c[t][:, None]
            xp.matmul(w[t], E.T, out=b[t - 1])
            rows = ending.get(t - 1)
            if rows is not None:
                b[t - 1, rows] = b_end[rows]
        b *= a  # b is now p
        if n_t > 1:
            w[1:] *= weight[None, :, None]
            pair = E * (a[:-1].reshape(-1, k).T @ w[1:].reshape(-1, k))
        else:
            pair = xp.zeros((k, k), dtype=_WORK)
        return b, pair


class _LogSpace:
    """Forward-backward in log space (exact for any scores; the fallback and the reference)."""

    def __init__(self, xp: Any, em: Array, trans: Array, start: Array, end: Array, lens: Lengths):
        em = em.astype(_WORK)
        self.xp, self.lens, self.em, self.trans, self.end = xp, lens, em, trans, end
        n_t, n_b, _ = em.shape
        self.alpha = alpha = xp.empty_like(em)
        alpha[0] = start + em[0]
        for t in range(1, n_t):
            alpha[t] = _lse(xp, alpha[t - 1][:, :, None] + trans, axis=1) + em[t]
            if t >= lens.t_min:
                alpha[t] = xp.where(lens.valid[t][:, None], alpha[t], alpha[t - 1])
        log_z = _lse(xp, alpha[lens.last, xp.arange(n_b)] + end, axis=1)
        self.log_z = xp.where(lens.has, log_z, 0)
        self.ok = True

    def posteriors(self, weight: Array) -> tuple[Array, Array]:
        xp, lens, em, trans, alpha = self.xp, self.lens, self.em, self.trans, self.alpha
        n_t, n_b, k = em.shape
        beta = xp.empty_like(em)
        beta[n_t - 1] = self.end
        pair = xp.zeros((k, k), dtype=em.dtype)
        z = self.log_z[:, None, None]
        for t in range(n_t - 1, 0, -1):
            right = em[t] + beta[t]
            beta[t - 1] = _lse(xp, trans + right[:, None, :], axis=2)
            if t >= lens.t_min:
                beta[t - 1] = xp.where(lens.valid[t][:, None], beta[t - 1], self.end)
            # -inf where the step is padding: a length-0 row's log Z of 0 could overflow exp
            expo = alpha[t - 1][:, :, None] + trans + right[:, None, :] - z
            xi = xp.exp(xp.where(lens.valid[t][:, None, None], expo, -xp.inf))
            pair += (xi * weight[:, None, None]).sum(axis=0)
        expo = alpha + beta - self.log_z[None, :, None]
        p = xp.exp(xp.where(lens.valid[:n_t, :, None], expo, -xp.inf))
        return p, pair


def _lattice(
    xp: Any, em: Array, trans: Array, start: Array, end: Array, lens: Lengths, exact: bool = False
) -> _Scaled | _LogSpace:
    """Run the forward algorithm: the scaled kernel, or the log-space one where it is unsafe.

    em: time-major emissions in their own dtype, 0 at padding; trans, start, end in float64.
    """
    if not exact:
        tries = (True, False) if em.dtype == xp.float32 else (False,)
        for fast_exp in tries:
            lat = _Scaled(xp, em, trans, start, end, lens, fast_exp=fast_exp)
            if lat.ok:
                return lat
    return _LogSpace(xp, em, trans, start, end, lens)


def _gold_score(
    xp: Any, em: Array, trans: Array, start: Array, end: Array, tags: Array, lens: Lengths
) -> Array:
    """score(x, gold) per sequence in float64; em and tags time-major, 0 at padding."""
    n_t, n_b, _ = em.shape
    emit = xp.take_along_axis(em, tags[:, :, None], axis=2)[:, :, 0].astype(_WORK).sum(axis=0)
    steps = (trans[tags[:-1], tags[1:]] * lens.valid[1:n_t]).sum(axis=0)
    batch = xp.arange(n_b)
    ends = (start[tags[0]] + end[tags[lens.last, batch]]) * lens.has
    return emit + steps + ends


# --- the op ---------------------------------------------------------------------------------------
@op("crf_nll")
def crf_nll(xp, emissions, trans, start, end, tags, mask=None, exact: bool = False):
    """Per-sequence NLL = log Z(x) - score(x, gold), shape (B,); see the module docstring.

    emissions (B, T, K), trans (K, K), start (K,), end (K,), tags (B, T) int, mask (B, T) bool or
    None (all valid). ``exact`` forces the log-space kernel. The vjp is analytic: posterior
    marginals from forward-backward minus the gold path's counts, times the cotangent.
    """
    _check_params(emissions, trans, start, end)
    lens = batch_lengths(xp, emissions.shape, mask)
    n_b, n_t_full, k = emissions.shape
    out_dtype = emissions.dtype
    tags = xp.asarray(tags)
    if tuple(tags.shape) != (n_b, n_t_full):
        raise ShapeError(f"tags must have shape {(n_b, n_t_full)}, got {tuple(tags.shape)}")
    n_t = lens.t_max
    if n_t == 0:
        zeros = xp.zeros(n_b, dtype=out_dtype)
        return zeros, lambda g: (
            xp.zeros_like(emissions),
            xp.zeros_like(trans),
            xp.zeros_like(start),
            xp.zeros_like(end),
            None,
            None,
        )
    valid = lens.valid[:n_t]
    tags_t = xp.where(valid, tags[:, :n_t].T, 0).astype(xp.int64)
    if bool(xp.any(valid & ((tags_t < 0) | (tags_t >= k)))):
        raise DataError(f"tags must lie in [0, {k}) at every unpadded position")
    em = _time_major(xp, emissions, lens)
    tr, st, en = (xp.asarray(a, dtype=_WORK) for a in (trans, start, end))
    lat = _lattice(xp, em, tr, st, en, lens, exact=exact)
    nll = lat.log_z - _gold_score(xp, em, tr, st, en, tags_t, lens)
    del em

    def vjp(g):
        g = g.astype(_WORK)
        p, pair = lat.posteriors(g)
        # p becomes g * (p - onehot(gold)): the emissions' gradient, time-major
        p *= g[None, :, None]
        steps = xp.arange(n_t)[:, None]
        batch = xp.arange(n_b)
        p[steps, batch[None, :], tags_t] -= g[None, :] * valid
        d_em = xp.empty(emissions.shape, dtype=emissions.dtype)
        d_em[:, :n_t] = p.transpose(1, 0, 2)
        d_em[:, n_t:] = 0
        w = valid[1:] * g[None, :]
        gold_pairs = xp.bincount(
            (tags_t[:-1] * k + tags_t[1:]).ravel(), weights=w.ravel(), minlength=k * k
        ).reshape(k, k)
        d_start = p[0].sum(axis=0)
        d_end = p[lens.last, batch].sum(axis=0)
        return (
            d_em,
            (pair - gold_pairs).astype(trans.dtype),
            d_start.astype(start.dtype),
            d_end.astype(end.dtype),
            None,
            None,
        )

    return nll.astype(out_dtype), vjp


def crf_nll_reference(
    emissions: Tensor, trans: Tensor, start: Tensor, end: Tensor, tags: Any, mask: Any = None
) -> Tensor:
    """The same NLL built on the tape from primitive ops (the check on ``crf_nll``); (B,)."""
    xp = emissions.xp
    n_b, n_t, k = emissions.shape
    lens = batch_lengths(xp, emissions.shape, mask)
    valid = lens.valid.T  # (B, T)
    tags = xp.where(valid, xp.asarray(tags), 0)
    w = Tensor(valid.astype(emissions.dtype))
    alpha = start + emissions[:, 0]
    for t in range(1, n_t):
        step = F.logsumexp(alpha.reshape(n_b, k, 1) + trans, axis=1) + emissions[:, t]
        alpha = F.where(valid[:, t : t + 1], step, alpha)
    log_z = F.where(lens.has, F.logsumexp(alpha + end, axis=1), 0.0)
    rows, steps = xp.arange(n_b)[:, None], xp.arange(n_t)[None, :]
    gold = (emissions[rows, steps, tags] * w).sum(axis=1)  # getitem, not take_along: CuPy-safe
    if n_t > 1:
        gold = gold + (trans[tags[:, :-1], tags[:, 1:]] * w[:, 1:]).sum(axis=1)
    has = Tensor(lens.has.astype(emissions.dtype))
    last = tags[xp.arange(n_b), lens.last]
    gold = gold + (start[tags[:, 0]] + end[last]) * has
    return log_z - gold


# --- posteriors and decoding ----------------------------------------------------------------------
def log_partition(emissions: Any, trans: Any, start: Any, end: Any, mask: Any = None) -> Array:
    """log Z(x) per sequence by the forward algorithm, (B,) in the emissions' dtype; 0 if empty."""
    em0 = _data(emissions)
    xp = Bk.namespace_of(em0)
    tr, st, en = (_as_array(xp, a) for a in (trans, start, end))
    _check_params(em0, tr, st, en)
    lens = batch_lengths(xp, em0.shape, mask)
    if lens.t_max == 0:
        return xp.zeros(em0.shape[0], dtype=em0.dtype)
    em = _time_major(xp, em0, lens)
    lat = _lattice(xp, em, *(a.astype(_WORK) for a in (tr, st, en)), lens)
    return lat.log_z.astype(em0.dtype)


def marginals(emissions: Any, trans: Any, start: Any, end: Any, mask: Any = None) -> Array:
    """p(s_t = k | x) by forward-backward, (B, T, K) in the emissions' dtype; 0 at padding."""
    em0 = _data(emissions)
    xp = Bk.namespace_of(em0)
    tr, st, en = (_as_array(xp, a) for a in (trans, start, end))
    _check_params(em0, tr, st, en)
    lens = batch_lengths(xp, em0.shape, mask)
    out = xp.zeros(em0.shape, dtype=em0.dtype)
    if lens.t_max == 0:
        return out
    em = _time_major(xp, em0, lens)
    tr, st, en = (a.astype(_WORK) for a in (tr, st, en))
    lat = _lattice(xp, em, tr, st, en, lens)
    p, _ = lat.posteriors(xp.ones(em0.shape[0], dtype=_WORK))
    out[:, : lens.t_max] = p.transpose(1, 0, 2)
    return out


def viterbi(
    emissions: Any, trans: Any, start: Any, end: Any, mask: Any = None
) -> tuple[list[list[int]], Any]:
    """The best tagging of each sequence: argmax_s score(x, s), by Viterbi.

        delta_1[k] = start[k] + emit_1[k]
        delta_i[k] = emit_i[k] + max_j (delta_{i-1}[j] + trans[j, k])
        best       = max_k (delta_n[k] + end[k])

    Vectorised over batch and tag pairs; -inf scores mark forbidden steps. The forward pass keeps
    only the deltas; the backpointer of the one tag each path takes at position i,
    argmax_j (delta_{i-1}[j] + trans[j, s_i]), is found on the way back (B x K work per step
    instead of B x K x K). Returns each sequence's path (at its own length, [] for length 0) and
    a host float64 array (B,) of their scores.
    """
    em0 = _data(emissions)
    xp = Bk.namespace_of(em0)
    tr, st, en = (_as_array(xp, a) for a in (trans, start, end))
    _check_params(em0, tr, st, en)
    lens = batch_lengths(xp, em0.shape, mask)
    n_b, n_t = em0.shape[0], lens.t_max
    if n_t == 0:
        return [[] for _ in range(n_b)], host.zeros(n_b)
    dt = xp.result_type(em0.dtype, tr.dtype)
    em = _time_major(xp, em0, lens, dt)
    k = em.shape[2]
    tr = tr.astype(dt)
    delta = xp.empty_like(em)
    delta[0] = st + em[0]
    cand = xp.empty((k, n_b, k), dtype=dt)  # [from, batch, to]: the max is over slabs
    for t in range(1, n_t):
        xp.add(delta[t - 1].T[:, :, None], tr[:, None, :], out=cand)
        cand.max(axis=0, out=delta[t])
        delta[t] += em[t]
    # padded steps ran on zero emissions; each sequence ends at its own last position
    batch = xp.arange(n_b)
    final = delta[lens.last, batch] + en
    last = final.argmax(axis=1)
    score = Bk.to_host(final[batch, last]).astype(host.float64)
    delta_h, tr_h, last_h = Bk.to_host(delta), Bk.to_host(tr), Bk.to_host(last)
    paths = host.empty((n_b, n_t), dtype=host.int64)
    cur = last_h.copy()
    for t in range(n_t - 1, -1, -1):
        ends = lens.lengths == t + 1
        cur[ends] = last_h[ends]
        paths[:, t] = cur
        if t:
            cur = (delta_h[t - 1] + tr_h[:, cur].T).argmax(axis=1)
    scores = host.where(lens.lengths > 0, score, 0.0)
    return [paths[b, : lens.lengths[b]].tolist() for b in range(n_b)], scores


def _backtrace(bp: Any, last: Any, k: int) -> Any:
    """Follow host backpointers (T, B, K, k) from flat (tag, rank) ``last`` (B, r) -> (B, r, T)."""
    n_t, n_b = bp.shape[:2]
    flat = bp.reshape(n_t, n_b, -1)
    paths = host.empty((n_b, last.shape[1], n_t), dtype=host.int64)
    cur = last
    rows = host.arange(n_b)[:, None]
    for t in range(n_t - 1, -1, -1):
        paths[:, :, t] = cur // k
        if t:
            cur = flat[t][rows, cur]
    return paths


def _top_k(xp: Any, scores: Array, k: int) -> tuple[Array, Array]:
    """The k largest entries along the last axis, sorted descending: (values, indices)."""
    n = scores.shape[-1]
    if k < n:
        idx = xp.argpartition(-scores, k - 1, axis=-1)[..., :k]
    else:
        idx = xp.broadcast_to(xp.arange(n), scores.shape).copy()
    vals = xp.take_along_axis(scores, idx, axis=-1)
    order = xp.argsort(-vals, axis=-1)
    return xp.take_along_axis(vals, order, axis=-1), xp.take_along_axis(idx, order, axis=-1)


def nbest(
    emissions: Any, trans: Any, start: Any, end: Any, mask: Any = None, k: int = 3
) -> list[list[tuple[list[int], float]]]:
    """Up to k best taggings of each sequence with their scores, best first (k-best Viterbi).

    Each (position i, tag) keeps the k best prefixes ending there: candidates are the k best of
    every predecessor tag j plus trans[j, tag] (K * k of them), of which the top k survive, each
    with a backpointer to (j, rank). Taggings scoring -inf (forbidden) are left out, so a sequence
    with fewer than k allowed taggings gets fewer; a length-0 sequence gets [([], 0.0)].
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    em0 = _data(emissions)
    xp = Bk.namespace_of(em0)
    tr, st, en = (_as_array(xp, a) for a in (trans, start, end))
    _check_params(em0, tr, st, en)
    lens = batch_lengths(xp, em0.shape, mask)
    n_b, n_t = em0.shape[0], lens.t_max
    if n_t == 0:
        return [[([], 0.0)] for _ in range(n_b)]
    dt = xp.result_type(em0.dtype, tr.dtype)
    em = _time_major(xp, em0, lens, dt)
    n_k = em.shape[2]
    trans_t = xp.ascontiguousarray(tr.T, dtype=dt)
    top = xp.full((n_b, n_k, k), -xp.inf, dtype=dt)  # top[b, tag, rank]
    top[:, :, 0] = st + em[0]
    bp = xp.empty((n_t, n_b, n_k, k), dtype=xp.int64)  # flat index j * k + rank of the predecessor
    stay = xp.arange(n_k * k).reshape(n_k, k)
    bp[0] = stay
    for t in range(1, n_t):
        cand = (top[:, None, :, :] + trans_t[None, :, :, None]).reshape(n_b, n_k, n_k * k)
        vals, idx = _top_k(xp, cand, k)
        step = vals + em[t][:, :, None]
        if t >= lens.t_min:
            keep = lens.valid[t][:, None, None]
            step = xp.where(keep, step, top)
            idx = xp.where(keep, idx, stay)
        bp[t] = idx
        top = step
    final = (top + en[None, :, None]).reshape(n_b, n_k * k)
    vals, idx = _top_k(xp, final, min(k, n_k * k))
    paths = _backtrace(Bk.to_host(bp), Bk.to_host(idx), k)
    vals = Bk.to_host(vals).astype(host.float64)
    out = []
    for b in range(n_b):
        n = int(lens.lengths[b])
        if n == 0:
            out.append([([], 0.0)])
            continue
        out.append(
            [
                (paths[b, r, :n].tolist(), float(vals[b, r]))
                for r in range(vals.shape[1])
                if vals[b, r] > -host.inf
            ]
        )
    return out


# --- tag schemes ----------------------------------------------------------------------------------
def _parse_tag(name: str, scheme: str, prefixes: str) -> tuple[str, str]:
    if name == "O":
        return "O", ""
    head, sep, kind = name.partition("-")
    if not sep or head not in tuple(prefixes) or not kind:
        want = ", ".join(f"{p}-TYPE" for p in prefixes)
        raise DataError(
            f"tag {name!r} is not a {scheme.upper()} tag",
            hint=f"{scheme.upper()} tags are 'O' or {want}; or use scheme 'none'",
        )
    return head, kind


def allowed_transitions(tag_names: Sequence[str], scheme: str) -> tuple[Any, Any, Any]:
    """Which steps a tag scheme allows: (allowed (K, K), allowed_start (K,), allowed_end (K,)).

    Host bool arrays; allowed[i, j] says whether tag i may be followed by tag j. Tags are 'O' or
    'P-TYPE' (the type may itself contain '-'). The schemes:

    - "bio" (IOB2): B-X begins every chunk. I-X may follow only B-X or I-X, and may not start a
      sequence. O and B-* may follow anything; anything may end.
    - "iob1" (Ramshaw & Marcus; CoNLL-2003): I-X is the ordinary chunk tag, and B-X is used only
      for a chunk that directly follows another chunk of the same type. So I-X may follow
      anything and may start a sequence; B-X may follow only B-X or I-X and may not start a
      sequence (B-X after O or after a chunk of another type is not IOB1). Anything may end.
    - "iobes" (BIOES, BILOU with E = L, S = U): B-X and I-X may be followed only by I-X or E-X
      (same type) and may not end a sequence; O, E-* and S-* may be followed only by O, B-* or S-*;
      I-X and E-X may not start a sequence.
    - "none": everything allowed.

    Raises DataError for a tag that is not of the scheme, a repeated tag, or a tag set that
    leaves some sequence length without any allowed tagging.
    """
    scheme = _SCHEME_ALIASES.get(scheme.lower(), scheme.lower())
    if scheme not in SCHEMES:
        raise DataError(
            f"unknown tag scheme {scheme!r}",
            hint="choose one of " + ", ".join(repr(s) for s in SCHEMES),
        )
    names = list(tag_names)
    k = len(names)
    if len(set(names)) != k:
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"tag names repeat: {dup}")
    if scheme == "none":
        return host.ones((k, k), dtype=bool), host.ones(k, dtype=bool), host.ones(k, dtype=bool)
    prefixes = "BIES" if scheme == "iobes" else "BI"
    tags = [_parse_tag(n, scheme, prefixes) for n in names]
    allowed = host.zeros((k, k), dtype=bool)
    first = host.zeros(k, dtype=bool)
    final = host.zeros(k, dtype=bool)
    for j, (pj, tj) in enumerate(tags):
        if scheme == "bio":
            first[j], final[j] = pj != "I", True
        elif scheme == "iob1":
            first[j], final[j] = pj != "B", True
        else:
            first[j], final[j] = pj in "OBS", pj in "OES"
        for i, (pi, ti) in enumerate(tags):
            inside = pi in "BI" and ti == tj  # i is a chunk of j's type
            if scheme == "bio":
                ok = pj != "I" or inside
            elif scheme == "iob1":
                ok = pj != "B" or inside
            elif pi in "BI":  # iobes: an open chunk must continue with its own type
                ok = pj in "IE" and ti == tj
            else:
                ok = pj in "OBS"
            allowed[i, j] = ok
    if not bool((first & final & host.diagonal(allowed)).any()):
        raise DataError(
            f"the {scheme.upper()} tag set {names} allows no tagging for some sequence lengths",
            hint="a scheme's tag set needs 'O' (or a tag like B-X in BIO, S-X in IOBES)",
        )
    return allowed, first, final


# --- the head -------------------------------------------------------------------------------------
class CRF:
    """The CRF output layer: parameters trans (K, K), start (K,), end (K,) and tag constraints.

    p(s | x) = exp(score(x, s)) / Z(x) over emissions (B, T, K) from the layer below; see the
    module docstring for score, the forward algorithm and Viterbi. ``tags`` is the number of tags
    or their names; names with a ``scheme`` ("bio", "iob1", "iobes") add constraints, applied as
    ``penalty`` in training and -inf in decoding while ``constrain`` is True (set it to False to
    turn them off). ``constraints`` = (allowed, allowed_start, allowed_end) gives them directly.
    Parameters are uniform(-0.1, 0.1) from ``rng`` (a numpy Generator), or zeros without one;
    ``parameters`` passes existing leaf tensors instead (a Module's Parameters).
    """

    def __init__(
        self,
        tags: int | Sequence[str],
        scheme: str = "none",
        *,
        rng: Any = None,
        dtype: str = "float32",
        backend: str | Bk.Backend | None = None,
        constraints: tuple[Any, Any, Any] | None = None,
        constrain: bool = True,
        penalty: float = PENALTY,
        parameters: Mapping[str, Tensor] | None = None,
    ):
        self.tag_names = None if isinstance(tags, int) else tuple(tags)
        self.num_tags = k = tags if isinstance(tags, int) else len(self.tag_names)
        if k < 1:
            raise ShapeError(f"a CRF needs at least one tag, got {k}")
        self.backend = backend if isinstance(backend, Bk.Backend) else Bk.get_backend(backend)
        xp = self.backend.xp
        if constraints is None and scheme != "none":
            if self.tag_names is None:
                raise DataError(f"scheme {scheme!r} needs tag names, not a number of tags")
            constraints = allowed_transitions(self.tag_names, scheme)
        self.scheme = scheme
        self.constrain = constrain
        self.penalty = float(penalty)
        self.allowed = self.allowed_start = self.allowed_end = None
        if constraints is not None:
            shapes = ((k, k), (k,), (k,))
            arrs = [xp.asarray(Bk.to_host(_data(a)), dtype=bool) for a in constraints]
            if tuple(tuple(a.shape) for a in arrs) != shapes:
                raise ShapeError(f"constraints must have shapes {shapes}")
            self.allowed, self.allowed_start, self.allowed_end = arrs
        if parameters is not None:
            self.trans, self.start, self.end = (parameters[n] for n in ("trans", "start", "end"))
        else:
            dt = Bk.dtype_of(dtype)

            def make(shape: tuple[int, ...]) -> Tensor:
                v = host.zeros(shape) if rng is None else rng.uniform(-0.1, 0.1, size=shape)
                return Tensor(self.backend.asarray(v, dtype=dt), requires_grad=True)

            self.trans, self.start, self.end = make((k, k)), make((k,)), make((k,))

    def parameters(self) -> dict[str, Tensor]:
        return {"trans": self.trans, "start": self.start, "end": self.end}

    @property
    def constrained(self) -> bool:
        return self.constrain and self.allowed is not None

    def _training_scores(self) -> tuple[Tensor, Tensor, Tensor]:
        if not self.constrained:
            return self.trans, self.start, self.end
        return (
            F.where(self.allowed, self.trans, self.penalty),
            F.where(self.allowed_start, self.start, self.penalty),
            F.where(self.allowed_end, self.end, self.penalty),
        )

    def _decoding_scores(self) -> tuple[Array, Array, Array]:
        ts = (self.trans.data, self.start.data, self.end.data)
        if not self.constrained:
            return ts
        xp = self.backend.xp
        return tuple(
            xp.where(m, v, -xp.inf)
            for m, v in zip((self.allowed, self.allowed_start, self.allowed_end), ts)
        )

    def _emissions(self, emissions: Any) -> Tensor:
        e = emissions if isinstance(emissions, Tensor) else Tensor(self.backend.asarray(emissions))
        if e.ndim != 3 or e.shape[2] != self.num_tags:
            raise ShapeError(f"emissions must be (batch, time, {self.num_tags}), got {e.shape}")
        return e

    def _array(self, a: Any) -> Array:
        return None if a is None else self.backend.xp.asarray(_data(a))

    def nll(self, emissions: Any, tags: Any, mask: Any = None, reduction: str = "mean") -> Tensor:
        """-log p(tags | x) per sequence (B,) for "none", else the "sum" or "mean" of it."""
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        tr, st, en = self._training_scores()
        per = apply(
            "crf_nll", self._emissions(emissions), tr, st, en, self._array(tags), self._array(mask)
        )
        if reduction == "none":
            return per
        return per.sum() if reduction == "sum" else per.mean()

    def viterbi(self, emissions: Any, mask: Any = None) -> tuple[list[list[int]], Any]:
        """Best paths and their scores (host float64 (B,)); see ``viterbi``."""
        with no_grad():
            return viterbi(self._emissions(emissions), *self._decoding_scores(), self._array(mask))

    def decode(self, emissions: Any, mask: Any = None) -> list[list[int]]:
        """The best tagging of each sequence, at its own length."""
        return self.viterbi(emissions, mask)[0]

    def nbest(
        self, emissions: Any, mask: Any = None, k: int = 3
    ) -> list[list[tuple[list[int], float]]]:
        """Up to k best (path, score) per sequence, best first; see ``nbest``."""
        return nbest(self._emissions(emissions), *self._decoding_scores(), self._array(mask), k=k)

    def marginals(self, emissions: Any, mask: Any = None) -> Array:
        """Posterior p(s_t = k | x), (B, T, K), 0 at padding; constraints as in training."""
        with no_grad():
            tr, st, en = (t.data for t in self._training_scores())
        return marginals(self._emissions(emissions), tr, st, en, self._array(mask))

    def violations(self, tags: Any, mask: Any = None) -> Any:
        """How many forbidden steps (start, transitions, end) each gold tagging takes; host (B,).

        With constraints on, each one costs about -PENALTY in the NLL; 0 everywhere when off.
        """
        tags = Bk.to_host(_data(tags)).astype(host.int64)
        n_b, n_t = tags.shape
        if not self.constrained:
            return host.zeros(n_b, dtype=host.int64)
        lens = batch_lengths(
            host, (n_b, n_t, self.num_tags), None if mask is None else Bk.to_host(_data(mask))
        )
        n = lens.lengths
        tags = host.where(lens.valid.T, tags, 0)
        al, st, en = (Bk.to_host(a) for a in (self.allowed, self.allowed_start, self.allowed_end))
        bad = (~al[tags[:, :-1], tags[:, 1:]] & lens.valid.T[:, 1:]).sum(axis=1)
        last = tags[host.arange(n_b), host.maximum(n - 1, 0)]
        return bad + ((~st[tags[:, 0]]).astype(int) + ~en[last]) * (n > 0)
