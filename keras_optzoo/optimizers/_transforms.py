"""Gradient transforms every keras-optzoo optimizer offers as options:
adaptive gradient clipping and gradient centralization (not an algorithm:
the leading underscore keeps this module out of auto-discovery).

Both act on one variable's gradient, per *output unit*: the references
reduce over every axis of the torch tensor but the first (``nn.Linear``'s
``(out, in)`` rows, ``nn.Conv2d``'s ``(out, in, kh, kw)`` filters, an
``nn.Embedding``'s token rows). A Keras variable is read through the layout
rule (``keras_optzoo/layout.py``): the reduction runs over every Keras axis
except those that form torch's first axis (``Layout.unit_axes``: a Dense or
convolution kernel's last axis, an Embedding's first, a depthwise kernel's
last two), which is the references' computation on the same layer.
"""

from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo import _minmax


def _reduced_axes(layout):
    """The Keras axes reduced per output unit: all but ``unit_axes``."""
    units = set(layout.unit_axes)
    return tuple(a for a in range(len(layout.shape)) if a not in units)


def unitwise_norm(x, layout):
    """timm's ``unitwise_norm`` (2-norm) through the layout rule: the norm of
    the whole tensor for ``ndim <= 1``, else one norm per output unit (kept
    as size-1 axes)."""
    if len(x.shape) <= 1:
        return ops.sqrt(ops.sum(ops.square(x)))
    return ops.sqrt(ops.sum(ops.square(x), axis=_reduced_axes(layout),
                            keepdims=True))


def adaptive_clip(grad, param, clip_factor, eps, layout):
    """Adaptive gradient clipping (Brock et al., 2021), as timm 1.0's
    ``adaptive_clip_grad``: each unit's gradient is scaled down to
    ``clip_factor · max(‖θ_unit‖, eps)`` where its norm exceeds that.
    """
    dtype = grad.dtype
    # timm: unitwise_norm(p).clamp_(min=eps), g_norm.clamp(min=1e-6)
    max_norm = _minmax.maximum(unitwise_norm(ops.cast(param, dtype), layout),
                               eps) * ops.cast(clip_factor, dtype)
    grad_norm = unitwise_norm(grad, layout)
    clipped = grad * (max_norm / _minmax.maximum(grad_norm, 1e-6))
    return ops.where(ops.less(grad_norm, max_norm), grad, clipped)


def centralize(grad, conv_only, layout):
    """Gradient centralization (Yong et al., 2020), as pytorch-optimizer's
    ``centralize_gradient``: subtracts each output unit's mean from a
    gradient whose torch tensor has rank > 1 (rank > 3 with ``conv_only``:
    2-D and 3-D convolution kernels); other gradients pass."""
    ndim = len(layout.torch_shape)
    if ndim <= (3 if conv_only else 1):
        return grad
    return grad + ops.negative(
        MATH.mean(grad, axis=_reduced_axes(layout), keepdims=True))


def transform(optimizer, grad, param, layout):
    """The optimizer's enabled transforms on one dense gradient, in the
    references' order: AGC, then GC (pytorch-optimizer's Ranger21)."""
    if optimizer.agc_clip_factor is not None:
        grad = adaptive_clip(grad, param, optimizer.agc_clip_factor,
                             optimizer.agc_eps, layout)
    if optimizer.gradient_centralization:
        grad = centralize(grad, optimizer.gc_conv_only, layout)
    return grad
