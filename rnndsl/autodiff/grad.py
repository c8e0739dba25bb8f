"""Reverse mode: an iterative walk over the tape (no recursion, so 10,000-step unrolls work)."""

from __future__ import annotations

from typing import Any

from numpy import ndarray

from .tensor import Node, RowSparse, Tensor, add_grads, dense


def topological_nodes(root: Node) -> list[Node]:
    """Nodes reachable from ``root``, each after all the nodes it depends on."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in node.parents:
            if p is not None and p.node is not None and id(p.node) not in seen:
                stack.append((p.node, False))
    return order


def backward(root: Tensor, seed: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf that requires grad.

    ``seed`` defaults to ones (a scalar root gives the plain gradient). Unless ``retain_graph``,
    each node drops its vjp closure and parents once used, which frees the saved activations.
    """
    xp = root.xp
    if seed is None:
        seed = xp.ones(root.shape, dtype=root.dtype)
    elif isinstance(seed, Tensor):
        seed = seed.data
    else:
        seed = xp.asarray(seed, dtype=root.dtype)
    if root.node is None:
        if root.requires_grad:
            root.accumulate_grad(seed)
        return
    if root.node.vjp is None:
        raise RuntimeError(
            "backward through a graph that was already released; "
            "pass retain_graph=True to the first backward() to go through it twice"
        )

    cot: dict[int, list[Any]] = {id(root.node): [None] * root.node.n_out}
    owned: dict[int, list[bool]] = {id(root.node): [False] * root.node.n_out}
    cot[id(root.node)][root.index] = seed
    for node in reversed(topological_nodes(root.node)):
        key = id(node)
        gs = cot.pop(key, None)
        owned.pop(key, None)
        if gs is None or (gs[0] is None and all(g is None for g in gs)):
            if not retain_graph:
                node.vjp, node.parents = None, ()
            continue
        if node.retained:
            for i, t in node.retained.items():
                if gs[i] is not None:
                    t._grad, t._grad_owned = gs[i], False
        # deferred or row-sparse cotangents are for leaves; an op's vjp gets plain arrays
        for k, g in enumerate(gs):
            if g is not None and type(g) is not ndarray:
                gs[k] = g.to_dense() if isinstance(g, RowSparse) else dense(g)
        grads = node.vjp(tuple(gs)) if node.multi else node.vjp(gs[0])
        for p, g in zip(node.parents, grads):
            if p is None or g is None or not p.requires_grad:
                continue
            if p.node is None:
                p.accumulate_grad(g)
                continue
            key = id(p.node)
            slots = cot.get(key)
            if slots is None:
                slots = cot[key] = [None] * p.node.n_out
                owned[key] = [False] * p.node.n_out
            slots[p.index], owned[key][p.index] = add_grads(slots[p.index], g, owned[key][p.index])
        if not retain_graph:
            node.vjp, node.parents = None, ()
