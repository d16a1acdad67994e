"""Warm-up schedules: a constant or a linear factor for the first epochs.

With ``e = floor(step / steps_per_epoch)``, ``eta_0`` the initial learning
rate and ``T = total_iters``:

* ``ConstantLR``: ``eta(e) = eta_0 * factor`` for ``e < T``, ``eta_0`` after.
* ``LinearLR``:   ``eta(e) = eta_0 * (s + (f - s) * min(e, T) / T)``, the
  factor moving linearly from ``s = start_factor`` at epoch 0 to
  ``f = end_factor`` at epoch ``T`` and staying there.

Both are usually the first child of a :class:`SequentialLR` or a factor in a
:class:`ChainedScheduler`.
"""

from keras import ops

from keras_optzoo.schedules import base


@base.register
class ConstantLR(base.Schedule):
    """A constant factor for the first ``total_iters`` epochs.

    ``lr = initial_learning_rate * factor`` while ``e < total_iters``, then
    ``initial_learning_rate``; torch's
    ``torch.optim.lr_scheduler.ConstantLR``.

    Differs from torch for ``total_iters=0``: torch's recursive update
    multiplies by ``factor`` at epoch 0 and never restores it (its own
    closed form, used by ``step(epoch)``, gives ``initial_learning_rate``);
    here the factor is simply never applied. With ``factor=0`` torch
    divides by zero at epoch ``total_iters``; here the learning rate is 0
    before it and ``initial_learning_rate`` from it on.

    Args:
        initial_learning_rate: Float >= 0, the learning rate after the
            constant phase.
        factor: Float in [0, 1]. Factor of the first epochs. Defaults to
            `1/3`.
        total_iters: Int >= 0. Number of epochs at the reduced rate.
            Defaults to `5`.
        {steps_per_epoch}
    """

    _config_keys = (
        "initial_learning_rate",
        "factor",
        "total_iters",
        "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        factor=1.0 / 3,
        total_iters=5,
        steps_per_epoch=1,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.factor = base.check_real("factor", factor, low=0.0, high=1.0)
        self.total_iters = base.check_int("total_iters", total_iters, low=0)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.epoch_of(step, self.steps_per_epoch)
        factor = ops.where(epoch < self.total_iters, self.factor, 1.0)
        return self.initial_learning_rate * factor


@base.register
class LinearLR(base.Schedule):
    """A factor moving linearly from ``start_factor`` to ``end_factor``.

    ``lr = initial_learning_rate * (start_factor + (end_factor -
    start_factor) * min(e, total_iters) / total_iters)``; torch's
    ``torch.optim.lr_scheduler.LinearLR``. Epoch 0 uses ``start_factor``,
    epoch ``total_iters`` and later use ``end_factor``.

    Args:
        initial_learning_rate: Float >= 0, the learning rate at factor 1.
        start_factor: Float in (0, 1]. Factor of epoch 0. Defaults to `1/3`.
        end_factor: Float in [0, 1]. Factor from epoch `total_iters` on.
            Defaults to `1.0`.
        total_iters: Int >= 1. Epochs of the linear ramp. Defaults to `5`.
        {steps_per_epoch}
    """

    _config_keys = (
        "initial_learning_rate",
        "start_factor",
        "end_factor",
        "total_iters",
        "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        start_factor=1.0 / 3,
        end_factor=1.0,
        total_iters=5,
        steps_per_epoch=1,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.start_factor = base.check_real(
            "start_factor", start_factor, low=0.0, high=1.0, low_open=True
        )
        self.end_factor = base.check_real(
            "end_factor", end_factor, low=0.0, high=1.0
        )
        self.total_iters = base.check_int("total_iters", total_iters, low=1)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.epoch_of(step, self.steps_per_epoch)
        done = base.to_float(ops.minimum(epoch, self.total_iters))
        to_start, to_end = base.linear_weights(done, self.total_iters)
        factor = self.start_factor * to_start + self.end_factor * to_end
        return self.initial_learning_rate * factor
