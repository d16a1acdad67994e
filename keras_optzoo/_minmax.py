"""Elementwise maximum, minimum and clamp as torch computes them, on every
backend: the result keeps the operands' floating dtype, and a NaN in either
operand gives NaN (``torch.maximum``/``torch.minimum``; ``torch.clamp``
leaves a NaN input NaN).

``keras.ops`` falls short of that in two ways, both found by the float64 and
NaN/inf tests:

* dtype: Keras's type promotion maps 64-bit types to 32-bit ones outside
  TensorFlow, so ``ops.maximum``/``ops.minimum`` of two float64 tensors is
  float32 on the torch backend (and on JAX with x64 enabled);
* NaN: XLA's CPU min/max (TF's ``jit_compile=True``, how Keras compiles a
  TF train step) returns the other operand when only the second one is NaN,
  and its ``reduce_max`` skips NaN, where torch propagates them.

Used by the optimizers and by the fast path's ``MATH`` for plain tensors, so
it lives outside ``keras_optzoo.optimizers`` (the fast path imports no
optimizer module) and imports nothing from this package.
"""

import numbers

import keras
import numpy as np
from keras import ops


def _is_number(x):
    return isinstance(x, (numbers.Number, np.generic)) and not isinstance(
        x, (bool, np.bool_))


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _result_dtype(x, y):
    """The dtype of tensors ``x``, ``y`` (either may be a Python number,
    which takes the other's dtype): equal dtypes are kept, float64 wins a
    mix (the zoo keeps float64 variables float64), anything else follows
    Keras's promotion."""
    dtypes = [_dtype(v) for v in (x, y) if not _is_number(v)]
    if not dtypes:
        return keras.config.floatx()
    if len(dtypes) == 1 or dtypes[0] == dtypes[1]:
        dtype = dtypes[0]
    elif "float64" in dtypes:
        dtype = "float64"
    else:
        dtype = keras.backend.result_type(*dtypes)
    if "float" not in dtype:
        # an integer tensor against a float (e.g. a step count and 1.0)
        numbers_ = [v for v in (x, y) if _is_number(v)]
        if any(isinstance(v, (float, np.floating)) for v in numbers_):
            dtype = keras.config.floatx()
    return dtype


def _as(x, dtype):
    """``x`` as a tensor of ``dtype``; a number is converted directly (not
    through float32, as ``ops.cast`` of a Python float is on TF)."""
    if _is_number(x):
        return ops.convert_to_tensor(x, dtype=dtype)
    if not ops.is_tensor(x):
        x = ops.convert_to_tensor(x)
    return x if _dtype(x) == dtype else ops.cast(x, dtype)


def _binary(name, x, y):
    backend = keras.backend.backend()
    dtype = _result_dtype(x, y)
    if backend == "torch":
        import torch

        # a number bound is torch.clamp's scalar overload: same result as
        # torch.maximum/minimum with a tensor of the other's dtype, no
        # tensor made per call
        if _is_number(y) and not _is_number(x):
            x = _as(x, dtype)
            return torch.clamp(x, **{"min" if name == "maximum" else "max":
                                     float(y) if "float" in dtype else y})
        if _is_number(x) and not _is_number(y):
            return _binary(name, y, x)
        return getattr(torch, name)(_as(x, dtype), _as(y, dtype))
    x, y = _as(x, dtype), _as(y, dtype)
    if backend == "jax":
        import jax.numpy as jnp

        return getattr(jnp, name)(x, y)  # XLA's max/min in JAX keep NaN
    if backend == "tensorflow":
        import tensorflow as tf

        out = getattr(tf, name)(x, y)
        if "float" not in dtype:
            return out
        # x + y is NaN where either is; the mask does not depend on which
        # operand XLA happens to test
        return tf.where(tf.math.logical_or(tf.math.is_nan(x),
                                           tf.math.is_nan(y)), x + y, out)
    return getattr(ops, name)(x, y)


def maximum(x, y):
    """Elementwise ``torch.maximum(x, y)``: NaN if either is NaN, in the
    operands' dtype (a Python number takes the tensor's)."""
    return _binary("maximum", x, y)


def minimum(x, y):
    """Elementwise ``torch.minimum(x, y)``: NaN if either is NaN, in the
    operands' dtype (a Python number takes the tensor's)."""
    return _binary("minimum", x, y)


def clamp(x, lo=None, hi=None):
    """``torch.clamp(x, min=lo, max=hi)``: ``minimum(maximum(x, lo), hi)``
    with either bound optional (a number or a tensor); a NaN ``x`` stays
    NaN."""
    if lo is not None:
        x = maximum(x, lo)
    if hi is not None:
        x = minimum(x, hi)
    return x


def amax(x):
    """The largest element of a whole tensor as a 0-d tensor, NaN if any
    element is NaN (``torch.Tensor.max()``; XLA's reduction on TF skips
    NaN)."""
    out = ops.max(x)
    if keras.backend.backend() != "tensorflow" or "float" not in _dtype(x):
        return out
    import tensorflow as tf

    return tf.where(tf.reduce_any(tf.math.is_nan(x)),
                    tf.constant(float("nan"), out.dtype), out)
