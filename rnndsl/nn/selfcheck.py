"""Finite-difference checks of whole networks (BPTT through every cell), for tests and the CLI."""

from __future__ import annotations

from typing import Any

from ..autodiff import backend as Bk
from ..autodiff.gradcheck import GradcheckResult, check_grads, rel_error
from ..autodiff.tensor import Tensor


def check_network_grads(net: Any, x: Any, lengths: Any = None, eps: float = 1e-6,
                        tol: float = 1e-6, seed: int = 0, directions: int = 3) -> GradcheckResult:
    """Check d sum(u * net(x)) / d(x and every parameter) in float64 by central differences.

    The input is checked elementwise-and-direction by ``check_grads``; the parameters along
    ``directions`` random directions in the joint parameter space, and each parameter tensor
    alone along one random direction.
    """
    xp = net.backend.xp
    rng = Bk.host.random.default_rng(seed)
    res = check_grads(lambda t: net(t, lengths=lengths), xp.asarray(x, dtype="float64"),
                      eps=eps, tol=tol, max_elementwise=24, seed=seed)
    params = net.named_parameters()
    xt = Tensor(xp.asarray(x, dtype="float64"))
    out = net(xt, lengths=lengths)
    u = xp.asarray(rng.standard_normal(out.shape))
    net.zero_grad()
    net(xt, lengths=lengths).backward(u)
    grads = {k: (p.grad if p.grad is not None else xp.zeros_like(p.data))
             for k, p in params.items()}

    def loss() -> float:
        return float(Bk.to_host((net(xt, lengths=lengths).data * u).sum()))

    def probe(names: list[str], label: str) -> None:
        vs = {k: xp.asarray(rng.standard_normal(params[k].shape)) for k in names}
        saved = {k: params[k].data.copy() for k in names}
        for k in names:
            params[k].data = saved[k] + eps * vs[k]
        lp = loss()
        for k in names:
            params[k].data = saved[k] - eps * vs[k]
        lm = loss()
        for k in names:
            params[k].data = saved[k]
        numeric = (lp - lm) / (2 * eps)
        analytic = sum(float(Bk.to_host((grads[k] * vs[k]).sum())) for k in names)
        err = rel_error(analytic, numeric)
        res.checks += 1
        res.max_rel_error = max(res.max_rel_error, err)
        if err > tol:
            res.failures.append(f"{label}: analytic {analytic:.10g} vs numeric {numeric:.10g} "
                                f"(rel {err:.2e})")

    for i in range(directions):
        probe(list(params), f"all parameters, direction {i}")
    for k in params:
        probe([k], k)
    return res

