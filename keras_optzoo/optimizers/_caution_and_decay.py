"""Shared pieces of the second-wave optimizers that take their weight decay
and cautious masking from timm / pytorch-optimizer (not an algorithm: the
leading underscore keeps this module out of auto-discovery).

* :class:`OwnWeightDecay`: sets ``weight_decay_in_update`` (``_prepare``
  casts and applies ``maximize`` but no weight decay), for optimizers whose
  reference applies the decay somewhere else (after the update, before a
  saved initial point, without the learning rate); their ``_update``
  applies it, asking :meth:`ZooOptimizer._decays` whether this variable
  gets any (which keeps ``exclude_from_weight_decay`` working on both
  execution paths).
* :func:`timm_caution` / :func:`pto_caution`: the "cautious" masks of
  Liang et al., 2024, in the two normalisations the references use. Both
  need a per-tensor reduction, one of the torch fast path's
  (``self._math.mean``, ``self._math.sum``); pytorch-optimizer's also needs
  each tensor's size, a Python number per tensor (a tuple on the fast path,
  from the group's layouts).
"""

import math

from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo.optimizers import _layerwise


class OwnWeightDecay:
    """Mixin: no weight decay in ``_prepare`` (ZooOptimizer's
    ``weight_decay_in_update``); see the module docstring."""

    weight_decay_in_update = True


def timm_caution(update, grad):
    """timm's cautious update: ``u · m / max(mean(m), 1e-3)``, with
    ``m = 1[u · g > 0]`` (a per-tensor mean; :func:`_layerwise.caution`)."""
    return _layerwise.caution(update, grad)


def pto_caution(update, grad, optimizer, index):
    """pytorch-optimizer's ``apply_cautious``: ``u · m · n / (Σm + 1)``,
    with ``m = 1[u · g > 0]`` and ``n`` the number of elements.

    On the torch fast path (``index`` a tuple, TensorList values) ``n`` is
    one Python number per tensor (the layouts' sizes) and ``Σm`` one value
    per tensor. There ``n / (Σm + 1)`` is written as torch evaluates a
    Python number divided by a tensor on the per-variable path (and in the
    reference): ``reciprocal(Σm + 1) · n``, which rounds differently from a
    true division."""
    mask = MATH.cast(MATH.greater(update * grad, 0.0), update.dtype)
    if not isinstance(index, tuple):
        size = float(math.prod(int(d) for d in update.shape))
        return update * (mask * (size / (ops.sum(mask) + 1.0)))
    sizes = MATH.constant(tuple(
        float(math.prod(optimizer.layout_of(i).shape)) for i in index),
        update.dtype)
    return update * (mask * ((1.0 / (MATH.sum(mask) + 1.0)) * sizes))
