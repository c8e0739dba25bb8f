"""Gradient-check rows for the CRF ops: ``check_grads(f, *args)`` checks each one in float64.

Each value of ROWS returns ``(f, args)``. The batch mixes lengths 4, 2, 1 and 0 (padded emissions
hold large garbage, padded tags -1), so the rows also check that padding gets zero gradient.
Scores are kept near 0.5 so finite differences with the default eps=1e-6 resolve every entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rnndsl.autodiff import apply
from rnndsl.autodiff.backend import get_backend, host
from rnndsl.nn import crf  # noqa: F401 - registers crf_nll


def _crf_nll_row() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    xp = get_backend().xp
    rng = host.random.default_rng(0)
    b, t, k = 4, 4, 3
    lengths = host.array([4, 2, 1, 0])
    mask = host.arange(t)[None, :] < lengths[:, None]
    em = 0.5 * rng.standard_normal((b, t, k))
    em[~mask] = 1e3 * rng.standard_normal((int((~mask).sum()), k))
    tags = host.where(mask, rng.integers(0, k, (b, t)), -1)
    params = [0.5 * rng.standard_normal(s) for s in ((k, k), (k,), (k,))]
    args = tuple(xp.asarray(a) for a in (em, *params, tags, mask))

    def f(emissions: Any, trans: Any, start: Any, end: Any, tags: Any, mask: Any) -> Any:
        return apply("crf_nll", emissions, trans, start, end, tags, mask)

    return f, args


ROWS: dict[str, Callable[[], tuple[Callable[..., Any], tuple[Any, ...]]]] = {
    "crf_nll": _crf_nll_row,
}
