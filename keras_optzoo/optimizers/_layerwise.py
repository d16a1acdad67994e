"""Per-tensor helpers shared by the layer-wise optimizers (LAMB, LARS,
NovoGrad, AdamP, SGDP): norms, trust ratios, cautious masks, and the
decoupled weight decay of those whose reference applies the decay inside its
own update rather than as L2 on the gradient (``weight_decay_in_update``).

Underscore module: infrastructure, not an algorithm (not auto-registered).
"""

import keras
from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.fastpath import MATH


# float64 variables: on the torch backend ``ops.mean`` and ``ops.norm``
# compute in float32 for float64 inputs (Keras's type promotion maps 64-bit
# to 32-bit types), and on TF ``ops.cast`` of a Python float rounds it
# through float32. The helpers below avoid both; float32 values are
# unchanged. Maximum, minimum and clamp come from ``keras_optzoo._minmax``
# (dtype kept, NaN propagated as torch does).


def constant(value, dtype):
    """A Python float as a 0-d tensor of ``dtype`` (``ops.cast`` rounds it
    through float32 on TF; this does not)."""
    return ops.convert_to_tensor(value, dtype=dtype)


def mean(x):
    """The mean of a whole tensor, in float64 for float64 ``x`` (one value
    per tensor on the fast path's TensorLists: ``MATH.mean``)."""
    return MATH.mean(x)


def decoupled_decay(optimizer, param, lr, index, add=False):
    """``param`` of a decayed variable scaled by ``1 - lr * weight_decay``
    (timm's ``decoupled_decay``, before the update; ``add`` writes it as
    ``param + param * (-lr * wd)``, as timm's Lamb does). These optimizers
    set ``weight_decay_in_update``, so ``_prepare`` applies no decay of its
    own; the coupled one is left to their ``_update``."""
    if not optimizer._decay_mask[index]:
        return param
    wd = optimizer._weight_decay_value(param.dtype)
    if add:
        # timm Lamb's `p.add_(p, alpha=-lr * wd)`: rounds like it
        return param + param * (lr * -wd)
    return param * (1.0 - lr * wd)


def norm(x):
    """The 2-norm of a whole tensor (a 0-d tensor), as torch's CPU
    ``Tensor.norm`` computes it (``MATH.norm``: ``sqrt(sum(x**2))``, or
    ``|x|`` for one element; one value per tensor on a TensorList)."""
    return MATH.norm(x)


def norms(tensors):
    """The 2-norm of each tensor of a list, as :func:`norm` computes it:
    on the torch backend one ``torch._foreach_norm`` (per tensor the same
    ``Tensor.norm``, one-element tensors included) instead of a few ops per
    tensor; elsewhere :func:`norm` of each."""
    if keras.backend.backend() == "torch" and len(tensors) > 1:
        import torch

        if all(isinstance(t, torch.Tensor) for t in tensors) and len(
                {(t.dtype, t.device) for t in tensors}) == 1:
            return list(torch._foreach_norm(tensors))
    return [norm(x) for x in tensors]


def guarded_ratio(w_norm, g_norm, ratio):
    """``ratio`` where both norms are positive, else 1 (timm's nested where)."""
    one = ops.ones_like(ratio)
    return ops.where(ops.greater(w_norm, 0.0),
                     ops.where(ops.greater(g_norm, 0.0), ratio, one), one)


def caution(update, grad):
    """timm's cautious masking (Liang et al., 2024): keep the components of
    ``update`` that agree in sign with ``grad``, rescaled by the inverse of
    the kept fraction (clamped at 1e-3)."""
    mask = MATH.cast(MATH.greater(update * grad, 0.0), update.dtype)
    scale = _minmax.maximum(mean(mask), 1e-3)
    return update * (mask / scale)


def projection(param, grad, perturb, delta, wd_ratio, eps, use_caution):
    """AdamP/SGDP's projection (clovaai's code, as in timm), for a variable
    of rank >= 2: returns ``(perturb, decay_factor)``.

    The views are the channel view ``(shape[0], -1)`` and the layer view
    ``(1, -1)``, tried in that order. If the largest absolute cosine
    similarity between the gradient and the parameter rows of a view is
    below ``delta / sqrt(row length)``, the radial component (along each
    normalised parameter row) is removed from ``perturb`` and the decay
    factor is ``wd_ratio``; otherwise the next view is tried, and when
    neither projects ``perturb`` is returned unchanged with factor 1. With
    ``use_caution`` the projected direction is masked against the tangential
    gradient and projected again (timm's spherical caution), the
    unprojected one against the gradient.
    """
    shape = tuple(param.shape)
    size = 1
    for dim in shape:
        size *= int(dim)
    expand = (-1,) + (1,) * (len(shape) - 1)
    dtype = param.dtype
    eps_t = constant(eps, dtype)
    candidates = []
    for rows in (int(shape[0]), 1):
        cols = size // rows if rows else 0
        param_view = ops.reshape(param, (rows, cols))
        grad_view = ops.reshape(grad, (rows, cols))
        p_norm = ops.sqrt(ops.sum(ops.square(param_view), axis=1))
        g_norm = ops.sqrt(ops.sum(ops.square(grad_view), axis=1))
        # torch.nn.functional.cosine_similarity: each row divided by its
        # norm clamped at eps, then the dot product
        cosine = ops.abs(ops.sum(
            (grad_view / ops.expand_dims(_minmax.maximum(g_norm, eps), 1))
            * (param_view
               / ops.expand_dims(_minmax.maximum(p_norm, eps), 1)),
            axis=1))
        threshold = delta / (cols ** 0.5)
        # NaN-propagating max: a NaN cosine fails the test (no projection),
        # as `cosine_sim.max() < threshold` does in torch
        condition = ops.less(_minmax.amax(cosine),
                             constant(threshold, dtype))
        p_n = param / ops.reshape(p_norm + eps_t, expand)

        def radial(x, p_n=p_n, rows=rows, cols=cols):
            dots = ops.sum(ops.reshape(p_n * x, (rows, cols)), axis=1)
            return p_n * ops.reshape(dots, expand)

        projected = perturb - radial(perturb)
        if use_caution:
            grad_perp = grad - radial(grad)
            projected = caution(projected, grad_perp)
            projected = projected - radial(projected)
        candidates.append((condition, projected))
    plain = caution(perturb, grad) if use_caution else perturb
    (by_channel, channel), (by_layer, layer) = candidates
    out = ops.where(by_channel, channel, ops.where(by_layer, layer, plain))
    factor = ops.where(ops.logical_or(by_channel, by_layer),
                       constant(wd_ratio, dtype), constant(1.0, dtype))
    return out, factor
