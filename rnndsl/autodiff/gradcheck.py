"""Finite-difference gradient checks in float64.

``check_grads(f, *arrays)`` compares the tape's gradient of ``sum(u * f(x))`` (u a fixed random
cotangent) against central differences: once along a random direction for every input (cheap,
any size), and element by element for inputs of at most ``max_elementwise`` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import backend as Bk
from .tensor import Tensor


@dataclass
class GradcheckResult:
    """Worst relative errors found; ``ok`` when every one is below the tolerance."""

    max_rel_error: float
    tol: float
    checks: int
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        head = f"gradcheck: {self.checks} checks, max relative error {self.max_rel_error:.2e}"
        return head if self.ok else head + "\n" + "\n".join(self.failures[:10])


def rel_error(a: float, n: float, floor: float = 1e-7) -> float:
    return abs(a - n) / max(abs(a), abs(n), floor)


def check_grads(
    f: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    tol: float = 1e-6,
    max_elementwise: int = 64,
    seed: int = 0,
    wrt: Sequence[int] | None = None,
) -> GradcheckResult:
    """Check d sum(u * f(*inputs)) / d inputs[i] for every i in ``wrt`` (default: all float inputs).

    ``f`` takes Tensors and returns a Tensor; inputs are cast to float64 here.
    """
    xp = Bk.namespace_of(inputs[0]) if Bk.is_array(inputs[0]) else Bk.host
    rng = Bk.host.random.default_rng(seed)
    xs = [xp.asarray(x, dtype="float64") if _is_float(x) else x for x in inputs]
    wrt = [i for i in range(len(xs)) if _is_float(xs[i])] if wrt is None else list(wrt)

    def run(values: list[Any], grad: bool) -> tuple[Tensor, list[Tensor]]:
        ts = [Tensor(v, requires_grad=grad and i in wrt) if _is_float(v) else v
              for i, v in enumerate(values)]
        return f(*ts), ts

    out, ts = run(xs, True)
    u = xp.asarray(rng.standard_normal(out.shape))
    out.backward(u)
    grads = []
    for i in wrt:
        g = ts[i].grad
        grads.append(xp.zeros_like(xs[i]) if g is None else g)

    def loss(values: list[Any]) -> float:
        o, _ = run(values, False)
        return float(Bk.to_host((o.data * u).sum()))

    result = GradcheckResult(0.0, tol, 0)

    def compare(what: str, analytic: float, numeric: float, floor: float = 1e-7) -> None:
        err = rel_error(analytic, numeric, floor)
        result.checks += 1
        result.max_rel_error = max(result.max_rel_error, err)
        if err > tol:
            result.failures.append(
                f"{what}: analytic {analytic:.10g} vs numeric {numeric:.10g} (rel {err:.2e})"
            )

    for k, i in enumerate(wrt):
        v = xp.asarray(rng.standard_normal(xs[i].shape))
        plus = list(xs)
        minus = list(xs)
        plus[i] = xs[i] + eps * v
        minus[i] = xs[i] - eps * v
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        compare(f"input {i} direction", float(Bk.to_host((grads[k] * v).sum())), numeric)
        if xs[i].size <= max_elementwise:
            flat_g = Bk.to_host(grads[k]).reshape(-1)
            # an entry far below the input's largest gradient is compared on that scale:
            # its finite difference is dominated by round-off of the whole loss
            floor = max(1e-7, 1e-3 * float(abs(flat_g).max(initial=0.0)))
            for j in range(xs[i].size):
                e = xp.zeros(xs[i].size)
                e[j] = eps
                e = e.reshape(xs[i].shape)
                plus[i], minus[i] = xs[i] + e, xs[i] - e
                numeric = (loss(plus) - loss(minus)) / (2 * eps)
                compare(f"input {i} element {j}", float(flat_g[j]), numeric, floor)
    return result


def _is_float(x: Any) -> bool:
    return Bk.is_array(x) and x.dtype.kind == "f"
