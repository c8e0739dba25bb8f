"""The learning-rate schedules (train/schedules.py) with the arguments the checker resolves."""

from types import SimpleNamespace

import pytest

from rnndsl.lang.values import FuncValue
from rnndsl.train import schedules


def settings(name=None, **args):
    return SimpleNamespace(schedule=None if name is None else FuncValue(name, args))


def test_step_multiplies_from_its_start_epoch_on():
    s = settings("step", start=3, factor=0.5)
    rates = [schedules.lr_for_epoch(s, 1.0, 1.0, epoch) for epoch in range(5)]
    # epochs 1..5: the rate decays after epoch `start`, so epoch 4 is the first at lr_0 * 0.5
    assert rates == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.25])


def test_none_and_plateau_keep_the_current_rate_per_epoch():
    for s in (settings(), settings("plateau", factor=0.5, patience=2)):
        assert schedules.lr_for_epoch(s, 1.0, 0.3, 7) == 0.3


def test_plateau_decays_after_each_patience_run_of_bad_epochs():
    s = settings("plateau", factor=0.1, patience=2)
    assert schedules.plateau_lr(s, 1.0, 1) is None
    assert schedules.plateau_lr(s, 1.0, 2) == pytest.approx(0.1)
    assert schedules.plateau_lr(settings("plateau", factor=0.5, patience=0), 1.0, 1) == 0.5
    assert schedules.plateau_lr(settings(), 1.0, 4) is None
