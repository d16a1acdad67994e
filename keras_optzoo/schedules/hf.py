"""Hugging Face transformers' warm-up schedules as pure Keras 3 schedules.

Each class equals the transformers (5.x) function of the same name in
``transformers.optimization`` at every step: ``lr(s) = initial_learning_rate
* lr_lambda(s)`` with ``lr_lambda`` the multiplier its ``LambdaLR`` applies
before optimizer update ``s`` (0 for the first). Arguments keep
transformers' names; the base rate that transformers reads from the
optimizer comes first as ``initial_learning_rate``. With ``W =
num_warmup_steps``, ``T = num_training_steps``, ``n = s - W`` and ``p = n /
max(1, T - W)``, the multiplier for ``s >= W`` is:

* ``ConstantWithWarmup`` (``get_constant_schedule_with_warmup``): ``1``.
* ``LinearWithWarmup`` (``get_linear_schedule_with_warmup``):
  ``max(0, (T - s) / max(1, T - W))``.
* ``CosineWithWarmup`` (``get_cosine_schedule_with_warmup``):
  ``(1 + cos(2 pi c p)) / 2`` with ``c = num_cycles``.
* ``CosineWithHardRestartsWithWarmup``
  (``get_cosine_with_hard_restarts_schedule_with_warmup``):
  ``(1 + cos(pi ((c p) mod 1))) / 2`` for ``p < 1``, then 0.
* ``PolynomialWithWarmup`` (``get_polynomial_decay_schedule_with_warmup``):
  ``((eta_0 - lr_end) (1 - p)^power + lr_end) / eta_0`` up to ``s = T``,
  then ``lr_end / eta_0``.
* ``InverseSqrt`` (``get_inverse_sqrt_schedule``): ``sqrt(tau / (n +
  tau))`` with ``tau = timescale``.
* ``CosineWithMinLRWithWarmup``
  (``get_cosine_with_min_lr_schedule_with_warmup``): ``r + (1 - r) (1 +
  cos(2 pi c p)) / 2`` with ``r`` the minimum's ratio.
* ``WarmupStableDecay`` (``get_wsd_schedule``): warm-up, stable, decay, then
  ``min_lr_ratio``.

Before ``W`` every one but WarmupStableDecay uses ``s / max(1, W)``.

Past ``num_training_steps`` they do what transformers does: LinearWithWarmup
holds 0, PolynomialWithWarmup holds ``lr_end``,
CosineWithHardRestartsWithWarmup holds 0, WarmupStableDecay holds
``min_lr_ratio * initial_learning_rate``, and CosineWithWarmup and
CosineWithMinLRWithWarmup keep evaluating their cosine (with the default
``num_cycles=0.5`` they climb back to ``initial_learning_rate`` at ``2T -
W``); InverseSqrt never ends.

Precision: transformers computes in float64 Python; here every value is a
float32 closed form of the step, evaluated inside compiled code. Integer
step differences are formed exactly in the step's dtype before any cast, and
the cosine's argument is reduced modulo its period in integers (exactly for
any int32/int64 step whenever ``2 * num_cycles`` is an integer, as for the
defaults), so the relative deviation from transformers stays at a few float32
ulps (below 1e-6), also where a value goes to 0 and at step ``2**31 - 1``.
For any other ``num_cycles`` the phase is a float32 number: the deviation is
then a few 1e-7 of the peak rate in absolute terms, and larger in relative
terms only next to the cosine's zeros.
``benchmarks/hf_schedule_deviation.py`` prints it per backend.
"""

import numbers
import warnings

from keras import ops

from keras_optzoo.schedules import base

_INT32_MAX = 2**31 - 1
_CURVES = ("linear", "cosine", "1-sqrt")


# --------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------


def _check_num_cycles(value):
    return base.check_real("num_cycles", value, low=0.0)


def warmup_fraction(step, warmup_steps):
    """transformers' ``s / max(1, W)`` (float32, correctly rounded)."""
    return base.to_float(step) / float(max(1, warmup_steps))


def _split_pieces(value, count=5, bits=12):
    """``value`` as ``count`` float64 pieces of ``bits`` bits each (exact in
    float32 too), largest first; their sum is ``value`` to 2**-60."""
    pieces = []
    for _ in range(count):
        hi, value = base._split(value, bits)
        pieces.append(hi)
    return pieces


def _mod_product(c, q, modulus):
    """``(c * q) mod modulus`` for a Python float ``c >= 0``, a tensor ``q``
    of non-negative integers (below 2**33) and ``modulus`` 1 or 2, in float32.

    ``c`` is split into five 12-bit pieces and ``q`` into three 11-bit
    pieces, so that each partial product is exact in float32 and so is its
    reduction; only the final sum of the reduced parts rounds.
    """
    q_parts = []
    rest = q
    for _ in range(3):
        q_parts.append(base.to_float(ops.mod(rest, 2048)))
        rest = ops.floor_divide(rest, 2048)
    total = None
    for shift, part in enumerate(q_parts):
        for piece in _split_pieces(c):
            if piece == 0.0:
                continue
            term = ops.mod(part * (piece * 2.0 ** (11 * shift)), modulus)
            total = term if total is None else ops.mod(total + term, modulus)
    if total is None:
        return ops.zeros_like(q_parts[0])
    return total


def cycle_position(n, length, cycles, period):
    """Where ``x = cycles * n / length`` lies within ``[0, period)``
    (``period`` 1 or 2), as a pair ``(a, b)`` with ``x mod period = a / b``.

    ``n`` is a tensor of non-negative integers (any int dtype, or float32
    holding integers), ``length >= 1`` a Python int. When ``cycles`` is an
    integer and ``cycles * period * length`` fits in int32, ``a`` is the
    exact integer ``(cycles * n) mod (period * length)`` (as float32, exact
    below 2**24) and ``b = length``, so ``b - a`` is exact too. Otherwise
    ``n = q length + r`` is split exactly, ``(cycles * q) mod period`` is
    formed by :func:`_mod_product` and ``b = 1``.
    """
    span = period * length
    if float(cycles).is_integer() and int(cycles) * span <= _INT32_MAX:
        reduced = ops.mod(ops.mod(n, span) * int(cycles), span)
        return base.to_float(reduced), float(length)
    q = ops.floor_divide(n, length)
    r = ops.mod(n, length)
    whole = _mod_product(float(cycles), q, period)
    part = base.to_float(r) * (float(cycles) / length)
    return ops.mod(whole + part, float(period)), 1.0


def cosine_factor(n, length, num_cycles):
    """``((1 + cos(2 pi num_cycles n / length)) / 2, (1 - cos(...)) / 2)``
    for a tensor of integers ``n >= 0``: the cosine's two weights, accurate
    to a few ulps relative also where either goes to 0."""
    a, b = cycle_position(n, length, 2.0 * num_cycles, 2)
    # distance to the nearest multiple of 2 half-turns, in [0, 1] * b
    distance = ops.minimum(a, 2.0 * b - a)
    return base.cosine_weights(distance, b)


def _one_minus_sqrt(x, one_minus_x):
    """``1 - sqrt(x)`` without cancellation, from ``x`` and ``1 - x``."""
    return one_minus_x / (1.0 + ops.sqrt(x))


def _after(step, start):
    """``max(step - start, 0)`` in the step's dtype (exact)."""
    return ops.maximum(step - start, 0)


class _WarmupSchedule(base.Schedule):
    """transformers' linear warm-up ``s / max(1, W)`` then ``_decay``."""

    def _factor(self, step):
        raise NotImplementedError

    def _value(self, step):
        warm = warmup_fraction(step, self.num_warmup_steps)
        factor = ops.where(
            step < self.num_warmup_steps, warm, self._factor(step)
        )
        return self.initial_learning_rate * factor


# --------------------------------------------------------------------------
# The schedules
# --------------------------------------------------------------------------


@base.register
class ConstantWithWarmup(_WarmupSchedule):
    """Linear warm-up from 0, then constant.

    ``lr = initial_learning_rate * s / max(1, num_warmup_steps)`` for
    ``s < num_warmup_steps``, then ``initial_learning_rate``: transformers'
    ``get_constant_schedule_with_warmup``.

    Args:
        initial_learning_rate: Float >= 0, the learning rate after the
            warm-up.
        num_warmup_steps: Int >= 0. Steps of the warm-up.
    """

    _config_keys = ("initial_learning_rate", "num_warmup_steps")

    def __init__(self, initial_learning_rate, num_warmup_steps):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )

    def _factor(self, step):
        return 1.0


@base.register
class LinearWithWarmup(_WarmupSchedule):
    """Linear warm-up from 0, then linear decay to 0 at
    ``num_training_steps``, then 0.

    ``lr = initial_learning_rate * max(0, (T - s) / max(1, T - W))`` for
    ``s >= W``: transformers' ``get_linear_schedule_with_warmup``.

    Args:
        initial_learning_rate: Float >= 0, the learning rate at the end of
            the warm-up.
        num_warmup_steps: Int >= 0. Steps of the warm-up (`W`).
        num_training_steps: Int >= 0. Step where the rate reaches 0 (`T`).
    """

    _config_keys = (
        "initial_learning_rate",
        "num_warmup_steps",
        "num_training_steps",
    )

    def __init__(
        self, initial_learning_rate, num_warmup_steps, num_training_steps
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )
        self.num_training_steps = base.check_int(
            "num_training_steps", num_training_steps, low=0
        )

    def _factor(self, step):
        left = base.to_float(ops.maximum(self.num_training_steps - step, 0))
        span = max(1, self.num_training_steps - self.num_warmup_steps)
        return left / float(span)


@base.register
class CosineWithWarmup(_WarmupSchedule):
    """Linear warm-up from 0, then a cosine of ``num_cycles`` waves over the
    ``num_training_steps - num_warmup_steps`` steps after it.

    ``lr = initial_learning_rate * (1 + cos(2 pi num_cycles p)) / 2`` with
    ``p = (s - W) / max(1, T - W)``: transformers'
    ``get_cosine_schedule_with_warmup``. As there, the cosine is evaluated
    past ``num_training_steps`` too: with the default half wave it reaches 0
    at ``T`` and climbs back up after it (to ``initial_learning_rate`` at
    ``2T - W``). Use :class:`CosineWithMinLRWithWarmup` or
    :class:`WarmupStableDecay` for a schedule that holds its minimum.

    Args:
        initial_learning_rate: Float >= 0, the learning rate at the end of
            the warm-up.
        num_warmup_steps: Int >= 0. Steps of the warm-up (`W`).
        num_training_steps: Int >= 0. Total steps (`T`).
        num_cycles: Float >= 0. Number of cosine waves between `W` and `T`.
            Defaults to `0.5` (down from the maximum to 0).
    """

    _config_keys = (
        "initial_learning_rate",
        "num_warmup_steps",
        "num_training_steps",
        "num_cycles",
    )

    def __init__(
        self,
        initial_learning_rate,
        num_warmup_steps,
        num_training_steps,
        num_cycles=0.5,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )
        self.num_training_steps = base.check_int(
            "num_training_steps", num_training_steps, low=0
        )
        self.num_cycles = _check_num_cycles(num_cycles)

    def _decay_length(self):
        return max(1, self.num_training_steps - self.num_warmup_steps)

    def _factor(self, step):
        to_start, _ = cosine_factor(
            _after(step, self.num_warmup_steps),
            self._decay_length(),
            self.num_cycles,
        )
        return to_start


@base.register
class CosineWithHardRestartsWithWarmup(_WarmupSchedule):
    """Linear warm-up from 0, then ``num_cycles`` cosine decays from the
    maximum to 0, each restarting at the maximum, then 0 from
    ``num_training_steps`` on.

    ``lr = initial_learning_rate * (1 + cos(pi ((num_cycles p) mod 1))) / 2``
    for ``p = (s - W) / max(1, T - W) < 1``, and 0 for ``p >= 1``:
    transformers' ``get_cosine_with_hard_restarts_schedule_with_warmup``.

    Args:
        initial_learning_rate: Float >= 0, the learning rate at the end of
            the warm-up and at each restart.
        num_warmup_steps: Int >= 0. Steps of the warm-up (`W`).
        num_training_steps: Int >= 0. Total steps (`T`).
        num_cycles: Number >= 0 (an int in transformers). Number of cosine
            decays between `W` and `T`. Defaults to `1`.
    """

    _config_keys = (
        "initial_learning_rate",
        "num_warmup_steps",
        "num_training_steps",
        "num_cycles",
    )

    def __init__(
        self,
        initial_learning_rate,
        num_warmup_steps,
        num_training_steps,
        num_cycles=1,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )
        self.num_training_steps = base.check_int(
            "num_training_steps", num_training_steps, low=0
        )
        checked = _check_num_cycles(num_cycles)
        # Keep an int as an int (it is one in transformers' signature).
        self.num_cycles = (
            int(num_cycles)
            if isinstance(num_cycles, numbers.Integral)
            else checked
        )

    def _factor(self, step):
        length = max(1, self.num_training_steps - self.num_warmup_steps)
        n = _after(step, self.num_warmup_steps)
        inside = n < length
        a, b = cycle_position(
            ops.minimum(n, length - 1), length, self.num_cycles, 1
        )
        to_start, _ = base.cosine_weights(a, b)
        return ops.where(inside, to_start, 0.0)


@base.register
class PolynomialWithWarmup(_WarmupSchedule):
    """Linear warm-up from 0, then polynomial decay to ``lr_end`` at
    ``num_training_steps``, then ``lr_end``.

    ``lr = (initial_learning_rate - lr_end) * ((T - s) / (T - W)) ** power
    + lr_end`` for ``W <= s <= T``: transformers'
    ``get_polynomial_decay_schedule_with_warmup`` (``power=1`` is BERT's
    linear decay). With ``power=0`` the rate is ``initial_learning_rate``
    up to and including step ``T`` (``0 ** 0 = 1``), as there.

    Args:
        initial_learning_rate: Float > `lr_end`, the learning rate at the
            end of the warm-up.
        num_warmup_steps: Int >= 0. Steps of the warm-up (`W`).
        num_training_steps: Int >= 0, not equal to `num_warmup_steps`
            (transformers divides by their difference). Step where the
            rate reaches `lr_end` (`T`).
        lr_end: Float >= 0. Final learning rate. Defaults to `1e-7`.
        power: Float >= 0. Power of the decay. Defaults to `1.0`.
    """

    _config_keys = (
        "initial_learning_rate",
        "num_warmup_steps",
        "num_training_steps",
        "lr_end",
        "power",
    )

    def __init__(
        self,
        initial_learning_rate,
        num_warmup_steps,
        num_training_steps,
        lr_end=1e-7,
        power=1.0,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )
        self.num_training_steps = base.check_int(
            "num_training_steps", num_training_steps, low=0
        )
        if self.num_training_steps == self.num_warmup_steps:
            raise ValueError(
                "Argument `num_training_steps` must differ from "
                "`num_warmup_steps` (the decay divides by their "
                "difference). Received: "
                f"num_training_steps={self.num_training_steps}, "
                f"num_warmup_steps={self.num_warmup_steps}"
            )
        self.lr_end = base.check_real("lr_end", lr_end, low=0.0)
        if not self.initial_learning_rate > self.lr_end:
            raise ValueError(
                "Argument `lr_end` must be smaller than "
                f"`initial_learning_rate` ({self.initial_learning_rate:g}). "
                f"Received: lr_end={self.lr_end:g}"
            )
        self.power = base.check_real("power", power, low=0.0)

    def _value(self, step):
        warmup, total = self.num_warmup_steps, self.num_training_steps
        left = base.to_float(ops.maximum(total - step, 0))
        remaining = left / float(max(1, total - warmup))
        decayed = (self.initial_learning_rate - self.lr_end) * ops.power(
            remaining, self.power
        ) + self.lr_end
        value = ops.where(step > total, self.lr_end, decayed)
        warm = self.initial_learning_rate * warmup_fraction(step, warmup)
        return ops.where(step < warmup, warm, value)


@base.register
class InverseSqrt(_WarmupSchedule):
    """Linear warm-up from 0, then ``1 / sqrt`` decay.

    ``lr = initial_learning_rate * sqrt(timescale / (s - W + timescale))``
    for ``s >= W``: transformers' ``get_inverse_sqrt_schedule`` (after
    big_vision). It decays for ever.

    Args:
        initial_learning_rate: Float >= 0, the learning rate at the end of
            the warm-up.
        num_warmup_steps: Int >= 0. Steps of the warm-up (`W`).
        timescale: Int >= 1 or `None`. Steps over which the rate falls to
            `1/sqrt(2)` of its maximum. Defaults to `None`:
            `num_warmup_steps`, or `10000` when that is 0.
    """

    _config_keys = ("initial_learning_rate", "num_warmup_steps", "timescale")

    def __init__(
        self, initial_learning_rate, num_warmup_steps, timescale=None
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )
        if timescale is not None:
            timescale = base.check_int("timescale", timescale, low=1)
        self.timescale = timescale

    def _factor(self, step):
        timescale = float(self.timescale or self.num_warmup_steps or 10_000)
        n = base.to_float(_after(step, self.num_warmup_steps))
        return ops.sqrt(timescale / (n + timescale))


@base.register
class CosineWithMinLRWithWarmup(_WarmupSchedule):
    """Linear warm-up from 0, then a cosine from ``initial_learning_rate``
    down to a minimum.

    ``lr = initial_learning_rate * (r + (1 - r) (1 + cos(2 pi num_cycles
    p)) / 2)`` with ``p = (s - W) / max(1, T - W)`` and ``r = min_lr_rate``
    or ``min_lr / initial_learning_rate``: transformers'
    ``get_cosine_with_min_lr_schedule_with_warmup``. Exactly one of
    `min_lr` and `min_lr_rate` must be given. As there, the cosine keeps
    going past ``num_training_steps`` (back up after ``T`` with the default
    half wave).

    Args:
        initial_learning_rate: Float >= 0 (> 0 with `min_lr`), the learning
            rate at the end of the warm-up.
        num_warmup_steps: Int >= 0. Steps of the warm-up (`W`).
        num_training_steps: Int >= 0. Total steps (`T`).
        num_cycles: Float >= 0. Number of cosine waves between `W` and `T`.
            Defaults to `0.5`.
        min_lr: Float >= 0 or `None`. The minimum learning rate.
            Defaults to `None`.
        min_lr_rate: Float >= 0 or `None`. The minimum as a fraction of
            `initial_learning_rate`. Defaults to `None`.
    """

    _config_keys = (
        "initial_learning_rate",
        "num_warmup_steps",
        "num_training_steps",
        "num_cycles",
        "min_lr",
        "min_lr_rate",
    )

    def __init__(
        self,
        initial_learning_rate,
        num_warmup_steps,
        num_training_steps,
        num_cycles=0.5,
        min_lr=None,
        min_lr_rate=None,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )
        self.num_training_steps = base.check_int(
            "num_training_steps", num_training_steps, low=0
        )
        self.num_cycles = _check_num_cycles(num_cycles)
        if min_lr is not None and min_lr_rate is not None:
            raise ValueError(
                "Only one of `min_lr` and `min_lr_rate` may be set. "
                f"Received: min_lr={min_lr!r}, min_lr_rate={min_lr_rate!r}"
            )
        if min_lr is None and min_lr_rate is None:
            raise ValueError(
                "One of `min_lr` and `min_lr_rate` must be set. "
                "Received: min_lr=None, min_lr_rate=None"
            )
        if min_lr is not None:
            min_lr = base.check_real("min_lr", min_lr, low=0.0)
            if self.initial_learning_rate == 0.0:
                raise ValueError(
                    "Argument `initial_learning_rate` must be > 0 when "
                    "`min_lr` is set (the minimum is taken relative to "
                    "it). Received: initial_learning_rate=0"
                )
            self._rate = min_lr / self.initial_learning_rate
        else:
            min_lr_rate = base.check_real("min_lr_rate", min_lr_rate, low=0.0)
            self._rate = min_lr_rate
        self.min_lr, self.min_lr_rate = min_lr, min_lr_rate

    def _factor(self, step):
        length = max(1, self.num_training_steps - self.num_warmup_steps)
        to_start, to_end = cosine_factor(
            _after(step, self.num_warmup_steps), length, self.num_cycles
        )
        return to_start + self._rate * to_end


def _rise(kind, done, left, length):
    """transformers' WSD warm-up curves of ``x = done / length`` (with
    ``left = length - done``; float32 whole numbers): ``x``, ``(1 - cos(pi
    x)) / 2`` and ``1 - sqrt(1 - x)``."""
    if kind == "linear":
        return done / length
    if kind == "cosine":
        return base.cosine_weights(done, length)[1]
    return done / length / (1.0 + ops.sqrt(left / length))


@base.register
class WarmupStableDecay(base.Schedule):
    """Warm-up, stable phase, decay (WSD), then the minimum.

    With ``m = min_lr_ratio``, ``W = num_warmup_steps``, ``S =
    num_stable_steps`` (or ``num_training_steps - W - num_decay_steps``)
    and ``D = num_decay_steps``, the factor of ``initial_learning_rate`` is

    * ``m + (1 - m) f(s / max(1, W))`` for ``s < W``, with ``f`` the
      `warmup_type` curve from 0 to 1: ``"linear"`` ``x``, ``"cosine"``
      ``(1 - cos(pi x)) / 2``, ``"1-sqrt"`` ``1 - sqrt(1 - x)``;
    * ``1`` for ``W <= s < W + S``;
    * ``m + (1 - m) g((s - W - S) / max(1, D))`` for ``W + S <= s < W + S +
      D``, with the `decay_type` curve from 1 down: ``"linear"`` ``1 - x``,
      ``"cosine"`` ``(1 + cos(2 pi num_cycles x)) / 2``, ``"1-sqrt"`` ``1 -
      sqrt(x)``;
    * ``m`` from ``W + S + D`` on;

    each clipped at 0 (but the last): transformers' ``get_wsd_schedule``.
    As there, a `num_training_steps` shorter than ``W + D`` makes `S`
    negative: the decay then starts before the warm-up ends.

    Args:
        initial_learning_rate: Float >= 0, the learning rate of the stable
            phase.
        num_warmup_steps: Int >= 0. Steps of the warm-up.
        num_decay_steps: Int >= 0. Steps of the decay.
        num_training_steps: Int >= 0 or `None`. Total steps, giving the
            stable phase the steps left over. Defaults to `None`.
        num_stable_steps: Int >= 0 or `None`. Steps of the stable phase;
            wins (with a warning, as in transformers) when
            `num_training_steps` is given too. One of the two must be set.
            Defaults to `None`.
        warmup_type: `"linear"`, `"cosine"` or `"1-sqrt"`. Defaults to
            `"linear"`.
        decay_type: `"linear"`, `"cosine"` or `"1-sqrt"`. Defaults to
            `"cosine"`.
        min_lr_ratio: Float >= 0. The start of the warm-up and the end of
            the decay as a fraction of `initial_learning_rate`. Defaults to
            `0.0`.
        num_cycles: Float >= 0. Cosine waves of a `"cosine"` decay.
            Defaults to `0.5`.

    References:
        Hu et al., "MiniCPM: Unveiling the Potential of Small Language
        Models with Scalable Training Strategies", 2024,
        https://arxiv.org/abs/2404.06395
    """

    _config_keys = (
        "initial_learning_rate",
        "num_warmup_steps",
        "num_decay_steps",
        "num_training_steps",
        "num_stable_steps",
        "warmup_type",
        "decay_type",
        "min_lr_ratio",
        "num_cycles",
    )

    def __init__(
        self,
        initial_learning_rate,
        num_warmup_steps,
        num_decay_steps,
        num_training_steps=None,
        num_stable_steps=None,
        warmup_type="linear",
        decay_type="cosine",
        min_lr_ratio=0.0,
        num_cycles=0.5,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.num_warmup_steps = base.check_int(
            "num_warmup_steps", num_warmup_steps, low=0
        )
        self.num_decay_steps = base.check_int("num_decay_steps",
                                              num_decay_steps, low=0)
        if num_training_steps is None and num_stable_steps is None:
            raise ValueError(
                "One of `num_training_steps` and `num_stable_steps` must be "
                "set. Received: num_training_steps=None, "
                "num_stable_steps=None"
            )
        if num_training_steps is not None:
            num_training_steps = base.check_int(
                "num_training_steps", num_training_steps, low=0
            )
        if num_stable_steps is not None:
            num_stable_steps = base.check_int(
                "num_stable_steps", num_stable_steps, low=0
            )
            if num_training_steps is not None:
                warnings.warn(
                    "Both num_training_steps and num_stable_steps are "
                    "specified. num_stable_steps will be used.",
                    stacklevel=2,
                )
        self.num_training_steps = num_training_steps
        self.num_stable_steps = num_stable_steps
        self.warmup_type = base.check_choice(
            "warmup_type", warmup_type, _CURVES
        )
        self.decay_type = base.check_choice("decay_type", decay_type, _CURVES)
        self.min_lr_ratio = base.check_real(
            "min_lr_ratio", min_lr_ratio, low=0.0
        )
        self.num_cycles = _check_num_cycles(num_cycles)

    @property
    def stable_steps(self):
        """The length of the stable phase (may be negative, see above)."""
        if self.num_stable_steps is not None:
            return self.num_stable_steps
        return (
            self.num_training_steps
            - self.num_warmup_steps
            - self.num_decay_steps
        )

    def _value(self, step):
        m = self.min_lr_ratio
        warmup = self.num_warmup_steps
        decay_start = warmup + self.stable_steps
        decay_end = decay_start + self.num_decay_steps

        # warm-up
        length = max(1, warmup)
        done = ops.minimum(step, length)
        rising = _rise(
            self.warmup_type,
            base.to_float(done),
            base.to_float(length - done),
            float(length),
        )
        rising = ops.maximum(rising * (1.0 - m) + m, 0.0)

        # decay: n in [0, D] steps into it (clamped first: no overflow)
        length = max(1, self.num_decay_steps)
        n = _after(ops.minimum(step, max(decay_end, 0)), decay_start)
        n = ops.minimum(n, length)
        done = base.to_float(n) / length
        left = base.to_float(length - n) / length
        if self.decay_type == "cosine":
            falling = cosine_factor(n, length, self.num_cycles)[0]
        elif self.decay_type == "linear":
            falling = left
        else:
            falling = _one_minus_sqrt(done, left)
        falling = ops.maximum(falling * (1.0 - m) + m, 0.0)

        factor = ops.where(step < decay_end, falling, m)
        factor = ops.where(step < decay_start, 1.0, factor)
        factor = ops.where(step < warmup, rising, factor)
        return self.initial_learning_rate * factor


__all__ = [
    "ConstantWithWarmup",
    "LinearWithWarmup",
    "CosineWithWarmup",
    "CosineWithHardRestartsWithWarmup",
    "PolynomialWithWarmup",
    "InverseSqrt",
    "CosineWithMinLRWithWarmup",
    "WarmupStableDecay",
]
