"""What every keras-optzoo schedule shares.

* :class:`Schedule`, the base class: ``__call__(step)`` turns the step into a
  tensor once (integer steps stay integers, anything else is floored to
  float32, negative steps count as 0), hands it to the subclass's ``_value``
  and returns float32. ``get_config`` is generated from ``_config_keys``.
* Step arithmetic that neither overflows nor loses exactness: ``epoch`` and
  the periodic reductions are done with ``floor_divide``/``mod``/``minimum``
  in the step's own dtype (exact for any int32/int64 step) before anything is
  cast to float32.
* Float32 helpers accurate to a few ulps where the obvious formula is not:
  :func:`int_power` (``base ** n``) and :func:`cosine_weights`
  (``(1 +- cos(pi * a / b)) / 2``).
* User functions (``lr_lambda``, ``scale_fn``): a construction-time probe
  that they are traceable, and their (de)serialization.
* Argument checks in Keras's wording, on top of
  :mod:`keras_optzoo.optimizers.validation`.
"""

import math
import numbers
import re
import textwrap

import keras
from keras import ops

# check_bool is re-exported for the schedule modules.
from keras_optzoo.optimizers.validation import check_bool  # noqa: F401
from keras_optzoo.optimizers.validation import check_int  # noqa: F401
from keras_optzoo.optimizers.validation import check_real

PACKAGE = "keras_optzoo"

_HALF_PI = math.pi / 2
# exp() of a float32 argument below this is 0 (denormals included), above
# _EXP_OVERFLOW it is inf.
_EXP_UNDERFLOW = -104.0
_EXP_OVERFLOW = 89.0


_SHARED_DOCS = {
    "steps_per_epoch": (
        "steps_per_epoch: Int >= 1. Optimizer steps per epoch: step `s` is "
        "epoch `floor(s / steps_per_epoch)`, so torch's per-epoch sequence "
        "is repeated `steps_per_epoch` times per value. Defaults to `1` "
        "(one epoch per step)."
    ),
}


def _fill_docstring(doc):
    def replace(match):
        indent, key = match.group(1), match.group(2)
        return textwrap.fill(
            _SHARED_DOCS[key],
            width=79,
            initial_indent=indent,
            subsequent_indent=indent + "    ",
        )

    return re.sub(r"^( *)\{(\w+)\}$", replace, doc, flags=re.MULTILINE)


def register(cls):
    """Registers a schedule class for Keras serialization and fills the
    shared argument text (``{steps_per_epoch}``) of its docstring."""
    if cls.__doc__:
        cls.__doc__ = _fill_docstring(cls.__doc__)
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def check_choice(name, value, choices):
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(
            f"Argument `{name}` must be one of {{{allowed}}}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_learning_rate(value, name="initial_learning_rate"):
    return check_real(name, value, low=0.0)


def check_steps_per_epoch(value):
    return check_int("steps_per_epoch", value, low=1)


def check_schedule(name, value, index=None):
    """A child schedule: an instance, or its serialized form (a config)."""
    if isinstance(value, dict):
        value = keras.optimizers.schedules.deserialize(value)
    if not isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        where = f"{name}[{index}]" if index is not None else name
        raise TypeError(
            f"Argument `{where}` must be a "
            f"keras.optimizers.schedules.LearningRateSchedule. "
            f"Received: {where}={value!r} (of type {type(value).__name__})"
        )
    return value


def serialize_schedule(schedule):
    """Config entry for a child schedule (read by :func:`check_schedule`)."""
    return keras.optimizers.schedules.serialize(schedule)


# --------------------------------------------------------------------------
# Step arithmetic
# --------------------------------------------------------------------------


def is_integer(x):
    return "int" in keras.backend.standardize_dtype(x.dtype)


def as_step(step):
    """The step as a tensor: int dtypes kept, others floored float32, >= 0."""
    step = ops.convert_to_tensor(step)
    if not is_integer(step):
        step = ops.floor(ops.cast(step, "float32"))
    return ops.maximum(step, 0)


def epoch_of(step, steps_per_epoch):
    """``floor(step / steps_per_epoch)`` in the step's dtype (exact)."""
    if steps_per_epoch == 1:
        return step
    return ops.floor_divide(step, steps_per_epoch)


def to_float(x):
    return ops.cast(x, "float32")


# --------------------------------------------------------------------------
# Accurate float32 math
# --------------------------------------------------------------------------


def _split(value, bits=12):
    """``value == hi + lo`` (in float64) with ``hi`` holding ``bits`` bits."""
    if value == 0.0:
        return 0.0, 0.0
    mantissa, exponent = math.frexp(value)
    hi = math.ldexp(round(math.ldexp(mantissa, bits)), exponent - bits)
    return hi, value - hi


def int_power(base, n):
    """``base ** n`` for a Python float ``base > 0`` and a float32 tensor ``n``
    holding non-negative integers.

    ``exp(n * log(base))`` in float32 is off by ``|n log(base)| * 6e-8``
    relative (the rounding of the product), and ``pow(float32(base), n)`` by
    ``n`` times the rounding of ``base``; both exceed 1e-6 in ordinary use
    (``0.1 ** 6``, ``0.99 ** 1000``). Here ``log(base)`` is split into a
    12-bit head and a tail, and ``n`` (below 2**24) into two 12-bit halves,
    so that every product fed to ``exp`` is exact: the result is good to a
    few float32 ulps. Past the float32 range it is exactly 0 or inf (never
    NaN, whatever ``n``).
    """
    log = math.log(base)
    if log == 0.0:
        return ops.ones_like(n)
    hi, lo = _split(log)
    n_hi = ops.floor(n / 4096.0) * 4096.0
    n_lo = n - n_hi
    value = ops.exp(n_hi * hi) * ops.exp(n_lo * hi) * ops.exp(n * lo)
    total = n * log
    value = ops.where(total < _EXP_UNDERFLOW, 0.0, value)
    return ops.where(total > _EXP_OVERFLOW, float("inf"), value)


def cosine_weights(a, b):
    """``((1 + cos(pi a / b)) / 2, (1 - cos(pi a / b)) / 2)`` for float32
    ``0 <= a <= b``, ``b > 0``: the weights of the start and the end value
    of a cosine interpolation (they sum to 1).

    Each is a squared sine or cosine of an angle below ``pi / 4``, taken
    from ``a`` up to the middle and from ``b - a`` past it, so both keep full
    relative precision where they go to 0 (``1 + cos(x)`` cancels near
    ``x = pi``). Interpolating as ``start * w0 + end * w1`` then adds two
    non-negative terms and stays accurate even when the result is tiny.
    """
    u = a / b
    w = (b - a) / b
    first = u <= 0.5
    cos_u, sin_u = ops.cos(_HALF_PI * u), ops.sin(_HALF_PI * u)
    cos_w, sin_w = ops.cos(_HALF_PI * w), ops.sin(_HALF_PI * w)
    start = ops.where(first, ops.square(cos_u), ops.square(sin_w))
    end = ops.where(first, ops.square(sin_u), ops.square(cos_w))
    return start, end


def linear_weights(a, b):
    """``((b - a) / b, a / b)``: the weights of a linear interpolation,
    written so that the end value is reached exactly at ``a == b``."""
    return (b - a) / b, a / b


# --------------------------------------------------------------------------
# User functions
# --------------------------------------------------------------------------


def check_traceable(name, fn, shape=()):
    """Calls ``fn`` on a symbolic float32 epoch to check it is traceable.

    A function with a Python ``if`` on its argument, ``float(...)``,
    ``math.*`` or NumPy calls would run eagerly on the torch backend but
    fail (or be frozen at trace time) under ``jax.jit`` / ``tf.function``;
    this finds it at construction, on every backend.
    """
    if not callable(fn):
        raise TypeError(
            f"Argument `{name}` must be a callable. "
            f"Received: {name}={fn!r} (of type {type(fn).__name__})"
        )
    probe = keras.KerasTensor(shape=shape, dtype="float32")
    try:
        out = fn(probe)
    except Exception as err:
        raise ValueError(
            f"Argument `{name}` must be traceable: a function of the epoch "
            "written with keras.ops (use `keras.ops.where` instead of a "
            "Python `if`, `keras.ops.cos` instead of `math.cos`, and no "
            "`float()`). Calling it on a symbolic float32 epoch failed "
            f"with {type(err).__name__}: {err}. Received: {name}={fn!r}"
        ) from err
    out_shape = getattr(out, "shape", ())
    if not (
        isinstance(out, (numbers.Real, keras.KerasTensor))
        or hasattr(out, "dtype")
    ) or tuple(out_shape) not in ((), tuple(shape)):
        raise ValueError(
            f"Argument `{name}` must return a scalar (or, applied to a "
            f"vector of epochs, an elementwise result of shape {shape}). "
            f"Received: {name}={fn!r} returning {out!r}"
        )
    return fn


def serialize_function(owner, name, fn):
    """Config entry for a user function; only registered functions can be
    saved (a lambda or a plain function could not be found again on load)."""
    if fn is None:
        return None
    registered = keras.saving.get_registered_name(fn)
    if keras.saving.get_registered_object(registered) is not fn:
        raise ValueError(
            f"{owner}.get_config() cannot serialize `{name}`: only functions "
            "registered with "
            "`@keras.saving.register_keras_serializable()` can be saved. "
            "Define it with `def` at module level, decorate it, and pass "
            f"it again. Received: {name}={fn!r}"
        )
    return keras.saving.serialize_keras_object(fn)


def deserialize_function(value):
    if value is None or callable(value):
        return value
    return keras.saving.deserialize_keras_object(value)


# --------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base of the keras-optzoo schedules.

    A subclass sets ``_config_keys`` (its constructor arguments, stored as
    attributes of the same names) and implements ``_value(step)``, a pure
    ``keras.ops`` function of the step tensor made by :func:`as_step`.
    """

    _config_keys = ()

    def __call__(self, step):
        return ops.cast(self._value(as_step(step)), "float32")

    def _value(self, step):
        raise NotImplementedError

    @property
    def base_learning_rate(self):
        """The base rate this schedule scales (torch's optimizer ``lr``):
        ``schedule(step) / base_learning_rate`` is the factor a schedule
        applies to every param group's rate. ``initial_learning_rate`` for
        the schedules that have one; composite schedules and ``Noam``
        document theirs; None for a schedule that is not a learning rate
        (``CycleMomentum``)."""
        value = getattr(self, "initial_learning_rate", None)
        return None if value is None else float(value)

    def get_config(self):
        return {key: getattr(self, key) for key in self._config_keys}

    def __repr__(self):
        args = ", ".join(
            f"{key}={getattr(self, key)!r}" for key in self._config_keys
        )
        return f"{type(self).__name__}({args})"
