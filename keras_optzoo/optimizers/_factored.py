"""Factored second-moment statistics over the last two axes of the torch
tensor a variable maps to (Adafactor), on one variable or on a group of the
torch multi-tensor path.

A factored statistic is kept, in its slot, keepdims-shaped in the torch
layout (``keras_optzoo.layout``): Adafactor's row factor of a Dense kernel
``(in, out)`` is ``(out, 1)``. On one variable the helpers compute exactly
what the optimizers computed before the fast path took them: the variable
read through its layout, then ``MATH.mean`` over a torch axis. On a group
(``layouts`` a tuple, one Layout per tensor, the values TensorLists) the
reduction runs in the Keras layout, over the Keras axes that make the torch
axis (no transpose of full-size tensors), and the small keepdims-shaped
result is viewed in the torch layout (``MATH.transpose``/``MATH.reshape``,
one shape per tensor); the other way, :func:`from_torch` views a statistic
in the Keras layout, where it broadcasts against the variable.

Underscore module: infrastructure, not an algorithm (not auto-registered).
"""

import math

from keras_optzoo.fastpath import MATH


def layouts(optimizer, index):
    """The Layout of the variable at ``index``, or on the multi-tensor path
    (``index`` a tuple) the tuple of the group's Layouts."""
    if isinstance(index, tuple):
        return tuple(optimizer.layout_of(i) for i in index)
    return optimizer.layout_of(index)


def sizes(layouts):
    """The number of elements of the variable (an int), or a tuple of one
    per tensor of a group."""
    if isinstance(layouts, tuple):
        return tuple(math.prod(layout.shape) for layout in layouts)
    return math.prod(layouts.shape)


def per_tensor(values, dtype):
    """A Python float, or on a group (a tuple, one per tensor) a 1-D tensor
    for the per-tensor scalar math (``MATH.constant``)."""
    if isinstance(values, tuple):
        return MATH.constant(values, dtype)
    return values


def _shapes(x, layouts):
    shapes = getattr(x, "shapes", None)
    return shapes if shapes is not None else tuple(
        layout.shape for layout in layouts)


def torch_mean(x, layouts, torch_axis):
    """The mean of ``x`` (laid out as its Keras variable) over axis
    ``torch_axis`` of the torch tensor, keepdims-shaped in the torch layout
    (the shape of a factored slot)."""
    if not isinstance(layouts, tuple):
        return MATH.mean(layouts.to_torch(x), torch_axis, keepdims=True)
    axes = tuple(layout.torch_axes()[torch_axis] for layout in layouts)
    return to_torch(MATH.mean(x, axis=axes, keepdims=True), layouts)


def to_torch(x, layouts):
    """A keepdims-shaped statistic in the Keras layout, viewed in the torch
    layout (``Layout.keepdims_to_torch``); on one variable the full-size
    ``Layout.to_torch``."""
    if not isinstance(layouts, tuple):
        return layouts.to_torch(x)
    specs = [layout.keepdims_to_torch(shape)
             for layout, shape in zip(layouts, _shapes(x, layouts))]
    if any(axes is not None for axes, _ in specs):
        x = MATH.transpose(x, tuple(axes for axes, _ in specs))
    if any(shape is not None for _, shape in specs):
        x = MATH.reshape(x, tuple(shape for _, shape in specs))
    return x


def from_torch(y, layouts):
    """A keepdims-shaped statistic in the torch layout (a factored slot)
    viewed keepdims-shaped in the Keras layout, where it broadcasts against
    the variable (``Layout.from_torch``)."""
    if not isinstance(layouts, tuple):
        return layouts.from_torch(y)
    specs = [layout.keepdims_from_torch(shape)
             for layout, shape in zip(layouts, _shapes(y, layouts))]
    if any(shape is not None for shape, _ in specs):
        y = MATH.reshape(y, tuple(shape for shape, _ in specs))
    if any(axes is not None for _, axes in specs):
        y = MATH.transpose(y, tuple(axes for _, axes in specs))
    return y
