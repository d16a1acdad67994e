"""CAME, as came-pytorch's `CAME` (confidence-guided factored moments)."""

import math

from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo import _minmax
from keras_optzoo.optimizers import _factored
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def _rms(x, numel, dtype, layouts=None):
    """``norm(x) / sqrt(numel)`` as a 0-d value of ``dtype``; on a group of
    the multi-tensor path (``numel`` a tuple, one size per tensor) one value
    per tensor (one ``torch._foreach_norm``). ``layouts`` (one variable):
    sum ``x`` as read in the torch layout (the order a full-size value in
    that layout was summed in)."""
    x = MATH.cast(x, dtype)
    if layouts is not None and not isinstance(layouts, tuple):
        x = layouts.to_torch(x)
    root = tuple(math.sqrt(n) for n in numel) if isinstance(numel, tuple) \
        else math.sqrt(numel)
    return MATH.norm(x) / _factored.per_tensor(root, dtype)


def _torch_axis(layout, axis):
    return axis % len(layout.torch_shape)


def _factor_mean(x, layouts, axis):
    """The mean of ``x`` (laid out as its Keras variable) over axis
    ``axis`` of the torch tensor, that axis dropped: the shape of a factor
    slot (``exp_avg_sq_row``/``_col``). One variable: the mean of the
    variable read in the torch layout; a group: the keepdims-shaped mean
    over the Keras axes (``_factored.torch_mean``) reshaped to the slots'
    shapes."""
    if not isinstance(layouts, tuple):
        return MATH.mean(layouts.to_torch(x), axis)
    shapes = []
    for layout in layouts:
        shape = list(layout.torch_shape)
        del shape[_torch_axis(layout, axis)]
        shapes.append(tuple(shape))
    return MATH.reshape(_factored.torch_mean(x, layouts, axis), tuple(shapes))


def _factor_view(factor, layouts, axis):
    """A factor of the torch tensor's axis ``axis`` dropped (a slot's
    shape) viewed keepdims-shaped in the Keras layout, where it broadcasts
    against the variable."""
    def keepdims(layout):
        shape = list(layout.torch_shape)
        shape[_torch_axis(layout, axis)] = 1
        return tuple(shape)

    if isinstance(layouts, tuple):
        shape = tuple(keepdims(layout) for layout in layouts)
    else:
        shape = keepdims(layouts)
    return _factored.from_torch(MATH.reshape(factor, shape), layouts)


def _factored_inverse_sqrt(row, col, layouts):
    """The factored approximation of ``1/sqrt(V)`` shared by fairseq's
    Adafactor and CAME: ``rsqrt(R / mean(R)) ⊗ rsqrt(C)`` with ``R`` of shape
    ``(..., n)`` and ``C`` of shape ``(..., m)`` (the torch tensor
    ``(..., n, m)`` with its last, resp. second-to-last, axis dropped),
    returned in the Keras layout of the variable (the outer product of the
    two factors' views: no full-size transpose)."""
    r_factor = MATH.rsqrt(row / MATH.mean(row, -1, keepdims=True))
    c_factor = MATH.rsqrt(col)
    return _factor_view(r_factor, layouts, -1) * \
        _factor_view(c_factor, layouts, -2)


def _clip_by_rms(update, numel, clip_threshold, sdt, layouts=None):
    """``update / max(1, RMS(update) / d)`` (``layouts``: as for
    :func:`_rms`)."""
    denom = _minmax.clamp(_rms(update, numel, sdt, layouts) / clip_threshold,
                          1.0)
    return update / ops.cast(denom, update.dtype)


def _factored_rule(optimizer, variable):
    """``"factored"`` for a variable whose torch tensor has 2 or more axes
    (the multi-tensor path groups factored and unfactored variables
    apart)."""
    if len(optimizer.layout_of(variable).torch_shape) >= 2:
        return "factored"
    return None


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
    variables). On the torch backend the update runs on the multi-tensor
    path (`update_path` says "foreach"): factored and unfactored variables
    form two groups, the row and column means are one reduction per tensor
    and the rest runs in foreach kernels on the whole group.

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

    def _rule_for(self, variable):
        return _factored_rule(self, variable)

    def _slot_specs_for(self, variable, rule):
        shape = tuple(self.layout_of(variable).torch_shape)
        specs = [SlotSpec("exp_avg")]
        if rule == "factored":
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
        # (on the multi-tensor path ``index`` is a group's tuple: layouts
        # and sizes are one per tensor)
        layouts = _factored.layouts(self, index)
        numel = _factored.sizes(layouts)
        beta_1, beta_2, beta_3 = self.beta_1, self.beta_2, self.beta_3
        factored = self._rule(index) == "factored"
        new = {}
        # the full-size math runs in the variable's own layout; the row and
        # column statistics are over the torch tensor's last two axes, kept
        # in the slots in torch's shapes, read back through views
        sq = grad * grad + self.epsilon_1
        if factored:
            row = beta_2 * state["exp_avg_sq_row"] + (1.0 - beta_2) * \
                _factor_mean(sq, layouts, -1)
            col = beta_2 * state["exp_avg_sq_col"] + (1.0 - beta_2) * \
                _factor_mean(sq, layouts, -2)
            new["exp_avg_sq_row"], new["exp_avg_sq_col"] = row, col
            update = _factored_inverse_sqrt(row, col, layouts) * grad
        else:
            variance = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * sq
            new["exp_avg_sq"] = variance
            update = MATH.rsqrt(variance) * grad
        # (one variable: the RMS summed in the torch layout, as came-pytorch
        # sums it)
        update = _clip_by_rms(update, numel, self.clip_threshold, sdt,
                              layouts if factored else None)
        exp_avg = beta_1 * state["exp_avg"] + (1.0 - beta_1) * update
        if factored:
            res = (update - exp_avg) ** 2 + self.epsilon_2
            res_row = beta_3 * state["exp_avg_res_row"] + (1.0 - beta_3) * \
                _factor_mean(res, layouts, -1)
            res_col = beta_3 * state["exp_avg_res_col"] + (1.0 - beta_3) * \
                _factor_mean(res, layouts, -2)
            new["exp_avg_res_row"], new["exp_avg_res_col"] = res_row, res_col
            step = _factored_inverse_sqrt(res_row, res_col, layouts) * exp_avg
        else:
            step = exp_avg
        new["exp_avg"] = exp_avg
        return param - lr * step, new
