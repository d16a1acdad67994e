"""Gradient transforms every keras-optzoo optimizer offers as options:
adaptive gradient clipping and gradient centralization (not an algorithm:
the leading underscore keeps this module out of auto-discovery).

Both act on one variable's gradient and both need to know which axis holds
a layer's *output units*. PyTorch puts them first (``nn.Linear.weight`` is
``(out, in)``, ``nn.Conv2d.weight`` is ``(out, in, kh, kw)``); Keras puts
them last (``Dense.kernel`` is ``(in, out)``, ``Conv2D.kernel`` is
``(kh, kw, in, out)``). The references reduce over every axis but the first;
here the reduction is over every axis but the **last**, which is the same
computation on the same layer wherever the Keras kernel's last axis is the
torch weight's first: Dense/EinsumDense-as-Dense, Conv1D/2D/3D, and the
transposed convolutions (Keras ``(kh, kw, out, in)``, torch ``(in, out, kh,
kw)``). It differs where both frameworks use the same layout, as an
``Embedding`` table (``(vocab, dim)`` in both: torch's units are its rows,
Keras's here its columns), and for depthwise kernels.
"""

from keras import ops

from keras_optzoo import _minmax


def _unit_axes(ndim):
    """The axes reduced per output unit: all but the last (Keras layout)."""
    return tuple(range(ndim - 1))


def unitwise_norm(x):
    """timm's ``unitwise_norm`` (2-norm) in the Keras layout: the norm of the
    whole tensor for ``ndim <= 1``, else one norm per output unit (over
    every axis but the last, kept as size-1 axes)."""
    if len(x.shape) <= 1:
        return ops.sqrt(ops.sum(ops.square(x)))
    return ops.sqrt(ops.sum(ops.square(x), axis=_unit_axes(len(x.shape)),
                            keepdims=True))


def adaptive_clip(grad, param, clip_factor, eps):
    """Adaptive gradient clipping (Brock et al., 2021), as timm 1.0's
    ``adaptive_clip_grad``: each unit's gradient is scaled down to
    ``clip_factor · max(‖θ_unit‖, eps)`` where its norm exceeds that.
    """
    dtype = grad.dtype
    # timm: unitwise_norm(p).clamp_(min=eps), g_norm.clamp(min=1e-6)
    max_norm = _minmax.maximum(unitwise_norm(ops.cast(param, dtype)),
                               eps) * ops.cast(clip_factor, dtype)
    grad_norm = unitwise_norm(grad)
    clipped = grad * (max_norm / _minmax.maximum(grad_norm, 1e-6))
    return ops.where(ops.less(grad_norm, max_norm), grad, clipped)


def centralize(grad, conv_only):
    """Gradient centralization (Yong et al., 2020), as pytorch-optimizer's
    ``centralize_gradient``: subtracts each output unit's mean (over every
    axis but the last) from a gradient of rank > 1 (rank > 3 with
    ``conv_only``: convolution kernels only); other gradients pass."""
    ndim = len(grad.shape)
    if ndim <= (3 if conv_only else 1):
        return grad
    return grad + ops.negative(
        ops.mean(grad, axis=_unit_axes(ndim), keepdims=True))


def transform(optimizer, grad, param):
    """The optimizer's enabled transforms on one dense gradient, in the
    references' order: AGC, then GC (pytorch-optimizer's Ranger21)."""
    if optimizer.agc_clip_factor is not None:
        grad = adaptive_clip(grad, param, optimizer.agc_clip_factor,
                             optimizer.agc_eps)
    if optimizer.gradient_centralization:
        grad = centralize(grad, optimizer.gc_conv_only)
    return grad
