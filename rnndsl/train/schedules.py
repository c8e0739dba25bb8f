"""Learning-rate schedules of the train block, as the checker resolved them (the arguments and
their defaults come from lang/catalogue.py's SCHEDULES):

    none      the optimizer's learning rate throughout
    step      lr_0 for epochs 1..start (1-based), then times `factor` after every epoch:
              lr_0 * factor ** (epoch - start) (Zaremba et al.'s decay)
    plateau   lr * factor after every `patience` epochs without a better dev metric
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def schedule_of(settings: Any) -> tuple[str, Mapping[str, Any]]:
    """The learning-rate schedule's name and arguments ("none" without one)."""
    sched = settings.schedule
    return (sched.name, sched.args) if sched is not None else ("none", {})


def lr_for_epoch(settings: Any, lr0: float, lr: float, epoch: int) -> float:
    """The learning rate of 0-based ``epoch``: ``lr0`` is the rate the schedule starts from,
    ``lr`` the optimizer's current one (kept by none and plateau)."""
    kind, a = schedule_of(settings)
    if kind == "step":
        return lr0 * float(a["factor"]) ** max(0, epoch + 1 - int(a["start"]))
    return lr


def plateau_lr(settings: Any, lr: float, bad_epochs: int) -> float | None:
    """The decayed rate when a plateau schedule's patience has run out after ``bad_epochs``
    epochs without improvement (0 and 1: at each such epoch), else None."""
    kind, a = schedule_of(settings)
    if kind == "plateau" and bad_epochs % max(1, int(a["patience"])) == 0:
        return lr * float(a["factor"])
    return None


__all__ = ["lr_for_epoch", "plateau_lr", "schedule_of"]
