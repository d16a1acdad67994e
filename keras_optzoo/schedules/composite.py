"""Schedules made of schedules: SequentialLR and ChainedScheduler.

Children are any ``keras.optimizers.schedules.LearningRateSchedule`` (the
zoo's or Keras's own), each with its own learning rate and
``steps_per_epoch``.

* ``SequentialLR``: child ``k`` runs from milestone ``m_k`` (``m_0 = 0``) to
  the next one, on its own clock: ``eta(s) = child_k(s - m_k * spe)`` where
  ``spe`` is the SequentialLR's ``steps_per_epoch`` (milestones count its
  epochs) and ``k`` is the number of milestones ``<= s / spe``.
* ``ChainedScheduler``: the children's factors multiply. With ``eta_i(s)``
  child ``i``'s value and ``eta_i^0`` its ``initial_learning_rate``:
  ``eta(s) = eta_0(s) * prod_{i >= 1} eta_i(s) / eta_i^0``; when all
  children share one initial learning rate ``eta^0`` this is ``eta^0`` times
  the product of every child's factor ``eta_i(s) / eta^0``.
"""

import numbers

from keras import ops

from keras_optzoo import param_groups
from keras_optzoo.schedules import base


def _check_children(name, schedules):
    if isinstance(schedules, (str, bytes)) or not hasattr(
        schedules, "__len__"
    ):
        raise TypeError(
            f"Argument `{name}` must be a list of schedules. "
            f"Received: {name}={schedules!r}"
        )
    if len(schedules) < 1:
        raise ValueError(
            f"Argument `{name}` must hold at least one schedule. "
            f"Received: {name}={schedules!r}"
        )
    return [
        base.check_schedule(name, child, index)
        for index, child in enumerate(schedules)
    ]


def _child_value(child, step):
    return ops.cast(child(step), "float32")


class _CompositeSchedule(base.Schedule):
    @property
    def base_learning_rate(self):
        """The first child's base rate (``schedulers[0]``): in torch every
        scheduler of a ``SequentialLR`` or ``ChainedScheduler`` reads the
        same optimizer ``lr``, the one the first child starts from."""
        return param_groups.base_learning_rate(self.schedulers[0])

    def get_config(self):
        config = super().get_config()
        config["schedulers"] = [
            base.serialize_schedule(child) for child in self.schedulers
        ]
        return config


@base.register
class SequentialLR(_CompositeSchedule):
    """Runs ``schedulers[k]`` from ``milestones[k - 1]`` on, restarted.

    Child 0 covers epochs ``[0, milestones[0])``, child ``k`` epochs
    ``[milestones[k - 1], milestones[k])`` and receives the step counted
    from the start of its segment (its first step is 0, as torch's
    ``torch.optim.lr_scheduler.SequentialLR`` restarts the child at epoch
    0). A milestone of 0 skips the children before it; equal milestones
    skip the children between them. Milestones count epochs of
    ``steps_per_epoch`` steps; the children apply their own
    ``steps_per_epoch`` to the steps they receive.

    Corner cases where torch differs:

    * Before 2.13, torch set epoch 0 from ``schedulers[0]`` even when
      ``milestones[0] == 0``, and the child that should run from epoch 0
      then started one step late from that wrong value
      (pytorch/pytorch#185872). torch 2.13 fixes it and agrees with this
      class (tested with milestones ``[0, 4]``).
    * torch does not restart a ``MultiplicativeLR`` child: it keeps
      multiplying the previous child's last learning rate (applying
      ``lr_lambda(0)`` at the milestone). Here every child restarts from its
      own initial learning rate.

    Args:
        schedulers: List of `LearningRateSchedule`s (at least one).
        milestones: Non-decreasing list of ints >= 0, one fewer than
            `schedulers`: the epochs where the next child takes over.
        {steps_per_epoch}
    """

    _config_keys = ("schedulers", "milestones", "steps_per_epoch")

    def __init__(self, schedulers, milestones, steps_per_epoch=1):
        self.schedulers = _check_children("schedulers", schedulers)
        milestones = [
            base.check_int(f"milestones[{i}]", m, low=0)
            for i, m in enumerate(milestones)
        ]
        if len(milestones) != len(self.schedulers) - 1:
            raise ValueError(
                "Argument `milestones` must have one entry fewer than "
                f"`schedulers` ({len(self.schedulers) - 1}). "
                f"Received: milestones={milestones}"
            )
        if any(b < a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(
                "Argument `milestones` must be non-decreasing. "
                f"Received: milestones={milestones}"
            )
        self.milestones = milestones
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        value = _child_value(self.schedulers[0], step)
        for milestone, child in zip(self.milestones, self.schedulers[1:]):
            offset = milestone * self.steps_per_epoch
            here = _child_value(child, ops.maximum(step - offset, 0))
            value = ops.where(step >= offset, here, value)
        return value


@base.register
class ChainedScheduler(_CompositeSchedule):
    """Multiplies the factors of several schedules.

    ``lr(s) = schedulers[0](s) * prod_{i >= 1} schedulers[i](s) /
    schedulers[i].initial_learning_rate``: every child runs on the same
    step and contributes its value relative to its own initial learning
    rate. With children built on one learning rate this is torch's
    ``torch.optim.lr_scheduler.ChainedScheduler`` for the schedulers torch
    updates multiplicatively (ConstantLR, LinearLR, StepLR, MultiStepLR,
    ExponentialLR, PolynomialLR, MultiplicativeLR, and CosineAnnealingLR
    with ``eta_min=0`` up to ``T_max``). torch's LambdaLR, the cosine
    schedules with ``eta_min > 0`` or past ``T_max``, CyclicLR and
    OneCycleLR overwrite the learning rate instead, so there torch's chain
    depends on the children's order and is not a product; this class always
    multiplies.

    Args:
        schedulers: List of `LearningRateSchedule`s (at least one). Every
            child after the first needs an `initial_learning_rate` > 0
            (all zoo schedules have one, as do Keras's decay schedules).
    """

    _config_keys = ("schedulers",)

    def __init__(self, schedulers):
        self.schedulers = _check_children("schedulers", schedulers)
        self._scales = []
        for index, child in enumerate(self.schedulers[1:], start=1):
            initial = getattr(child, "initial_learning_rate", None)
            if (
                isinstance(initial, numbers.Real)
                and not isinstance(initial, bool)
                and initial > 0
            ):
                self._scales.append(1.0 / float(initial))
                continue
            raise ValueError(
                f"Argument `schedulers[{index}]` must have an "
                "`initial_learning_rate` > 0, the base its factor is taken "
                f"against. Received: schedulers[{index}]={child!r} with "
                f"initial_learning_rate={initial!r}"
            )

    def _value(self, step):
        value = _child_value(self.schedulers[0], step)
        for child, scale in zip(self.schedulers[1:], self._scales):
            value = value * (_child_value(child, step) * scale)
        return value
