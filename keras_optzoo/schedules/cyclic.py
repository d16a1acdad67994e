"""Cyclical schedules, stepped per batch: CyclicLR and OneCycleLR.

Both also move the momentum (SGD ``momentum``, Adam ``beta_1``) inversely to
the learning rate when ``cycle_momentum=True``; ``momentum_schedule()``
returns that sequence as a schedule of its own (a :class:`CycleMomentum`),
to pass as the optimizer's ``momentum=`` or ``beta_1=``.

**CyclicLR** (step ``s``, ``L = step_size_up + step_size_down``): with
``r = s mod L``, the position ``p = r / step_size_up`` while ``r <=
step_size_up`` and ``p = (L - r) / step_size_down`` after (0 -> 1 -> 0 over
a cycle), and the scale ``k``:

* ``triangular``:  ``k = 1``
* ``triangular2``: ``k = 2 ** -(floor(s / L))`` (halved every cycle)
* ``exp_range``:   ``k = gamma ** s``
* custom:          ``k = scale_fn(floor(s / L) + 1)`` (``scale_mode='cycle'``)
  or ``scale_fn(s)`` (``'iterations'``)

``lr = base_lr + (max_lr - base_lr) * p * k`` and ``momentum = max_momentum
- (max_momentum - base_momentum) * p * k``.

**OneCycleLR** (``N = total_steps``, ``a = pct_start * N - 1``): the step,
held at ``N - 1``, falls in a phase ``[start, end]`` and moves at ``x =
(s - start) / (end - start)`` from the phase's first to its last value by
``anneal(u, v, x) = v + (u - v) * (1 + cos(pi x)) / 2`` (``cos``) or ``u +
(v - u) x`` (``linear``). With ``lr_0 = max_lr / div_factor`` and ``lr_min =
lr_0 / final_div_factor``:

* two phases: ``[0, a]`` ``lr_0 -> max_lr``, then ``[a, N - 1]``
  ``max_lr -> lr_min``; momentum ``max -> base``, then ``base -> max``.
* ``three_phase``: ``[0, a]`` ``lr_0 -> max_lr``, ``[a, 2a]`` ``max_lr ->
  lr_0``, ``[2a, N - 1]`` ``lr_0 -> lr_min``; momentum ``max -> base -> max
  -> max``.

A step belongs to the first phase whose end it does not exceed (torch's
rule), so the boundary step ``a`` (when whole) closes the first phase.
"""

import math

from keras import ops

from keras_optzoo.schedules import base


def _check_momentum(name, value):
    return base.check_real(name, value, low=0.0, high=1.0)


class _CycleSchedule(base.Schedule):
    """What the two cyclical schedules share: the momentum sequence."""

    def momentum_schedule(self):
        """The momentum sequence torch writes into the optimizer, as a
        schedule: pass it as SGD's ``momentum=`` or Adam's ``beta_1=``."""
        if not self.cycle_momentum:
            raise ValueError(
                f"{type(self).__name__}.momentum_schedule() needs "
                "`cycle_momentum=True`. Received: cycle_momentum=False"
            )
        return CycleMomentum(self)


@base.register
class CyclicLR(_CycleSchedule):
    """Cyclical learning rate between ``base_lr`` and ``max_lr``, per batch.

    torch's ``torch.optim.lr_scheduler.CyclicLR``: the learning rate climbs
    from ``base_lr`` towards ``max_lr`` in ``step_size_up`` steps and comes
    back in ``step_size_down``; the amplitude is scaled by ``mode`` (or
    ``scale_fn``). See the module docstring for the formulas.

    Args:
        base_lr: Float >= 0. Lower learning rate of the cycle (and the
            learning rate of step 0).
        max_lr: Float >= 0. Upper learning rate (reached only with scale 1).
        step_size_up: Int >= 1. Steps of the rising half. Defaults to
            `2000`.
        step_size_down: Int >= 0 or None. Steps of the falling half; None
            uses `step_size_up`. Defaults to `None`.
        mode: One of `"triangular"`, `"triangular2"`, `"exp_range"`.
            Ignored when `scale_fn` is given. Defaults to `"triangular"`.
        gamma: Float > 0. Base of the `exp_range` scale `gamma ** step`.
            Defaults to `1.0`.
        scale_fn: None or a traceable function (see :class:`LambdaLR`) of the
            cycle number (from 1) or the step, returning a scale in [0, 1].
            To save the schedule it must be a registered serializable
            function. Defaults to `None`.
        scale_mode: `"cycle"` or `"iterations"`: what `scale_fn` receives.
            Defaults to `"cycle"`.
        cycle_momentum: Bool. Whether :meth:`momentum_schedule` is
            available. Defaults to `True`.
        base_momentum: Float in [0, 1]. Momentum at the peak learning rate.
            Defaults to `0.8`.
        max_momentum: Float in [0, 1]. Momentum at `base_lr`. Defaults to
            `0.9`.

    References:
        Smith, "Cyclical Learning Rates for Training Neural Networks",
        WACV 2017, https://arxiv.org/abs/1506.01186
    """

    _config_keys = (
        "base_lr",
        "max_lr",
        "step_size_up",
        "step_size_down",
        "mode",
        "gamma",
        "scale_fn",
        "scale_mode",
        "cycle_momentum",
        "base_momentum",
        "max_momentum",
    )

    def __init__(
        self,
        base_lr,
        max_lr,
        step_size_up=2000,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode="cycle",
        cycle_momentum=True,
        base_momentum=0.8,
        max_momentum=0.9,
    ):
        self.base_lr = base.check_learning_rate(base_lr, "base_lr")
        self.max_lr = base.check_learning_rate(max_lr, "max_lr")
        self.step_size_up = base.check_int("step_size_up", step_size_up, 1)
        if step_size_down is not None:
            step_size_down = base.check_int(
                "step_size_down", step_size_down, 0
            )
        self.step_size_down = step_size_down
        self.mode = base.check_choice(
            "mode", mode, ("triangular", "triangular2", "exp_range")
        )
        self.gamma = base.check_real("gamma", gamma, low=0.0, low_open=True)
        if scale_fn is not None:
            scale_fn = base.check_traceable(
                "scale_fn", base.deserialize_function(scale_fn)
            )
        self.scale_fn = scale_fn
        self.scale_mode = base.check_choice(
            "scale_mode", scale_mode, ("cycle", "iterations")
        )
        self.cycle_momentum = base.check_bool("cycle_momentum", cycle_momentum)
        self.base_momentum = _check_momentum("base_momentum", base_momentum)
        self.max_momentum = _check_momentum("max_momentum", max_momentum)

    @property
    def initial_learning_rate(self):
        """The learning rate of step 0 (torch's ``base_lrs``)."""
        return self.base_lr

    def _position_and_scale(self, step):
        up = self.step_size_up
        down = up if self.step_size_down is None else self.step_size_down
        length = up + down
        within = base.to_float(ops.mod(step, length))
        completed = base.to_float(ops.floor_divide(step, length))
        position = ops.where(
            within <= up, within / up, (length - within) / max(down, 1)
        )
        if self.scale_fn is not None:
            if self.scale_mode == "cycle":
                argument = completed + 1.0
            else:
                argument = base.to_float(step)
            scale = ops.cast(self.scale_fn(argument), "float32")
        elif self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = base.int_power(0.5, completed)
        else:
            scale = base.int_power(self.gamma, base.to_float(step))
        return position * scale

    def _value(self, step):
        height = self._position_and_scale(step)
        return self.base_lr + (self.max_lr - self.base_lr) * height

    def _momentum(self, step):
        height = self._position_and_scale(step)
        spread = self.max_momentum - self.base_momentum
        return self.max_momentum - spread * height

    def get_config(self):
        config = super().get_config()
        config["scale_fn"] = base.serialize_function(
            "CyclicLR", "scale_fn", self.scale_fn
        )
        return config


@base.register
class OneCycleLR(_CycleSchedule):
    """The 1cycle policy: warm up to ``max_lr``, then anneal far below.

    torch's ``torch.optim.lr_scheduler.OneCycleLR``, stepped per batch; see
    the module docstring for the phases. The length is ``total_steps``, or
    ``epochs * steps_per_epoch`` when ``total_steps`` is None.

    Differs from torch past the end: torch extrapolates the last phase at
    step ``total_steps`` (with ``cos``, back up to the value of step
    ``total_steps - 2``) and raises a ``ValueError`` after it; here every step
    from ``total_steps - 1`` on returns the final value (the one of step
    ``total_steps - 1``, ``max_lr / div_factor / final_div_factor`` unless
    ``pct_start == 1``). torch divides by zero (at construction) when
    ``pct_start * total_steps == 1``; that raises a ``ValueError`` here.

    Args:
        max_lr: Float >= 0. Peak learning rate.
        total_steps: Int >= 1 or None. Steps in the cycle. Defaults to
            `None`.
        epochs: Int >= 1 or None. With `steps_per_epoch`, gives
            `total_steps` when that is None. Defaults to `None`.
        steps_per_epoch: Int >= 1 or None. See `epochs`. Defaults to
            `None`.
        pct_start: Float in [0, 1]. Fraction of the cycle spent warming up.
            Defaults to `0.3`.
        anneal_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        cycle_momentum: Bool. Whether :meth:`momentum_schedule` is
            available. Defaults to `True`.
        base_momentum: Float in [0, 1]. Momentum at the peak learning rate.
            Defaults to `0.85`.
        max_momentum: Float in [0, 1]. Momentum at the start and the end.
            Defaults to `0.95`.
        div_factor: Float > 0. `max_lr / div_factor` is the learning rate
            of step 0. Defaults to `25.0`.
        final_div_factor: Float > 0. The final learning rate is the initial
            one divided by this. Defaults to `1e4`.
        three_phase: Bool. Anneal back to the initial rate before the final
            annihilation (the paper's schedule) instead of the fastai two
            phases. Defaults to `False`.

    References:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural
        Networks Using Large Learning Rates", 2017,
        https://arxiv.org/abs/1708.07120
    """

    _config_keys = (
        "max_lr",
        "total_steps",
        "epochs",
        "steps_per_epoch",
        "pct_start",
        "anneal_strategy",
        "cycle_momentum",
        "base_momentum",
        "max_momentum",
        "div_factor",
        "final_div_factor",
        "three_phase",
    )

    def __init__(
        self,
        max_lr,
        total_steps=None,
        epochs=None,
        steps_per_epoch=None,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
    ):
        self.max_lr = base.check_learning_rate(max_lr, "max_lr")
        if total_steps is not None:
            total_steps = base.check_int("total_steps", total_steps, 1)
        if epochs is not None:
            epochs = base.check_int("epochs", epochs, 1)
        if steps_per_epoch is not None:
            steps_per_epoch = base.check_int(
                "steps_per_epoch", steps_per_epoch, 1
            )
        if total_steps is None and (epochs is None or steps_per_epoch is None):
            raise ValueError(
                "OneCycleLR needs `total_steps`, or both `epochs` and "
                f"`steps_per_epoch`. Received: total_steps={total_steps}, "
                f"epochs={epochs}, steps_per_epoch={steps_per_epoch}"
            )
        self.total_steps = total_steps
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.pct_start = base.check_real(
            "pct_start", pct_start, low=0.0, high=1.0
        )
        self.anneal_strategy = base.check_choice(
            "anneal_strategy", anneal_strategy, ("cos", "linear")
        )
        self.cycle_momentum = base.check_bool("cycle_momentum", cycle_momentum)
        self.base_momentum = _check_momentum("base_momentum", base_momentum)
        self.max_momentum = _check_momentum("max_momentum", max_momentum)
        self.div_factor = base.check_real(
            "div_factor", div_factor, low=0.0, low_open=True
        )
        self.final_div_factor = base.check_real(
            "final_div_factor", final_div_factor, low=0.0, low_open=True
        )
        self.three_phase = base.check_bool("three_phase", three_phase)
        steps = self.length
        if float(self.pct_start * steps) - 1 == 0:
            raise ValueError(
                "Argument `pct_start` times the number of steps must not be "
                "1 (the warm-up would have zero length, torch divides by "
                f"zero). Received: pct_start={self.pct_start:g}, "
                f"total steps={steps}"
            )

    @property
    def length(self):
        """The number of steps of the cycle."""
        if self.total_steps is not None:
            return self.total_steps
        return self.epochs * self.steps_per_epoch

    @property
    def initial_learning_rate(self):
        """The learning rate of step 0, ``max_lr / div_factor``."""
        return self.max_lr / self.div_factor

    def _phases(self, lr=True):
        """``(end_step, start_value, end_value)`` per phase, as torch."""
        initial = self.initial_learning_rate
        if lr:
            low, high = initial, self.max_lr
            final = initial / self.final_div_factor
        else:
            low, high = self.max_momentum, self.base_momentum
            final = self.max_momentum
        warm_end = float(self.pct_start * self.length) - 1
        last = float(self.length - 1)
        if self.three_phase:
            return [
                (warm_end, low, high),
                (float(2 * self.pct_start * self.length) - 2, high, low),
                (last, low, final),
            ]
        return [(warm_end, low, high), (last, high, final)]

    def _anneal(self, start, end, offset, span):
        """From ``start`` to ``end`` at fraction ``offset / span``."""
        if self.anneal_strategy == "cos":
            to_start, to_end = base.cosine_weights(offset, span)
        else:
            to_start, to_end = base.linear_weights(offset, span)
        return start * to_start + end * to_end

    def _interpolate(self, step, phases):
        step = base.to_float(ops.minimum(step, self.length - 1))
        value = None
        for index in reversed(range(len(phases))):
            end, start_value, end_value = phases[index]
            begin = phases[index - 1][0] if index > 0 else 0.0
            # Unselected lanes may have an empty span: keep them finite.
            span = end - begin if end != begin else 1.0
            here = self._anneal(start_value, end_value, step - begin, span)
            if value is None:
                value = here
            else:
                # torch: the first phase whose end the step does not exceed.
                value = ops.where(step <= math.floor(end), here, value)
        return value

    def _value(self, step):
        return self._interpolate(step, self._phases(lr=True))

    def _momentum(self, step):
        return self._interpolate(step, self._phases(lr=False))


@base.register
class CycleMomentum(base.Schedule):
    """The momentum sequence of a :class:`CyclicLR` or :class:`OneCycleLR`.

    Made by their ``momentum_schedule()``; a schedule in its own right, so
    it can be given to an optimizer's ``momentum=`` (SGD) or ``beta_1=``
    (Adam family) and saved with it. It reproduces what torch's scheduler
    writes into ``param_groups[0]['momentum']`` or ``['betas'][0]``: the
    value used by update ``k`` is ``momentum(k)``.

    Args:
        schedule: The `CyclicLR` or `OneCycleLR` (with
            `cycle_momentum=True`) whose momentum to follow.
    """

    _config_keys = ("schedule",)

    def __init__(self, schedule):
        schedule = base.check_schedule("schedule", schedule)
        if not isinstance(schedule, _CycleSchedule):
            raise TypeError(
                "Argument `schedule` must be a CyclicLR or OneCycleLR. "
                f"Received: schedule={schedule!r}"
            )
        if not schedule.cycle_momentum:
            raise ValueError(
                "Argument `schedule` must have `cycle_momentum=True`. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule

    def _value(self, step):
        return self.schedule._momentum(step)

    def get_config(self):
        return {"schedule": base.serialize_schedule(self.schedule)}
