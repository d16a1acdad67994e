"""Double-precision scalar arithmetic inside compiled steps, on every backend.

Some optimizers keep scalar bookkeeping that their reference computes in
Python floats (IEEE doubles) on the host: schedule-free's running maximum
of the learning rate and its running sum of averaging weights. In float32 a
running sum drifts (after k additions its relative error grows like
k·2⁻²⁴), so these values are computed here in float64, inside the compiled
step, with the same IEEE operations as Python's floats: the results equal
the reference's doubles bit for bit (``**`` up to the platform's ``pow``).

* Computing: float64 tensors. TensorFlow and torch have them; JAX has them
  only with ``jax_enable_x64``, so on JAX the scalar math runs inside
  ``jax.enable_x64(True)`` (:func:`scope`): a float64 island in a float32
  program, which XLA compiles like any other (the model and the optimizer's
  tensors stay float32).
* Storing: a double ``d`` is kept in three float32 variables, its *limbs*
  ``hi = f32(d)``, ``mid = f32(d - hi)``, ``low = f32(d - hi - mid)``,
  whose sum is ``d`` exactly (24 + 24 + 24 bits cover a double's 53) for
  ``|d|`` from 1e-23 up to float32's largest value, 3.4e38 (below 1e-23
  the low limb is no longer a normal float32, and XLA flushes subnormals to
  zero: the relative error stays below 2⁻⁴⁸ down to ~1e-31). float32
  variables exist on every backend and keep the optimizer's state float32
  under mixed precision; for a float64 slot ``hi`` holds ``d`` and the other
  limbs are 0.
"""

import contextlib

import keras
import numpy as np
from keras import ops


def scope():
    """Context in which float64 tensors are float64 (JAX: ``enable_x64``).

    Enter it around the scalar math only: on JAX, arrays created inside it
    from Python numbers without a dtype would be 64-bit.
    """
    if keras.backend.backend() == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def limbs_of(value):
    """A Python float -> its three float32 limbs, as Python floats."""
    hi = float(np.float32(value))
    mid = float(np.float32(value - hi))
    low = float(np.float32(value - hi - mid))
    return hi, mid, low


def double_of(limbs):
    """Three limbs (numbers or numpy values) -> the Python float."""
    hi, mid, low = (float(np.float64(np.asarray(x))) for x in limbs)
    return (hi + mid) + low


def load(hi, mid, low):
    """Three limbs (tensors) -> the float64 tensor (exact)."""
    return (ops.cast(hi, "float64") + ops.cast(mid, "float64")) \
        + ops.cast(low, "float64")


def store(value, dtype):
    """A float64 tensor -> its three limbs as tensors of ``dtype``."""
    hi = ops.cast(value, dtype)
    rest = value - ops.cast(hi, "float64")
    mid = ops.cast(rest, dtype)
    low = ops.cast(rest - ops.cast(mid, "float64"), dtype)
    return hi, mid, low


def const(value):
    """A Python float as a 0-d float64 tensor."""
    return ops.convert_to_tensor(np.float64(value), "float64")


def maximum(a, b):
    """Python's ``max(a, b)``: ``a`` unless ``b > a`` (float64 kept)."""
    return ops.where(b > a, b, a)


def power(a, exponent):
    """``a ** exponent`` for a Python-float exponent, with Python's
    ``x ** 0.0 == 1.0`` for every x."""
    if exponent == 0.0:
        return ops.ones_like(a)
    return ops.power(a, exponent)


__all__ = ["scope", "limbs_of", "double_of", "load", "store", "const",
           "maximum", "power"]
