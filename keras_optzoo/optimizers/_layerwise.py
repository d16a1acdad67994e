"""Per-tensor helpers shared by the layer-wise optimizers (LAMB, LARS,
NovoGrad, AdamP, SGDP): norms, trust ratios, cautious masks, and the
decoupled weight decay of those whose reference applies the decay inside its
own update rather than as L2 on the gradient (``weight_decay_in_update``).

Underscore module: infrastructure, not an algorithm (not auto-registered).
"""

import math

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
    through float32 on TF; this does not): ``MATH.constant``."""
    return MATH.constant(value, dtype)


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


def stack(tensors):
    """``ops.stack`` of per-tensor scalars (the norms of :func:`norms`): on
    the torch backend ``torch.stack`` itself, the same op without Keras's
    dispatch (~0.05 ms a step for Lamb's global norm, 10 tensors)."""
    if keras.backend.backend() == "torch":
        import torch

        if all(isinstance(t, torch.Tensor) for t in tensors):
            return torch.stack(tensors)
    return ops.stack(tensors)


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


def _row_axes(layout):
    """The Keras axes a channel's row runs along (all but the unit axes)."""
    units = set(layout.unit_axes)
    return tuple(a for a in range(len(layout.shape)) if a not in units)


def _keepdims_from_rows(values, layout):
    """One value per torch row (torch's row order) as a keepdims-shaped
    tensor in the Keras layout (1 along the row axes)."""
    units = tuple(layout.unit_axes)
    values = ops.reshape(values, tuple(layout.shape[a] for a in units))
    order = sorted(range(len(units)), key=lambda i: units[i])
    if order != list(range(len(units))):
        values = ops.transpose(values, order)
    return ops.reshape(values, tuple(
        dim if a in units else 1 for a, dim in enumerate(layout.shape)))


def _view_reduce(x, layouts, by_channel, kind):
    """``kind`` ("sum", "norm") of each row of a view of ``x`` (laid out as
    its Keras variable), keepdims-shaped so that it broadcasts against
    ``x``: the rows of the channel view (torch's first axis, the unit axes
    of ``layouts``) or the one row of the layer view.

    ``layouts`` is the variable's Layout, or on the fast path the tuple of
    a group's Layouts (``x`` a TensorList): there the channel view reduces
    over each tensor's own row axes and the layer view is the whole-tensor
    reduction (one value per tensor). A single variable is reduced through
    the torch view, as the reference computes it (the same sums, in the
    same order, as before the fast path took AdamP)."""
    if isinstance(layouts, tuple):
        if not by_channel:
            return MATH.norm(x) if kind == "norm" else MATH.sum(x)
        axes = tuple(_row_axes(layout) for layout in layouts)
        if kind == "norm":
            return MATH.norm(x, axis=axes, keepdims=True)
        return MATH.sum(x, axis=axes, keepdims=True)
    layout = layouts
    rows = layout.torch_shape[0] if by_channel else 1
    view = ops.reshape(layout.to_torch(x), (rows, -1))
    if kind == "norm":
        out = ops.sqrt(ops.sum(ops.square(view), axis=1))
    else:
        out = ops.sum(view, axis=1)
    if by_channel:
        return _keepdims_from_rows(out, layout)
    return ops.reshape(out, (1,) * len(layout.shape))


def projection(param, grad, perturb, layouts, delta, wd_ratio, eps,
               use_caution):
    """AdamP/SGDP's projection (clovaai's code, as in timm), for a variable
    of rank >= 2: returns ``(perturb, decay_factor)``.

    The views are the channel view ``(shape[0], -1)`` of the torch tensor
    the variable maps to (``layouts``: its Layout; on the fast path the
    tuple of a group's Layouts, with TensorList values) and the layer view
    ``(1, -1)``, tried in that order. If the largest absolute cosine
    similarity between the gradient and the parameter rows of a view is
    below ``delta / sqrt(row length)``, the radial component (along each
    normalised parameter row) is removed from ``perturb`` and the decay
    factor is ``wd_ratio``; otherwise the next view is tried, and when
    neither projects ``perturb`` is returned unchanged with factor 1. With
    ``use_caution`` the projected direction is masked against the tangential
    gradient and projected again (timm's spherical caution), the
    unprojected one against the gradient.

    Everything is computed in the Keras layout: a row of the torch view is
    the set of elements sharing their unit-axis indices (``Layout``), so the
    per-row sums are reductions over the other axes, kept as
    keepdims-shaped tensors that broadcast back over the rows (no
    transposes of the full tensors). The selection between the views is a
    ``where`` on the conditions (no host read), except on the torch fast
    path's CPU steps, where the conditions are guards of the recording
    (``MATH.where_lazy``) and a branch no tensor of the group takes is not
    computed.
    """
    group = isinstance(layouts, tuple)
    every = layouts if group else (layouts,)
    dtype = param.dtype
    eps_t = constant(eps, dtype)

    def candidate(by_channel):
        def total(x, kind="sum"):
            return _view_reduce(x, layouts, by_channel, kind)

        # a channel's row length: the torch tensor's size over its rows
        cols = tuple(math.prod(layout.shape) // (
            layout.torch_shape[0] if by_channel else 1) for layout in every)
        thresholds = tuple(delta / (c ** 0.5) for c in cols)
        p_norm = total(param, "norm")
        g_norm = total(grad, "norm")
        # torch.nn.functional.cosine_similarity: each row divided by its
        # norm clamped at eps, then the dot product
        cosine = MATH.abs(total(
            (grad / MATH.maximum(g_norm, eps))
            * (param / MATH.maximum(p_norm, eps))))
        # NaN-propagating max: a NaN cosine fails the test (no projection),
        # as `cosine_sim.max() < threshold` does in torch. (A group's layer
        # view has one value per tensor already.)
        largest = cosine if group and not by_channel else MATH.amax(cosine)
        condition = ops.less(largest, MATH.constant(
            thresholds if group else thresholds[0], dtype))
        def projected():
            p_n = param / (p_norm + eps_t)

            def radial(x):
                return p_n * total(p_n * x)

            out = perturb - radial(perturb)
            if use_caution:
                grad_perp = grad - radial(grad)
                out = caution(out, grad_perp)
                out = out - radial(out)
            return out

        return condition, projected

    def plain():
        return caution(perturb, grad) if use_caution else perturb

    # each branch is built only where it can be selected (MATH.where_lazy):
    # on the torch fast path's CPU steps the conditions are guards of the
    # recording, and, as timm stops at the first view that projects, a
    # group whose tensors all project by channel never builds the layer
    # view, and a projection no tensor takes is not computed
    by_channel, channel = candidate(True)
    layer_view = []

    def otherwise():
        by_layer, layer = candidate(False)
        layer_view.append(by_layer)
        return MATH.where_lazy(by_layer, layer, plain, perturb)

    out = MATH.where_lazy(by_channel, channel, otherwise, perturb)
    projects = ops.logical_or(by_channel, layer_view[0]) if layer_view \
        else by_channel
    factor = ops.where(projects, constant(wd_ratio, dtype),
                       constant(1.0, dtype))
    return out, factor
