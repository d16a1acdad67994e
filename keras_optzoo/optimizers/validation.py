"""Argument checks shared by every optimizer, schedule and callback.

Messages follow Keras's wording so that users see one style everywhere:
``Argument `beta_1` must be in [0, 1). Received: beta_1=1.5``.
"""

import math
import numbers

import keras

__all__ = [
    "as_real",
    "check_bool",
    "check_int",
    "check_real",
    "check_real_or_schedule",
]


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_text(low, high, low_open, high_open):
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f"in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "a real number"


def check_real(name, value, low=None, high=None, low_open=False,
               high_open=False, finite=True):
    """Returns ``value`` as a Python float after checking its type and range.

    NaN is always rejected, and so is ±inf unless ``finite=False``.

    Raises:
        TypeError: when ``value`` is not a real number (bools are rejected).
        ValueError: when it is outside the range, in Keras's wording, or
            None (a missing value, as Keras raises ValueError for
            ``AdamW(weight_decay=None)``).
    """
    _reject_none(name, value)
    if not _is_real(value):
        raise TypeError(
            f"Argument `{name}` must be a real number. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    value = float(value)
    bad = (
        value != value  # NaN
        or (low is not None and (value <= low if low_open else value < low))
        or (high is not None and (value >= high if high_open else value > high))
    )
    if bad:
        raise ValueError(
            f"Argument `{name}` must be "
            f"{_range_text(low, high, low_open, high_open)}. "
            f"Received: {name}={value:g}"
        )
    if finite and value in (math.inf, -math.inf):
        raise ValueError(
            f"Argument `{name}` must be a finite number "
            f"{_range_text(low, high, low_open, high_open)}. "
            f"Received: {name}={value:g}"
        )
    return value


def check_real_or_schedule(name, value, low=None, high=None, low_open=False,
                           high_open=False):
    """Like :func:`check_real`, but a ``LearningRateSchedule`` passes as is.

    A schedule's values are not checked here: they are only known per step.
    """
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return value
    _reject_none(name, value)
    if not _is_real(value):
        raise TypeError(
            f"Argument `{name}` must be a real number or a "
            f"keras.optimizers.schedules.LearningRateSchedule. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    return check_real(name, value, low, high, low_open, high_open)


def _reject_none(name, value):
    """None where a number is expected is a missing value: ValueError, as
    Keras raises (other wrong types stay TypeError)."""
    if value is None:
        raise ValueError(
            f"Argument `{name}` must be a real number, not None. "
            f"Received: {name}=None"
        )


def check_int(name, value, low=None, high=None):
    """Returns ``value`` as a Python int after checking its type and range
    (``low <= value``, and ``value < high`` where ``high`` is given).

    Raises:
        TypeError: when ``value`` is not an integer (bools are rejected).
        ValueError: when it is outside the range, or None (a missing value).
    """
    if value is None:
        raise ValueError(f"Argument `{name}` must be an integer, not None. "
                         f"Received: {name}=None")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer. "
            f"Received: {name}={value!r} (of type {type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None
                                             and value >= high):
        text = (f"in [{low}, {high})" if low is not None and high is not None
                else f">= {low}" if low is not None else f"< {high}")
        raise ValueError(f"Argument `{name}` must be {text}. "
                         f"Received: {name}={value}")
    return value


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Argument `{name}` must be True or False. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    return value


def as_real(value):
    """Turns any real number (int, numpy scalar, 0-d array) into a float.

    Anything else is returned unchanged (a schedule, a callable, a tensor).
    """
    if _is_real(value):
        return float(value)
    shape = getattr(value, "shape", None)
    if shape == () and getattr(value, "dtype", None) is not None:
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    return value
