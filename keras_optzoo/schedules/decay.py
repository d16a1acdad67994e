"""Decay schedules: step, multi-step, exponential and polynomial.

With ``e = floor(step / steps_per_epoch)`` and ``eta_0`` the initial
learning rate:

* ``StepLR``:        ``eta(e) = eta_0 * gamma ** floor(e / step_size)``
* ``MultiStepLR``:   ``eta(e) = eta_0 * gamma ** #{m in milestones: m <= e}``
  (a milestone listed twice counts twice, as in torch)
* ``ExponentialLR``: ``eta(e) = eta_0 * gamma ** e``
* ``PolynomialLR``:  ``eta(e) = eta_0 * (1 - min(e, T) / T) ** power``,
  ``T = total_iters``; 0 from epoch ``T`` on (for ``power > 0``).

torch computes the first three by repeated multiplication and the last by a
ratio of consecutive terms; these are the closed forms of the same
sequences. Powers of ``gamma`` are evaluated with :func:`base.int_power`, so
they stay within a few float32 ulps of torch's float64 values for any epoch
and reach exactly 0 (never NaN) at huge steps.
"""

from keras import ops

from keras_optzoo.schedules import base

def _check_gamma(gamma):
    return base.check_real("gamma", gamma, low=0.0, low_open=True)


@base.register
class StepLR(base.Schedule):
    """Multiplies the learning rate by ``gamma`` every ``step_size`` epochs.

    ``lr = initial_learning_rate * gamma ** floor(e / step_size)``;
    torch's ``torch.optim.lr_scheduler.StepLR``.

    Args:
        initial_learning_rate: Float >= 0, the learning rate of epoch 0.
        step_size: Int >= 1. Epochs between two decays.
        gamma: Float > 0. Decay factor. Defaults to `0.1`.
        {steps_per_epoch}
    """

    _config_keys = (
        "initial_learning_rate",
        "step_size",
        "gamma",
        "steps_per_epoch",
    )

    def __init__(
        self, initial_learning_rate, step_size, gamma=0.1, steps_per_epoch=1
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.step_size = base.check_int("step_size", step_size, low=1)
        self.gamma = _check_gamma(gamma)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.epoch_of(step, self.steps_per_epoch)
        decays = base.to_float(ops.floor_divide(epoch, self.step_size))
        return self.initial_learning_rate * base.int_power(self.gamma, decays)


@base.register
class MultiStepLR(base.Schedule):
    """Multiplies the learning rate by ``gamma`` at each milestone epoch.

    ``lr = initial_learning_rate * gamma ** n(e)`` where ``n(e)`` counts the
    milestones ``<= e`` (repeats count again); torch's
    ``torch.optim.lr_scheduler.MultiStepLR``. The decay applies from the
    milestone epoch itself: with ``milestones=[30]`` epochs 0-29 use
    ``initial_learning_rate`` and epoch 30 the decayed value.

    Args:
        initial_learning_rate: Float >= 0, the learning rate of epoch 0.
        milestones: Sequence of ints >= 0, the epochs where a decay starts.
        gamma: Float > 0. Decay factor. Defaults to `0.1`.
        {steps_per_epoch}
    """

    _config_keys = (
        "initial_learning_rate",
        "milestones",
        "gamma",
        "steps_per_epoch",
    )

    def __init__(
        self, initial_learning_rate, milestones, gamma=0.1, steps_per_epoch=1
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        if isinstance(milestones, (str, bytes)) or not hasattr(
                milestones, "__iter__"):
            raise TypeError(
                "Argument `milestones` must be a sequence of ints >= 0. "
                f"Received: milestones={milestones!r} (of type "
                f"{type(milestones).__name__})"
            )
        self.milestones = [
            base.check_int(f"milestones[{i}]", m, low=0)
            for i, m in enumerate(milestones)
        ]
        self.gamma = _check_gamma(gamma)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.epoch_of(step, self.steps_per_epoch)
        passed = ops.zeros((), dtype="float32")
        for milestone in self.milestones:
            passed = passed + base.to_float(epoch >= milestone)
        return self.initial_learning_rate * base.int_power(self.gamma, passed)


@base.register
class ExponentialLR(base.Schedule):
    """Multiplies the learning rate by ``gamma`` every epoch.

    ``lr = initial_learning_rate * gamma ** e``; torch's
    ``torch.optim.lr_scheduler.ExponentialLR``.

    Args:
        initial_learning_rate: Float >= 0, the learning rate of epoch 0.
        gamma: Float > 0. Factor per epoch (> 1 grows the learning rate).
        {steps_per_epoch}
    """

    _config_keys = ("initial_learning_rate", "gamma", "steps_per_epoch")

    def __init__(self, initial_learning_rate, gamma, steps_per_epoch=1):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.gamma = _check_gamma(gamma)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.to_float(base.epoch_of(step, self.steps_per_epoch))
        return self.initial_learning_rate * base.int_power(self.gamma, epoch)


@base.register
class PolynomialLR(base.Schedule):
    """Polynomial decay to 0 over ``total_iters`` epochs.

    ``lr = initial_learning_rate * (1 - min(e, total_iters) / total_iters)
    ** power``; torch's ``torch.optim.lr_scheduler.PolynomialLR``. The last
    update of the decay is epoch ``total_iters - 1``; from epoch
    ``total_iters`` on the learning rate is 0 (1 when ``power == 0``).

    Args:
        initial_learning_rate: Float >= 0, the learning rate of epoch 0.
        total_iters: Int >= 1. Epochs of decay. Defaults to `5`.
        power: Float >= 0. Exponent of the polynomial. Defaults to `1.0`.
        {steps_per_epoch}
    """

    _config_keys = (
        "initial_learning_rate",
        "total_iters",
        "power",
        "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        total_iters=5,
        power=1.0,
        steps_per_epoch=1,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.total_iters = base.check_int("total_iters", total_iters, low=1)
        self.power = base.check_real("power", power, low=0.0)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.epoch_of(step, self.steps_per_epoch)
        done = base.to_float(ops.minimum(epoch, self.total_iters))
        remaining = (self.total_iters - done) / self.total_iters
        return self.initial_learning_rate * ops.power(remaining, self.power)

