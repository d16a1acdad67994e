"""timm's learning-rate schedulers as pure Keras 3 schedules.

``CosineLRScheduler``, ``TanhLRScheduler``, ``PolyLRScheduler``,
``StepLRScheduler`` and ``MultiStepLRScheduler`` take the arguments of the
timm (1.0.31) classes of the same names in ``timm.scheduler``, plus
``initial_learning_rate`` first (timm reads it from the optimizer's ``lr``)
and ``steps_per_epoch`` last, and give timm's learning rate at every
optimizer step as a closed ``keras.ops`` form of the step.

**Which t.** timm counts time ``t`` in epochs (``t_in_epochs=True``, the
default; the training loop calls ``scheduler.step(epoch)``) or in optimizer
updates (``t_in_epochs=False``; ``scheduler.step_update(num_updates)``
after each update). timm's loop sets the rate for time ``t`` at the end of
``t - 1``: ``step(epoch + 1)`` after an epoch, ``step_update(n)`` after the
``n``-th update. Here optimizer step ``s`` (the number of updates already
applied) has ``t = floor(s / steps_per_epoch)`` with ``t_in_epochs=True``
(the convention of this package's torch schedules) and ``t = s`` with
``t_in_epochs=False``, and the rate is what timm's ``step(t)`` /
``step_update(t)`` writes into the param group; at ``t = 0``, where timm's
loop makes no call, it is the value timm's constructor leaves there:
``warmup_lr_init`` with a warm-up, else the base rate (without a warm-up
the two differ only for ``TanhLRScheduler``, whose formula at 0 is
``lr_min + (lr - lr_min) (1 - tanh(lb)) / 2``, and a
``MultiStepLRScheduler`` with a milestone <= 1).

**The formulas** (``eta`` the base rate, ``W = warmup_t``): for ``t < W``
the warm-up ``warmup_lr_init + t (target - warmup_lr_init) / W`` (``target
= eta``; for ``TanhLRScheduler`` without ``warmup_prefix`` the tanh
curve's value at ``W``). Then, with ``t' = t - W`` when ``warmup_prefix``
else ``t``, cycle ``i`` of length ``t_i = t_initial cycle_mul**i`` starting
at ``t_initial (cycle_mul**i - 1) / (cycle_mul - 1)`` (``i t_initial`` for
``cycle_mul == 1``), ``x = (t' - start) / t_i``, ``eta_i = eta
cycle_decay**i``: cosine ``lr_min + (eta_i - lr_min) (1 + cos(pi x**k)) /
2``; tanh ``lr_min + (eta_i - lr_min) (1 - tanh(lb (1 - x) + ub x)) / 2``;
poly ``lr_min + (eta_i - lr_min) (1 - x**k)**power`` (``k = k_decay``), and
``lr_min`` from cycle ``cycle_limit`` on. Step: ``eta decay_rate **
floor(t' / decay_t)``; multi-step: ``eta decay_rate ** #{m in decay_t: m
<= t' + 1}`` (timm's milestone ``m`` takes effect at ``t' = m - 1``, one
earlier than torch's MultiStepLR).

**Exactly timm's decisions.** timm computes in float64 Python; the values
here are float32, but every discrete decision is timm's own: the cycle
index for ``cycle_mul != 1`` comes from timm's ``floor(log(...))``
expression, evaluated at construction (in the same float64 arithmetic) to
find the first step of each cycle, and the step decays for a non-integer
``decay_t`` from timm's float ``t // decay_t`` the same way; the step
arithmetic in the graph is exact integer arithmetic in the step's dtype.
Both weights of each interpolation are computed from the distance to the
nearer end of the cycle, so values stay accurate to a few float32 ulps of
the larger of the two rates they mix
(``benchmarks/timm_schedule_deviation.py`` prints the deviation per
backend).

**Noise.** With ``noise_range_t=(start, end)`` timm multiplies the rate of
each ``t`` in ``[start, end)`` by ``1 + n_t``, ``n_t`` the first
``torch.randn(1) * noise_std`` below ``noise_pct`` in magnitude drawn from
a ``torch.Generator`` seeded with ``noise_seed + t``. Those numbers are
computed once per schedule (without torch: ``_torch_noise.py`` reproduces
torch's CPU generator bit for bit) into a table over the range, looked up
in the graph. timm also accepts one number ``n`` meaning every ``t >= n``;
a table cannot be infinite, so pass the pair ``(n, end)`` with ``end`` past
the last ``t`` you train: the same values up to ``end``. timm's ``step(0)``
is never called by its loop, so ``t = 0`` is never perturbed.

**Param groups.** ``base_learning_rate`` is ``initial_learning_rate``: a
group's ``"lr_scale"`` multiplies its whole rate, as timm's ``lr_scale``
does, and so does a group's own number ``learning_rate`` ``b`` (by ``b /
initial_learning_rate``); a torch param group with its own ``lr`` would
instead keep ``warmup_lr_init`` and ``lr_min`` absolute in timm.
"""

import math
import numbers

import numpy as np

import keras
from keras import ops

from keras_optzoo.schedules import _torch_noise
from keras_optzoo.schedules import base

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# Boundaries (first steps of cycles or decays) are found up to this step.
_LAST_STEP = 2**53
# Most boundaries one schedule may precompute, and most noise entries.
_MAX_BOUNDARIES = 2**16
_MAX_NOISE = 2**21
# A float32 rate below this is 0 and one above this is inf.
_FLOAT32_ZERO = 2.0**-151
_FLOAT32_INF = 3.5e38


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------


def _check_noise_range(value):
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        raise ValueError(
            "Argument `noise_range_t` as one number means noise at every "
            "t >= noise_range_t in timm; the noise here comes from a table "
            "computed at construction, so give the pair (start, end) with "
            "`end` past the last t you train (the same values up to end). "
            f"Received: noise_range_t={value!r}"
        )
    if (isinstance(value, (str, bytes)) or not hasattr(value, "__len__")
            or len(value) != 2):
        raise TypeError(
            "Argument `noise_range_t` must be None or a pair (start, end) "
            f"of numbers. Received: noise_range_t={value!r}"
        )
    start = base.check_real("noise_range_t[0]", value[0])
    end = base.check_real("noise_range_t[1]", value[1])
    # keep ints as ints (a readable config), anything else as a float
    start, end = [int(v) if isinstance(v, numbers.Integral) else f
                  for v, f in zip(value, (start, end))]
    first, stop = max(1, math.ceil(start)), max(0, math.ceil(end))
    if stop - first > _MAX_NOISE:
        raise ValueError(
            f"Argument `noise_range_t` spans {stop - first} values of t; at "
            f"most {_MAX_NOISE} are supported (the noise is a precomputed "
            "table; with t_in_epochs=True it has one entry per epoch). "
            f"Received: noise_range_t={value!r}"
        )
    return [start, end]


def _power(rate, n):
    """``rate ** n`` for a Python float ``rate >= 0`` and a float32 tensor
    of non-negative integers (``0 ** 0 = 1``, as in Python)."""
    if rate == 1.0:
        return ops.ones_like(n)
    if rate == 0.0:
        return ops.where(n == 0, 1.0, 0.0)
    return base.int_power(rate, n)


def _int_step(step):
    """The step as an integer tensor (a float step was floored already)."""
    if base.is_integer(step):
        return step
    return ops.cast(step, "int32")


def _max_of(t):
    dtype = keras.backend.standardize_dtype(t.dtype)
    return _INT64_MAX if dtype in ("int64", "uint64") else _INT32_MAX


def _count_reached(t, thresholds):
    """``#{c in thresholds: c <= t}`` elementwise, for Python ints."""
    limit = _max_of(t)
    kept = [c for c in thresholds if c <= limit]
    if not kept:
        return ops.zeros_like(t)
    table = ops.convert_to_tensor(np.asarray(kept, dtype=np.int64),
                                  dtype=t.dtype)
    reached = ops.cast(ops.expand_dims(t, -1) >= table, t.dtype)
    return ops.sum(reached, axis=-1)


def _gather(values, index, dtype="float32"):
    table = ops.convert_to_tensor(np.asarray(values), dtype=dtype)
    return ops.take(table, index, axis=0)


def _first_reaching(level, k, low, high):
    """The least integer ``t`` in ``[low, high]`` with ``level(t) >= k`` for
    a non-decreasing ``level``, or None."""
    if level(high) < k:
        return None
    while low < high:
        mid = (low + high) // 2
        if level(mid) >= k:
            high = mid
        else:
            low = mid + 1
    return low


def _interpolation_weights(u, w):
    """``((1 + cos(pi u)) / 2, (1 - cos(pi u)) / 2)`` for ``u + w = 1``,
    each from the nearer end (no cancellation where either goes to 0)."""
    half = math.pi / 2
    first = u <= 0.5
    start = ops.where(first, ops.square(ops.cos(half * u)),
                      ops.square(ops.sin(half * w)))
    end = ops.where(first, ops.square(ops.sin(half * u)),
                    ops.square(ops.cos(half * w)))
    return start, end


# --------------------------------------------------------------------------
# The shared part: t, warm-up, t = 0, noise
# --------------------------------------------------------------------------


class _TimmScheduler(base.Schedule):
    """timm's ``Scheduler`` as used by its training loop (see the module)."""

    def _set_common(self, initial_learning_rate, warmup_t, warmup_lr_init,
                    warmup_prefix, t_in_epochs, noise_range_t, noise_pct,
                    noise_std, noise_seed, steps_per_epoch):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate)
        self.warmup_t = base.check_int("warmup_t", warmup_t, 0)
        self.warmup_lr_init = base.check_real("warmup_lr_init",
                                              warmup_lr_init, low=0.0)
        self.warmup_prefix = base.check_bool("warmup_prefix", warmup_prefix)
        self.t_in_epochs = base.check_bool("t_in_epochs", t_in_epochs)
        self.noise_range_t = _check_noise_range(noise_range_t)
        self.noise_pct = base.check_real("noise_pct", noise_pct, low=0.0,
                                         low_open=True)
        self.noise_std = base.check_real("noise_std", noise_std, low=0.0)
        self.noise_seed = base.check_int("noise_seed", noise_seed)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)
        if not self.t_in_epochs and self.steps_per_epoch != 1:
            raise ValueError(
                "Argument `steps_per_epoch` applies only with "
                "t_in_epochs=True (with t_in_epochs=False t is the "
                f"optimizer step). Received: steps_per_epoch="
                f"{self.steps_per_epoch}"
            )
        self._noise_tensors = {}

    # -- subclass hooks -----------------------------------------------------

    def _decayed(self, after):
        """float32 rate for ``t >= warmup_t``, ``after = t'``."""
        raise NotImplementedError

    def _warmup_target(self):
        return self.initial_learning_rate

    # -- noise --------------------------------------------------------------

    def _noise_span(self):
        if self.noise_range_t is None:
            return 1, 1
        start, end = self.noise_range_t
        first = max(1, math.ceil(start))
        return first, max(first, math.ceil(end))

    def noise_table(self):
        """timm's noise ``n_t`` for ``t = start, start + 1, ...`` (float32
        NumPy; ``start`` the first ``t >= 1`` of ``noise_range_t``)."""
        first, stop = self._noise_span()
        return _torch_noise.noise_table(self.noise_seed, first, stop,
                                        self.noise_pct, self.noise_std)

    def _noise_tensor(self):
        table = self.noise_table()
        if keras.backend.backend() != "torch":
            return ops.convert_to_tensor(table)
        # torch runs eagerly: convert the table once per device.
        key = str(ops.convert_to_tensor(0.0).device)
        if key not in self._noise_tensors:
            self._noise_tensors[key] = ops.convert_to_tensor(table)
        return self._noise_tensors[key]

    def _add_noise(self, t, value):
        first, stop = self._noise_span()
        if stop <= first:
            return value
        index = t - first
        inside = (index >= 0) & (index < stop - first)
        index = ops.clip(index, 0, stop - first - 1)
        noise = ops.take(self._noise_tensor(), index, axis=0)
        return ops.where(inside, value + value * noise, value)

    # -- the value ----------------------------------------------------------

    def _t(self, step):
        step = _int_step(step)
        if self.t_in_epochs:
            return base.epoch_of(step, self.steps_per_epoch)
        return step

    def _value(self, step):
        t = self._t(step)
        warmup = self.warmup_t
        after = ops.maximum(t - warmup, 0) if self.warmup_prefix else t
        value = self._decayed(after)
        if warmup:
            done = base.to_float(ops.minimum(t, warmup))
            ramp = (self.warmup_lr_init * ((warmup - done) / warmup)
                    + self._warmup_target() * (done / warmup))
            value = ops.where(t < warmup, ramp, value)
            initial = self.warmup_lr_init
        else:
            initial = self.initial_learning_rate
        # timm's loop never calls step(0): the constructor's value.
        value = ops.where(t == 0, initial, value)
        return self._add_noise(t, value)

    def get_config(self):
        config = super().get_config()
        if config.get("noise_range_t") is not None:
            config["noise_range_t"] = list(config["noise_range_t"])
        return config


# --------------------------------------------------------------------------
# Cycles: cosine, tanh, poly
# --------------------------------------------------------------------------


class _CycleScheduler(_TimmScheduler):
    """Cycles of ``t_initial * cycle_mul ** i`` steps (timm's arithmetic)."""

    def _set_cycles(self, t_initial, lr_min, cycle_mul, cycle_decay,
                    cycle_limit):
        self.t_initial = base.check_int("t_initial", t_initial, 1)
        self.lr_min = base.check_real("lr_min", lr_min, low=0.0)
        self.cycle_mul = base.check_real("cycle_mul", cycle_mul, low=0.0,
                                         low_open=True)
        self.cycle_decay = base.check_real("cycle_decay", cycle_decay,
                                           low=0.0)
        self.cycle_limit = base.check_int("cycle_limit", cycle_limit, 0)
        self._tables = None if self.cycle_mul == 1.0 else self._build()

    # -- timm's float64 arithmetic, for the tables ---------------------------

    def _timm_cycle(self, t):
        """timm's ``(i, t_i, t_curr)`` for ``t'`` (Python floats)."""
        m, T = self.cycle_mul, self.t_initial
        if m != 1:
            i = math.floor(math.log(1 - t / T * (1 - m), m))
            t_i = m**i * T
            t_curr = t - (1 - m**i) / (1 - m) * T
        else:
            i = t // T
            t_i = T
            t_curr = t - (T * i)
        return i, t_i, t_curr

    def _timm_index(self, t):
        m, T = self.cycle_mul, self.t_initial
        return math.floor(math.log(1 - t / T * (1 - m), m))

    def _build(self):
        """Per cycle ``i`` (from 0): its first step ``B_i`` (the least
        integer ``t'`` where timm's index reaches ``i``), ``B_i - start_i``,
        the steps from ``B_i`` to the cycle's end, its length and peak."""
        m, T = self.cycle_mul, self.t_initial
        end = None
        if m < 1:
            # timm's log argument 1 - t (1 - m) / T reaches 0 at t = T/(1-m):
            # math.log raises there; here the rate is lr_min from then on.
            end = _first_reaching(
                lambda t: 1 if 1 - t / T * (1 - m) <= 0 else 0, 1, 0,
                _LAST_STEP)
        top = _LAST_STEP if end is None else end - 1
        last = self._timm_index(top)
        count = min(self.cycle_limit, last)
        if count > _MAX_BOUNDARIES:
            raise ValueError(
                f"{type(self).__name__} with cycle_mul={m} and cycle_limit="
                f"{self.cycle_limit} has {count} cycles before step 2**53; "
                f"at most {_MAX_BOUNDARIES} are supported. Lower "
                "`cycle_limit`."
            )
        starts, low = [0], 0
        for i in range(1, count + 1):
            low = _first_reaching(self._timm_index, i, low, top)
            starts.append(low)
        offsets, remaining, lengths, peaks = [], [], [], []
        for i, start in enumerate(starts):
            t_i = m**i * T
            offset = start - (1 - m**i) / (1 - m) * T  # start - timm's start
            rest = t_i - offset
            whole = math.floor(rest)
            offsets.append(offset)
            remaining.append((float(whole), rest - whole))
            lengths.append(t_i)
            peaks.append(self._peak(i) if i < self.cycle_limit else 0.0)
        return {"starts": starts, "offsets": offsets,
                "remaining": remaining, "lengths": lengths, "peaks": peaks,
                "end": end}

    def _peak(self, i):
        """timm's ``lr * cycle_decay ** i`` (inf past float64's range)."""
        try:
            return self.initial_learning_rate * self.cycle_decay**i
        except OverflowError:
            return math.inf

    def _timm_rate(self, t):
        """timm's ``_get_lr(t)`` for ``t >= warmup_t`` (Python float)."""
        if self.warmup_prefix:
            t = t - self.warmup_t
        try:
            i, t_i, t_curr = self._timm_cycle(t)
        except ValueError:  # timm's log past t_initial / (1 - cycle_mul)
            return self.lr_min
        if i >= self.cycle_limit:
            return self.lr_min
        return self._curve(self._peak(i), t_curr, t_i)

    def _curve(self, peak, t_curr, t_i):
        raise NotImplementedError

    # -- the graph ----------------------------------------------------------

    def _cycle(self, after):
        """``(active, peak, along, remain, length)`` at ``t' = after``."""
        if self._tables is None:
            T = self.t_initial
            i = ops.floor_divide(after, T)
            along = base.to_float(after - i * T)
            remain = float(T) - along
            length = ops.full_like(along, float(T))
            limit = min(self.cycle_limit, _max_of(after))
            last = max(limit - 1, 0)
            active = (i < limit if self.cycle_limit <= _max_of(after)
                      else ops.ones_like(i, dtype="bool"))
            peak = self.initial_learning_rate * _power(
                self.cycle_decay, base.to_float(ops.minimum(i, last)))
            return active, peak, along, remain, length
        tables = self._tables
        position = _count_reached(after, tables["starts"][1:])
        cap = _max_of(after)
        starts = [min(s, cap) for s in tables["starts"]]
        k = after - _gather(starts, position, dtype=after.dtype)
        k = base.to_float(k)
        along = k + _gather(tables["offsets"], position)
        whole, part = zip(*tables["remaining"])
        remain = (_gather(whole, position) - k) + _gather(part, position)
        length = _gather(tables["lengths"], position)
        peak = _gather(tables["peaks"], position)
        active = position < min(self.cycle_limit, len(tables["starts"]))
        if tables["end"] is not None and tables["end"] <= cap:
            active = active & (after < tables["end"])
        along = ops.maximum(along, 0.0)
        remain = ops.maximum(remain, 0.0)
        return active, peak, along, remain, length

    def _fractions(self, along, remain, length, k_decay=1.0):
        """``(x**k, 1 - x**k)`` for ``x = along / length``, the second
        computed from ``remain`` (no cancellation)."""
        u = along / length
        w = remain / length
        if k_decay == 1.0:
            return u, w
        return (ops.power(u, k_decay),
                -ops.expm1(k_decay * ops.log1p(-ops.minimum(w, 1.0))))

    def get_cycle_length(self, cycles=0):
        """timm's ``get_cycle_length``: the ``t`` of ``cycles`` cycles
        (default ``cycle_limit``), plus ``warmup_t`` with ``warmup_prefix``
        (what ``create_scheduler_v2`` adds cooldown epochs to)."""
        cycles = max(1, cycles or self.cycle_limit)
        if self.cycle_mul == 1.0:
            t = self.t_initial * cycles
        else:
            t = int(math.floor(-self.t_initial * (self.cycle_mul**cycles - 1)
                               / (1 - self.cycle_mul)))
        return t + self.warmup_t if self.warmup_prefix else t


_COMMON_ARGS = """\
        warmup_t: Int >= 0. Length of the linear warm-up, in t. Defaults
            to `0`.
        warmup_lr_init: Float >= 0. Rate at t = 0 of the warm-up. Defaults
            to `0.0`.
        warmup_prefix: Bool. Whether the schedule starts after the warm-up
            (`t' = t - warmup_t`) rather than at t = 0 (then the warm-up
            replaces its first `warmup_t` values). Defaults to `{prefix}`.
        t_in_epochs: Bool. Whether t counts epochs (timm's `step(epoch)`;
            step `s` is epoch `floor(s / steps_per_epoch)`) or optimizer
            updates (timm's `step_update(num_updates)`; t = s). Defaults to
            `True`.
        noise_range_t: None, or a pair `(start, end)`: the t in
            `[start, end)` whose rate timm multiplies by `1 + noise` (one
            number, timm's "every t from here on", is not accepted: give
            the pair). Defaults to `None`.
        noise_pct: Float > 0. Bound on the noise's magnitude (draws at or
            above it are redrawn). Defaults to `0.67`.
        noise_std: Float >= 0. Standard deviation of the noise. Defaults
            to `1.0`.
        noise_seed: Int. The noise at t is drawn from a torch generator
            seeded with `noise_seed + t`. Defaults to `42`."""

_SPE_ARG = """\
        steps_per_epoch: Int >= 1. Optimizer steps per epoch when
            `t_in_epochs=True`: step `s` is epoch `floor(s /
            steps_per_epoch)`. Must be 1 with `t_in_epochs=False`. Defaults
            to `1`."""

_CYCLE_ARGS = """\
        initial_learning_rate: Float >= 0, the base rate (timm reads it from
            the optimizer's `lr`): the first cycle's maximum.
        t_initial: Int >= 1. Length of the first cycle, in t.
        {extra}lr_min: Float >= 0. The rate each cycle decays to, and the rate
            after the last cycle. Defaults to `0.0`.
        cycle_mul: Float > 0. Each cycle is `cycle_mul` times longer than
            the one before. Defaults to `1.0`.
        cycle_decay: Float >= 0. Each cycle's maximum is `cycle_decay`
            times the one before. Defaults to `1.0`.
        cycle_limit: Int >= 0. Number of cycles; `lr_min` after them.
            Defaults to `1`."""


_EXTRA = {
    "tanh": ("lb: Float < `ub`. The tanh's argument at the start of a "
             "cycle.\n            Defaults to `-7.0`.\n        ub: Float > "
             "`lb`. Its argument at the end.\n            Defaults to "
             "`3.0`.\n        "),
    "poly": ("power: Float >= 0. Exponent of the decay. Defaults to "
             "`0.5`.\n        "),
}


def _args(prefix, extra=None):
    """Fills the shared argument text of a docstring (before
    ``base.register``, whose own ``{name}`` lines it would not know)."""

    def fill(cls):
        parts = {
            "{cycle}": _CYCLE_ARGS.replace("{extra}", _EXTRA.get(extra, "")),
            "{common}": _COMMON_ARGS.replace("{prefix}", str(prefix)),
            "{spe}": _SPE_ARG,
        }
        doc = cls.__doc__
        for key, text in parts.items():
            doc = doc.replace(key, text)
        cls.__doc__ = doc
        return cls

    return fill


# --------------------------------------------------------------------------
# The schedulers
# --------------------------------------------------------------------------


@base.register
@_args(prefix=False)
class CosineLRScheduler(_CycleScheduler):
    """timm's ``CosineLRScheduler``: cosine cycles with warm-up, restarts,
    k-decay and noise.

    Within cycle ``i`` (``t_i = t_initial * cycle_mul ** i`` long, maximum
    ``eta_i = initial_learning_rate * cycle_decay ** i``) at position ``x``
    in ``[0, 1)``:

    ``lr = lr_min + (eta_i - lr_min) * (1 + cos(pi * x ** k_decay)) / 2``

    and ``lr_min`` after ``cycle_limit`` cycles; the warm-up, the meaning of
    t and the noise are described in :mod:`keras_optzoo.schedules.timm`.
    Equal, at every step, to ``timm.scheduler.CosineLRScheduler`` (1.0.31)
    on a torch optimizer with ``lr=initial_learning_rate`` stepped by
    timm's training loop.

    Args:
{cycle}
{common}
        k_decay: Float > 0. The k of k-decay: the cosine of ``x ** k``.
            Defaults to `1.0`.
{spe}

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017, https://arxiv.org/abs/1608.03983;
        Zhang & Li, "k-decay: A New Method For Learning Rate Schedule",
        https://arxiv.org/abs/2004.05909
    """

    _config_keys = (
        "initial_learning_rate", "t_initial", "lr_min", "cycle_mul",
        "cycle_decay", "cycle_limit", "warmup_t", "warmup_lr_init",
        "warmup_prefix", "t_in_epochs", "noise_range_t", "noise_pct",
        "noise_std", "noise_seed", "k_decay", "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        t_initial,
        lr_min=0.0,
        cycle_mul=1.0,
        cycle_decay=1.0,
        cycle_limit=1,
        warmup_t=0,
        warmup_lr_init=0.0,
        warmup_prefix=False,
        t_in_epochs=True,
        noise_range_t=None,
        noise_pct=0.67,
        noise_std=1.0,
        noise_seed=42,
        k_decay=1.0,
        steps_per_epoch=1,
    ):
        self._set_common(initial_learning_rate, warmup_t, warmup_lr_init,
                         warmup_prefix, t_in_epochs, noise_range_t,
                         noise_pct, noise_std, noise_seed, steps_per_epoch)
        self.k_decay = base.check_real("k_decay", k_decay, low=0.0,
                                       low_open=True)
        self._set_cycles(t_initial, lr_min, cycle_mul, cycle_decay,
                         cycle_limit)

    def _curve(self, peak, t_curr, t_i):
        k = self.k_decay
        return self.lr_min + 0.5 * (peak - self.lr_min) * (
            1 + math.cos(math.pi * t_curr**k / t_i**k))

    def _decayed(self, after):
        active, peak, along, remain, length = self._cycle(after)
        u, w = self._fractions(along, remain, length, self.k_decay)
        to_peak, to_min = _interpolation_weights(u, w)
        value = peak * to_peak + self.lr_min * to_min
        return ops.where(active, value, self.lr_min)


@base.register
@_args(prefix=False, extra="tanh")
class TanhLRScheduler(_CycleScheduler):
    """timm's ``TanhLRScheduler``: hyperbolic-tangent cycles with warm-up,
    restarts and noise.

    Within cycle ``i`` (``t_i = t_initial * cycle_mul ** i`` long, maximum
    ``eta_i = initial_learning_rate * cycle_decay ** i``) at position ``x``
    in ``[0, 1)``:

    ``lr = lr_min + (eta_i - lr_min) * (1 - tanh(lb * (1 - x) + ub * x)) / 2``

    (evaluated as ``eta_i * sigmoid(-2 z) + lr_min * sigmoid(2 z)``, the
    same number without cancellation), and ``lr_min`` after
    ``cycle_limit`` cycles. Without ``warmup_prefix`` the warm-up rises to
    the curve's value at ``warmup_t``, as in timm. Equal, at every step, to
    ``timm.scheduler.TanhLRScheduler`` (1.0.31); see
    :mod:`keras_optzoo.schedules.timm` for t, the warm-up and the noise.

    Args:
{cycle}
{common}
{spe}

    References:
        Hsueh et al., "Stochastic Gradient Descent with Hyperbolic-Tangent
        Decay on Classification", WACV 2019, https://arxiv.org/abs/1806.01593
    """

    _config_keys = (
        "initial_learning_rate", "t_initial", "lb", "ub", "lr_min",
        "cycle_mul", "cycle_decay", "cycle_limit", "warmup_t",
        "warmup_lr_init", "warmup_prefix", "t_in_epochs", "noise_range_t",
        "noise_pct", "noise_std", "noise_seed", "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        t_initial,
        lb=-7.0,
        ub=3.0,
        lr_min=0.0,
        cycle_mul=1.0,
        cycle_decay=1.0,
        cycle_limit=1,
        warmup_t=0,
        warmup_lr_init=0.0,
        warmup_prefix=False,
        t_in_epochs=True,
        noise_range_t=None,
        noise_pct=0.67,
        noise_std=1.0,
        noise_seed=42,
        steps_per_epoch=1,
    ):
        self._set_common(initial_learning_rate, warmup_t, warmup_lr_init,
                         warmup_prefix, t_in_epochs, noise_range_t,
                         noise_pct, noise_std, noise_seed, steps_per_epoch)
        self.lb = base.check_real("lb", lb)
        self.ub = base.check_real("ub", ub)
        if not self.lb < self.ub:
            raise ValueError(
                f"Argument `lb` must be < `ub` ({self.ub:g}). "
                f"Received: lb={self.lb:g}"
            )
        self._set_cycles(t_initial, lr_min, cycle_mul, cycle_decay,
                         cycle_limit)

    def _curve(self, peak, t_curr, t_i):
        x = t_curr / t_i
        return self.lr_min + 0.5 * (peak - self.lr_min) * (
            1 - math.tanh(self.lb * (1.0 - x) + self.ub * x))

    def _warmup_target(self):
        if self.warmup_prefix:
            return self.initial_learning_rate
        return self._timm_rate(self.warmup_t)

    def _decayed(self, after):
        active, peak, along, remain, length = self._cycle(after)
        u, w = self._fractions(along, remain, length)
        z = self.lb * w + self.ub * u
        value = peak * ops.sigmoid(-2.0 * z) + self.lr_min * ops.sigmoid(
            2.0 * z)
        return ops.where(active, value, self.lr_min)


@base.register
@_args(prefix=False, extra="poly")
class PolyLRScheduler(_CycleScheduler):
    """timm's ``PolyLRScheduler``: polynomial-decay cycles with warm-up,
    restarts, k-decay and noise.

    Within cycle ``i`` (``t_i = t_initial * cycle_mul ** i`` long, maximum
    ``eta_i = initial_learning_rate * cycle_decay ** i``) at position ``x``
    in ``[0, 1)``:

    ``lr = lr_min + (eta_i - lr_min) * (1 - x ** k_decay) ** power``

    and ``lr_min`` after ``cycle_limit`` cycles. Equal, at every step, to
    ``timm.scheduler.PolyLRScheduler`` (1.0.31); see
    :mod:`keras_optzoo.schedules.timm` for t, the warm-up and the noise.
    (timm's ``create_scheduler_v2(sched="poly")`` passes its `decay_rate`
    as `power`.)

    Args:
{cycle}
{common}
        k_decay: Float > 0. The k of k-decay. Defaults to `1.0`.
{spe}

    References:
        Zhang & Li, "k-decay: A New Method For Learning Rate Schedule",
        https://arxiv.org/abs/2004.05909
    """

    _config_keys = (
        "initial_learning_rate", "t_initial", "power", "lr_min",
        "cycle_mul", "cycle_decay", "cycle_limit", "warmup_t",
        "warmup_lr_init", "warmup_prefix", "t_in_epochs", "noise_range_t",
        "noise_pct", "noise_std", "noise_seed", "k_decay",
        "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        t_initial,
        power=0.5,
        lr_min=0.0,
        cycle_mul=1.0,
        cycle_decay=1.0,
        cycle_limit=1,
        warmup_t=0,
        warmup_lr_init=0.0,
        warmup_prefix=False,
        t_in_epochs=True,
        noise_range_t=None,
        noise_pct=0.67,
        noise_std=1.0,
        noise_seed=42,
        k_decay=1.0,
        steps_per_epoch=1,
    ):
        self._set_common(initial_learning_rate, warmup_t, warmup_lr_init,
                         warmup_prefix, t_in_epochs, noise_range_t,
                         noise_pct, noise_std, noise_seed, steps_per_epoch)
        self.power = base.check_real("power", power, low=0.0)
        self.k_decay = base.check_real("k_decay", k_decay, low=0.0,
                                       low_open=True)
        self._set_cycles(t_initial, lr_min, cycle_mul, cycle_decay,
                         cycle_limit)

    def _curve(self, peak, t_curr, t_i):
        k = self.k_decay
        return self.lr_min + (peak - self.lr_min) * (
            1 - t_curr**k / t_i**k) ** self.power

    def _decayed(self, after):
        active, peak, along, remain, length = self._cycle(after)
        _, w = self._fractions(along, remain, length, self.k_decay)
        kept = ops.power(w, self.power)
        value = peak * kept + self.lr_min * (1.0 - kept)
        return ops.where(active, value, self.lr_min)


def _check_decay_rate(value):
    return base.check_real("decay_rate", value, low=0.0)


def _decay_count_limit(initial, rate):
    """Decays after which the float32 rate no longer changes (0 or inf)."""
    if initial == 0.0 or rate == 1.0:
        return 0
    if rate == 0.0:
        return 1
    bound = _FLOAT32_ZERO if rate < 1.0 else _FLOAT32_INF
    return max(1, math.ceil(math.log(bound / initial) / math.log(rate)) + 1)


@base.register
@_args(prefix=True)
class StepLRScheduler(_TimmScheduler):
    """timm's ``StepLRScheduler``: decay by ``decay_rate`` every ``decay_t``,
    with warm-up and noise.

    ``lr = initial_learning_rate * decay_rate ** floor(t' / decay_t)`` with
    ``t' = t - warmup_t`` (``warmup_prefix=True``, the default here as in
    timm) or ``t``. `decay_t` may be fractional (timm's recipes use 2.4
    epochs): the decays then happen where timm's float ``t' // decay_t``
    puts them, found at construction. Equal, at every step, to
    ``timm.scheduler.StepLRScheduler`` (1.0.31); see
    :mod:`keras_optzoo.schedules.timm` for t, the warm-up and the noise.
    (timm's ``sched="constant"`` is ``decay_t=1, decay_rate=1.0``.)

    Args:
        initial_learning_rate: Float >= 0, the base rate (timm reads it from
            the optimizer's `lr`).
        decay_t: Float > 0. Time between two decays, in t.
        decay_rate: Float >= 0. Factor of each decay. Defaults to `1.0`.
{common}
{spe}
    """

    _config_keys = (
        "initial_learning_rate", "decay_t", "decay_rate", "warmup_t",
        "warmup_lr_init", "warmup_prefix", "t_in_epochs", "noise_range_t",
        "noise_pct", "noise_std", "noise_seed", "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        decay_t,
        decay_rate=1.0,
        warmup_t=0,
        warmup_lr_init=0.0,
        warmup_prefix=True,
        t_in_epochs=True,
        noise_range_t=None,
        noise_pct=0.67,
        noise_std=1.0,
        noise_seed=42,
        steps_per_epoch=1,
    ):
        self._set_common(initial_learning_rate, warmup_t, warmup_lr_init,
                         warmup_prefix, t_in_epochs, noise_range_t,
                         noise_pct, noise_std, noise_seed, steps_per_epoch)
        if isinstance(decay_t, numbers.Integral) and not isinstance(
                decay_t, bool):
            decay_t = int(decay_t)
            if decay_t <= 0:
                base.check_real("decay_t", decay_t, low=0.0, low_open=True)
        else:
            decay_t = base.check_real("decay_t", decay_t, low=0.0,
                                      low_open=True)
        self.decay_t = decay_t
        self.decay_rate = _check_decay_rate(decay_rate)
        self._boundaries = None
        if not (float(decay_t).is_integer() and decay_t <= _INT32_MAX):
            self._boundaries = self._build()

    def _build(self):
        """The least ``t'`` with ``t' // decay_t >= k`` (timm's float
        division), for each decay ``k`` that changes the float32 rate."""
        d = self.decay_t
        count = _decay_count_limit(self.initial_learning_rate,
                                   self.decay_rate)
        if count > _MAX_BOUNDARIES:
            raise ValueError(
                f"StepLRScheduler with a fractional decay_t={d} and "
                f"decay_rate={self.decay_rate} needs {count} decay steps "
                f"computed; at most {_MAX_BOUNDARIES} are supported."
            )
        boundaries = []
        for k in range(1, count + 1):
            t = int(k * d)
            while t > 0 and (t - 1) // d >= k:
                t -= 1
            while t // d < k:
                t += 1
            if t > _LAST_STEP:
                break
            boundaries.append(t)
        return boundaries

    def _decayed(self, after):
        if self._boundaries is None:
            decays = ops.floor_divide(after, int(self.decay_t))
        else:
            decays = _count_reached(after, self._boundaries)
        return self.initial_learning_rate * _power(
            self.decay_rate, base.to_float(decays))


@base.register
@_args(prefix=True)
class MultiStepLRScheduler(_TimmScheduler):
    """timm's ``MultiStepLRScheduler``: decay by ``decay_rate`` at each
    milestone, with warm-up and noise.

    ``lr = initial_learning_rate * decay_rate ** #{m in decay_t: m <= t' +
    1}`` with ``t' = t - warmup_t`` (``warmup_prefix=True``, the default)
    or ``t``: timm's long-standing convention applies milestone ``m`` at
    ``t' = m - 1``, one t earlier than torch's ``MultiStepLR`` (kept in
    timm on purpose; so here). Equal, at every step, to
    ``timm.scheduler.MultiStepLRScheduler`` (1.0.31); see
    :mod:`keras_optzoo.schedules.timm` for t, the warm-up and the noise.

    Args:
        initial_learning_rate: Float >= 0, the base rate (timm reads it from
            the optimizer's `lr`).
        decay_t: Non-decreasing sequence of numbers, the milestones, in t
            (timm's search assumes them sorted; unsorted ones are refused
            here). Repeated milestones decay again.
        decay_rate: Float >= 0. Factor of each decay. Defaults to `1.0`.
{common}
{spe}
    """

    _config_keys = (
        "initial_learning_rate", "decay_t", "decay_rate", "warmup_t",
        "warmup_lr_init", "warmup_prefix", "t_in_epochs", "noise_range_t",
        "noise_pct", "noise_std", "noise_seed", "steps_per_epoch",
    )

    def __init__(
        self,
        initial_learning_rate,
        decay_t,
        decay_rate=1.0,
        warmup_t=0,
        warmup_lr_init=0.0,
        warmup_prefix=True,
        t_in_epochs=True,
        noise_range_t=None,
        noise_pct=0.67,
        noise_std=1.0,
        noise_seed=42,
        steps_per_epoch=1,
    ):
        self._set_common(initial_learning_rate, warmup_t, warmup_lr_init,
                         warmup_prefix, t_in_epochs, noise_range_t,
                         noise_pct, noise_std, noise_seed, steps_per_epoch)
        if isinstance(decay_t, (str, bytes)) or not hasattr(
                decay_t, "__iter__"):
            raise TypeError(
                "Argument `decay_t` must be a sequence of numbers. "
                f"Received: decay_t={decay_t!r} (of type "
                f"{type(decay_t).__name__})"
            )
        milestones = []
        for i, m in enumerate(decay_t):
            if isinstance(m, numbers.Integral) and not isinstance(m, bool):
                milestones.append(int(m))
            else:
                milestones.append(base.check_real(f"decay_t[{i}]", m))
        if any(b < a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(
                "Argument `decay_t` must be non-decreasing (timm finds the "
                f"milestones with a binary search). Received: decay_t="
                f"{list(decay_t)!r}"
            )
        self.decay_t = milestones
        self.decay_rate = _check_decay_rate(decay_rate)
        # m <= t' + 1  <=>  t' >= ceil(m) - 1
        self._thresholds = [max(0, math.ceil(m) - 1) for m in milestones]

    def _decayed(self, after):
        decays = _count_reached(after, self._thresholds)
        return self.initial_learning_rate * _power(
            self.decay_rate, base.to_float(decays))
