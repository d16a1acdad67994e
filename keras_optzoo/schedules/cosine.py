"""Cosine annealing, with and without warm restarts.

With ``e = floor(step / steps_per_epoch)``, ``eta_0`` the initial learning
rate and ``c(x) = (1 + cos(pi x)) / 2`` (1 at ``x = 0``, 0 at ``x = 1``):

* ``CosineAnnealingLR``: ``eta(e) = eta_min + (eta_0 - eta_min) * c(e / T)``
  with ``T = T_max``, for every ``e``: the curve goes down to ``eta_min`` at
  epoch ``T``, back up to ``eta_0`` at ``2T``, and so on (period ``2T``).

  torch defines this schedule recursively (each value from the previous
  one). Telescoping its ratio step ``(eta_e - eta_min) / (eta_{e-1} -
  eta_min) = (1 + cos(pi e / T)) / (1 + cos(pi (e - 1) / T))``, together
  with its special additive step at ``e = T + 1 (mod 2T)`` (where that ratio
  would divide by 0), gives exactly the formula above at every epoch: torch
  keeps cycling after ``T_max`` rather than holding ``eta_min``. It is
  evaluated here from ``d = distance of e to the nearest multiple of 2T``,
  computed exactly in the step's integer dtype, so huge steps land on the
  right point of the period.

* ``CosineAnnealingWarmRestarts``: ``eta(e) = eta_min + (eta_0 - eta_min) *
  c(t / T_i)`` where cycle ``i`` (from 0) lasts ``T_i = T_0 * T_mult ** i``
  epochs and ``t`` is the epoch within it. Cycle ``i`` starts at epoch
  ``T_0 * i`` when ``T_mult == 1``, and at ``T_0 * (T_mult ** i - 1) /
  (T_mult - 1)`` otherwise. ``t < T_i`` always, so ``eta_min`` itself is
  never reached: the epoch after ``t = T_i - 1`` restarts at ``eta_0``.
"""

import math

from keras import ops

from keras_optzoo.schedules import base


def _check_eta_min(eta_min):
    return base.check_real("eta_min", eta_min, low=0.0)


def _anneal(eta_0, eta_min, position, length):
    to_start, to_end = base.cosine_weights(position, length)
    return eta_0 * to_start + eta_min * to_end


@base.register
class CosineAnnealingLR(base.Schedule):
    """Cosine annealing from ``initial_learning_rate`` to ``eta_min``.

    ``lr = eta_min + (initial_learning_rate - eta_min) * (1 + cos(pi * e /
    T_max)) / 2`` at every epoch ``e``, i.e. down in ``T_max`` epochs and
    back up in the next ``T_max`` (period ``2 * T_max``): the sequence of
    torch's (recursive) ``torch.optim.lr_scheduler.CosineAnnealingLR``. Use
    it inside a :class:`SequentialLR` with a constant last child to hold the
    minimum instead.

    Args:
        initial_learning_rate: Float >= 0, the learning rate of epoch 0.
        T_max: Int >= 1. Epochs from the maximum to the minimum.
        eta_min: Float >= 0. Minimum learning rate. Defaults to `0.0`.
        {steps_per_epoch}
    """

    _config_keys = (
        "initial_learning_rate",
        "T_max",
        "eta_min",
        "steps_per_epoch",
    )

    def __init__(
        self, initial_learning_rate, T_max, eta_min=0.0, steps_per_epoch=1
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.T_max = base.check_int("T_max", T_max, low=1)
        self.eta_min = _check_eta_min(eta_min)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.epoch_of(step, self.steps_per_epoch)
        period = 2 * self.T_max
        phase = ops.mod(epoch, period)
        distance = base.to_float(ops.minimum(phase, period - phase))
        return _anneal(
            self.initial_learning_rate, self.eta_min, distance, self.T_max
        )


@base.register
class CosineAnnealingWarmRestarts(base.Schedule):
    """Cosine annealing restarted every ``T_0 * T_mult ** i`` epochs (SGDR).

    Within cycle ``i`` of ``T_i = T_0 * T_mult ** i`` epochs, ``lr = eta_min
    + (initial_learning_rate - eta_min) * (1 + cos(pi * t / T_i)) / 2`` with
    ``t`` the epoch within the cycle; torch's
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`` stepped once per
    epoch. (torch also accepts a fractional epoch in ``step(epoch)`` for
    per-batch annealing; here use ``steps_per_epoch=1`` and count ``T_0`` in
    steps for that.)

    Args:
        initial_learning_rate: Float >= 0, the learning rate at each
            restart.
        T_0: Int >= 1. Epochs of the first cycle.
        T_mult: Int >= 1. Growth factor of the cycle length. Defaults to
            `1`.
        eta_min: Float >= 0. Minimum learning rate. Defaults to `0.0`.
        {steps_per_epoch}

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017, https://arxiv.org/abs/1608.03983
    """

    _config_keys = (
        "initial_learning_rate",
        "T_0",
        "T_mult",
        "eta_min",
        "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        T_0,
        T_mult=1,
        eta_min=0.0,
        steps_per_epoch=1,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.T_0 = base.check_int("T_0", T_0, low=1)
        self.T_mult = base.check_int("T_mult", T_mult, low=1)
        self.eta_min = _check_eta_min(eta_min)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _cycle_start(self, cycle):
        """First epoch of each cycle in ``cycle`` (float32, whole numbers)."""
        grown = base.int_power(float(self.T_mult), cycle)
        return ops.round(self.T_0 * (grown - 1.0) / (self.T_mult - 1))

    def _value(self, step):
        epoch = base.epoch_of(step, self.steps_per_epoch)
        if self.T_mult == 1:
            within = base.to_float(ops.mod(epoch, self.T_0))
            length = float(self.T_0)
        else:
            epoch = base.to_float(epoch)
            ratio = epoch * ((self.T_mult - 1) / self.T_0) + 1.0
            cycle = ops.floor(ops.log(ratio) / math.log(self.T_mult))
            # The log can land a hair off an integer at a cycle boundary:
            # move to the cycle whose [start, next start) holds the epoch.
            cycle = ops.where(
                self._cycle_start(cycle) > epoch, cycle - 1.0, cycle
            )
            cycle = ops.where(
                self._cycle_start(cycle + 1.0) <= epoch, cycle + 1.0, cycle
            )
            within = epoch - self._cycle_start(cycle)
            length = ops.round(
                self.T_0 * base.int_power(float(self.T_mult), cycle)
            )
        return _anneal(
            self.initial_learning_rate, self.eta_min, within, length
        )
