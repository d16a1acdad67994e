"""A warm-up in front of any learning-rate schedule."""

from keras import ops

from keras_optzoo import param_groups
from keras_optzoo.schedules import base

_MODES = ("linear", "cosine", "1-sqrt", "constant")


@base.register
class WithWarmup(base.Schedule):
    """A warm-up of ``warmup_steps`` steps in front of ``schedule``.

    Made by :func:`with_warmup`, which documents it.
    """

    _config_keys = (
        "schedule",
        "warmup_steps",
        "start_factor",
        "mode",
        "start_after_warmup",
    )

    def __init__(
        self,
        schedule,
        warmup_steps,
        start_factor=0.0,
        mode="linear",
        start_after_warmup=True,
    ):
        self.schedule = base.check_schedule("schedule", schedule)
        self.warmup_steps = base.check_int("warmup_steps", warmup_steps, low=0)
        self.start_factor = base.check_real(
            "start_factor", start_factor, low=0.0, high=1.0
        )
        self.mode = base.check_choice("mode", mode, _MODES)
        self.start_after_warmup = base.check_bool(
            "start_after_warmup", start_after_warmup
        )

    @property
    def initial_learning_rate(self):
        """The wrapped schedule's (for ChainedScheduler), if it has one."""
        return getattr(self.schedule, "initial_learning_rate", None)

    @property
    def base_learning_rate(self):
        """The wrapped schedule's base rate: the warm-up is a factor in
        front of it, as torch's ``SequentialLR([LinearLR, X])``."""
        return param_groups.base_learning_rate(self.schedule)

    def _inner(self, step):
        return ops.cast(self.schedule(step), "float32")

    def _value(self, step):
        warmup = self.warmup_steps
        if warmup == 0:
            return self._inner(step)
        if self.start_after_warmup:
            target = self._inner(ops.zeros_like(step))
            after = self._inner(ops.maximum(step - warmup, 0))
        else:
            target = self._inner(ops.full_like(step, warmup))
            after = self._inner(step)
        done = base.to_float(ops.minimum(step, warmup))
        if self.mode == "linear":
            ramp = done / warmup
        elif self.mode == "cosine":
            ramp = base.cosine_weights(done, float(warmup))[1]
        elif self.mode == "1-sqrt":
            # 1 - sqrt(1 - x) = x / (1 + sqrt(1 - x)), no cancellation
            left = (warmup - done) / warmup
            ramp = (done / warmup) / (1.0 + ops.sqrt(left))
        else:
            ramp = ops.zeros_like(done)
        factor = self.start_factor + (1.0 - self.start_factor) * ramp
        return ops.where(step < warmup, target * factor, after)

    def get_config(self):
        config = super().get_config()
        config["schedule"] = base.serialize_schedule(self.schedule)
        return config


def with_warmup(
    schedule,
    warmup_steps,
    start_factor=0.0,
    mode="linear",
    start_after_warmup=True,
):
    """Puts a warm-up of ``warmup_steps`` steps in front of ``schedule``.

    For optimizer step ``s < warmup_steps`` the learning rate is ``target *
    (start_factor + (1 - start_factor) * f(s / warmup_steps))``, rising from
    ``start_factor * target`` to ``target``, the value ``schedule`` takes
    right after the warm-up, so the curve joins it without a jump. ``f`` is
    the `mode` curve from 0 to 1: ``"linear"`` ``x``, ``"cosine"`` ``(1 -
    cos(pi x)) / 2``, ``"1-sqrt"`` ``1 - sqrt(1 - x)`` (transformers' WSD
    warm-up curves, whose ``min_lr_ratio`` is `start_factor` here), or
    ``"constant"`` ``0`` (a flat ``start_factor * target``, torch's
    ``ConstantLR``). From step ``warmup_steps`` on the rate is
    ``schedule``'s.

    `start_after_warmup` says which step ``schedule`` sees:

    * ``True`` (the default; torch's ``SequentialLR`` convention, where the
      scheduler after a milestone restarts at its own step 0): ``schedule(s
      - warmup_steps)``, so the whole of ``schedule`` runs after the
      warm-up and ``target = schedule(0)``. ``with_warmup(X, W,
      start_factor=f)`` then equals torch's ``SequentialLR(optimizer,
      [LinearLR(optimizer, start_factor=f, total_iters=W), X],
      milestones=[W])`` when ``X`` starts at the optimizer's learning rate
      (and ``mode="constant"`` equals it with ``ConstantLR(optimizer,
      factor=f, total_iters=W)``).
    * ``False``: ``schedule(s)`` on the optimizer's own step, so the warm-up
      replaces the first `warmup_steps` steps of ``schedule`` and
      ``target = schedule(warmup_steps)``; for schedules defined on the
      global step (an inverse square root, a decay to a fixed end step).

    Args:
        schedule: Any `keras.optimizers.schedules.LearningRateSchedule`
            (keras-optzoo's or Keras's own), or its serialized config.
        warmup_steps: Int >= 0. Steps of the warm-up; `0` returns
            `schedule`'s values unchanged.
        start_factor: Float in [0, 1]. The first step's learning rate as a
            fraction of `target`. Defaults to `0.0`.
        mode: `"linear"`, `"cosine"`, `"1-sqrt"` or `"constant"`. Defaults
            to `"linear"`.
        start_after_warmup: Bool. Whether `schedule`'s step 0 comes after
            the warm-up (see above). Defaults to `True`.

    Returns:
        A :class:`WithWarmup` schedule: serializable (`get_config`, `.keras`
        files need no `custom_objects`, also around Keras's schedules) and
        a closed form of the step like every keras-optzoo schedule.
    """
    return WithWarmup(
        schedule,
        warmup_steps,
        start_factor=start_factor,
        mode=mode,
        start_after_warmup=start_after_warmup,
    )
