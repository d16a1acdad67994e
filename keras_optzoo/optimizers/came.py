"""CAME, as came-pytorch's `CAME` (confidence-guided factored moments)."""

import math

import numpy as np
from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo import _minmax
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def _rms(x, numel, dtype):
    """``norm(x) / sqrt(numel)`` as a 0-d value of ``dtype``."""
    x = ops.cast(x, dtype)
    return ops.sqrt(ops.sum(x * x)) / math.sqrt(numel)


def _factored_inverse_sqrt(row, col):
    """The factored approximation of ``1/sqrt(V)`` shared by fairseq's
    Adafactor and CAME: ``rsqrt(R / mean(R)) ⊗ rsqrt(C)`` with ``R`` of shape
    ``(..., n)`` and ``C`` of shape ``(..., m)``; the result is
    ``(..., n, m)``."""
    r_factor = ops.rsqrt(row / MATH.mean(row, -1, keepdims=True))
    c_factor = ops.rsqrt(col)
    return ops.expand_dims(r_factor, -1) * ops.expand_dims(c_factor, -2)


def _clip_by_rms(update, numel, clip_threshold, sdt):
    """``update / max(1, RMS(update) / d)``."""
    denom = _minmax.clamp(_rms(update, numel, sdt) / clip_threshold, 1.0)
    return update / ops.cast(denom, update.dtype)


@register_optimizer("came", "CAME, confidence-guided factored Adafactor-style "
                    "moments (came-pytorch 0.1.3)")
class CAME(ZooOptimizer):
    r"""CAME (Confidence-guided Adaptive Memory Efficient), as
    `came_pytorch.CAME` 0.1.3.

    With $\gamma$ = `learning_rate`, $\beta_1, \beta_2, \beta_3$ =
    `beta_1`, `beta_2`, `beta_3`, $\epsilon_1, \epsilon_2$ = `epsilon_1`,
    `epsilon_2`, $d$ = `clip_threshold` and $\lambda$ = `weight_decay`. For a
    variable of 2 or more dimensions the statistics are factored over the
    last two dimensions *of the torch tensor the variable maps to*
    (`keras_optzoo.layout`: a Dense kernel `(in, out)` as torch's
    `(out, in)`), with row vectors $R$ of shape `(..., n)` and column vectors
    $C$ of shape `(..., m)`, and

    $$\mathrm{F}(R, C) = \big(R / \mathrm{mean}(R)\big)^{-1/2} \otimes
      C^{-1/2}$$

    (the mean over the rows of the last two dimensions). Each step:

    $$R_t = \beta_2 R_{t-1} + (1-\beta_2)\,\mathrm{mean}_{-1}(g_t^2 +
      \epsilon_1),\qquad
      C_t = \beta_2 C_{t-1} + (1-\beta_2)\,\mathrm{mean}_{-2}(g_t^2 +
      \epsilon_1)$$
    $$u_t = \mathrm{F}(R_t, C_t)\, g_t,\qquad
      u_t \leftarrow u_t / \max(1, \mathrm{RMS}(u_t) / d)$$
    $$m_t = \beta_1 m_{t-1} + (1-\beta_1)\, u_t,\qquad
      r_t = (u_t - m_t)^2 + \epsilon_2$$
    $$R'_t = \beta_3 R'_{t-1} + (1-\beta_3)\,\mathrm{mean}_{-1}(r_t),\qquad
      C'_t = \beta_3 C'_{t-1} + (1-\beta_3)\,\mathrm{mean}_{-2}(r_t)$$
    $$\theta \leftarrow \theta(1 - \gamma\lambda),\qquad
      \theta_t = \theta - \gamma\, \mathrm{F}(R'_t, C'_t)\, m_t .$$

    The instability $r_t$ (the squared distance of the update from its
    moving average) is factored like the second moment, and its inverse
    square root scales the momentum: that is the confidence guidance. For
    0-d and 1-d variables $V_t = \beta_2 V_{t-1} + (1-\beta_2)(g_t^2 +
    \epsilon_1)$, $u_t = g_t / \sqrt{V_t}$ (clipped the same way) and the
    step is $\gamma m_t$ (no instability statistics). The step size is
    $\gamma$ itself (no relative step, no scaling by the parameter RMS), and
    no bias correction is applied. The decay is decoupled and scaled by
    $\gamma$; since the update does not read $\theta$, applying it before or
    after the step is the same.

    State per variable, in came-pytorch's names: `exp_avg` (like the
    variable), then `exp_avg_sq_row`, `exp_avg_sq_col`, `exp_avg_res_row`,
    `exp_avg_res_col` (factored) or `exp_avg_sq`. came-pytorch's `RMS` entry
    (the parameter RMS, stored but never read by its update) is not kept.
    The RMS of $u_t$ is computed in float32 (float64 for float64
    variables). The per-variable update path is used on the torch backend
    (row and column reductions).

    Differs from `keras.optimizers.Adafactor`, the closest Keras has (Keras
    has no CAME): Keras keeps no first moment and no instability
    statistics (its step is the clipped $u_t$ itself), scales a relative
    step size by the parameter RMS, normalises the row factor by its mean
    over the last axis of $R$ and keeps a full-size second-moment slot.
    `maximize` is this package's (came-pytorch has none).

    Args:
        {{learning_rate}}
        epsilon_1: Float >= 0, added to $g^2$ (came-pytorch's `eps[0]`).
            Defaults to `1e-30`.
        epsilon_2: Float >= 0, added to the instability (came-pytorch's
            `eps[1]`). Defaults to `1e-16`.
        clip_threshold: Float > 0, the RMS threshold $d$ of the update
            clipping. Defaults to `1.0`.
        beta_1: Float in [0, 1], the decay of the update's moving average.
            Defaults to `0.9`.
        beta_2: Float in [0, 1], the decay of the squared gradient's
            (factored) moving average. Defaults to `0.999`.
        beta_3: Float in [0, 1], the decay of the instability's factored
            moving average. Defaults to `0.9999`.
        weight_decay: Float >= 0, or a schedule. Decoupled decay
            $\theta \leftarrow \theta(1 - \gamma\lambda)$, as came-pytorch
            applies it. Variables excluded with `exclude_from_weight_decay()`
            get none. Defaults to `0.0`.
        {{maximize}}
        {{base}}

    References:
        - Luo et al., 2023, "CAME: Confidence-guided Adaptive Memory
          Efficient Optimization" (https://arxiv.org/abs/2307.02047).
        - came-pytorch 0.1.3 (https://github.com/yangluo7/CAME),
          `came_pytorch/CAME.py`.
    """

    _hyperparameters = ("epsilon_1", "epsilon_2", "clip_threshold", "beta_1",
                        "beta_2", "beta_3", "weight_decay", "maximize")
    supports_multi_tensor = False

    def __init__(
        self,
        learning_rate=2e-4,
        epsilon_1=1e-30,
        epsilon_2=1e-16,
        clip_threshold=1.0,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=0.9999,
        weight_decay=0.0,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            decoupled_weight_decay=True,
            maximize=maximize,
            **kwargs,
        )
        self.epsilon_1 = validation.check_real("epsilon_1", epsilon_1,
                                               low=0.0)
        self.epsilon_2 = validation.check_real("epsilon_2", epsilon_2,
                                               low=0.0)
        self.clip_threshold = validation.check_real(
            "clip_threshold", clip_threshold, low=0.0, low_open=True)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2),
                            ("beta_3", beta_3)):
            setattr(self, name, validation.check_real(name, value, low=0.0,
                                                      high=1.0))

    def _slot_specs_for(self, variable, rule):
        shape = tuple(self.layout_of(variable).torch_shape)
        specs = [SlotSpec("exp_avg")]
        if len(shape) >= 2:
            rows, cols = shape[:-1], shape[:-2] + shape[-1:]
            specs += [SlotSpec("exp_avg_sq_row", shape=rows),
                      SlotSpec("exp_avg_sq_col", shape=cols),
                      SlotSpec("exp_avg_res_row", shape=rows),
                      SlotSpec("exp_avg_res_col", shape=cols)]
        else:
            specs.append(SlotSpec("exp_avg_sq"))
        return specs

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        sdt = self._step(dtype).dtype
        shape = tuple(param.shape)
        numel = int(np.prod(shape)) if shape else 1
        beta_1, beta_2, beta_3 = self.beta_1, self.beta_2, self.beta_3
        new = {}
        if len(shape) >= 2:
            layout = self.layout_of(index)
            g = layout.to_torch(grad)
            sq = g * g + self.epsilon_1
            row = beta_2 * state["exp_avg_sq_row"] + (1.0 - beta_2) * \
                MATH.mean(sq, -1)
            col = beta_2 * state["exp_avg_sq_col"] + (1.0 - beta_2) * \
                MATH.mean(sq, -2)
            new["exp_avg_sq_row"], new["exp_avg_sq_col"] = row, col
            update = _factored_inverse_sqrt(row, col) * g
        else:
            sq = grad * grad + self.epsilon_1
            variance = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * sq
            new["exp_avg_sq"] = variance
            update = ops.rsqrt(variance) * grad
            layout = None
        update = _clip_by_rms(update, numel, self.clip_threshold, sdt)
        exp_avg = state["exp_avg"]
        if layout is not None:
            exp_avg = layout.to_torch(exp_avg)
        exp_avg = beta_1 * exp_avg + (1.0 - beta_1) * update
        if layout is not None:
            res = (update - exp_avg) ** 2 + self.epsilon_2
            res_row = beta_3 * state["exp_avg_res_row"] + (1.0 - beta_3) * \
                MATH.mean(res, -1)
            res_col = beta_3 * state["exp_avg_res_col"] + (1.0 - beta_3) * \
                MATH.mean(res, -2)
            new["exp_avg_res_row"], new["exp_avg_res_col"] = res_row, res_col
            step = layout.from_torch(
                _factored_inverse_sqrt(res_row, res_col) * exp_avg)
            exp_avg = layout.from_torch(exp_avg)
        else:
            step = exp_avg
        new["exp_avg"] = exp_avg
        return param - lr * step, new
