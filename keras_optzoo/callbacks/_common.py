"""Helpers shared by the keras-optzoo callbacks."""

import numpy as np
from keras import ops


def unwrap(optimizer):
    """The optimizer that owns the learning rate (LossScaleOptimizer wraps)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def as_float(value):
    """A 0-d tensor or variable of any backend as a Python float."""
    return float(np.asarray(ops.convert_to_numpy(value)))
