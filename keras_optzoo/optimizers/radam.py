"""RAdam: Adam with the variance rectification term, as torch.optim.RAdam."""

import math

from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.adam import check_betas
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import cast_scalar
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer

#: torch's threshold on the length of the approximated SMA
_RHO_THRESHOLD = 5.0
#: below this ``y = t·(−log β₂)`` the series of ``1 − y/(e^y − 1)`` is used
_SERIES_LIMIT = 0.5


def _one_minus_bernoulli(y):
    """``1 − y/(e^y − 1)`` for a 0-d tensor ``y > 0``, without the float32
    cancellation of the direct form at small ``y`` (the first steps): the
    Bernoulli series below ``_SERIES_LIMIT`` (truncation < 1e-11 there),
    the direct form above it; both computed, one selected."""
    small = _minmax.minimum(y, _SERIES_LIMIT)
    y2 = small * small
    series = small * 0.5 - y2 * (
        1.0 / 12.0 - y2 * (1.0 / 720.0 - y2 * (1.0 / 30240.0
                                               - y2 / 1209600.0)))
    large = _minmax.maximum(y, _SERIES_LIMIT)
    direct = 1.0 - large / ops.expm1(large)
    return ops.where(y < _SERIES_LIMIT, series, direct)


@register_optimizer("radam", "RAdam: rectified Adam, coupled or decoupled "
                    "weight decay (torch.optim.RAdam)")
class RAdam(ZooOptimizer):
    r"""RAdam (rectified Adam), as `torch.optim.RAdam` (torch 2.13).

    With $m_t, v_t$ as in Adam, $\rho_\infty = 2/(1-\beta_2) - 1$ and the
    length of the approximated simple moving average

    $$\rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t},$$

    the update is the rectified adaptive step when $\rho_t > 5$,

    $$r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
                       {(\rho_\infty-4)(\rho_\infty-2)\rho_t}},\qquad
      \theta_t = \theta_{t-1} - \gamma\,\frac{m_t}{1-\beta_1^t}\, r_t\,
      \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t}+\epsilon},$$

    and the un-adapted momentum step
    $\theta_t = \theta_{t-1} - \gamma\, m_t/(1-\beta_1^t)$ otherwise (the
    first 5 steps with the default $\beta_2$; always when
    $\rho_\infty \le 5$, i.e. $\beta_2 \le 2/3$). Both branches are computed
    inside the compiled step and one is selected with `ops.where` (the torch
    multi-tensor path evaluates only the selected one). $\rho_t$ is computed
    as $\rho_\infty - 2/L + (2/L)(1 - y/(e^y-1))$ with
    $L = -\log\beta_2$, $y = tL$, which avoids the cancellation of the
    textbook form in float32 (torch computes it in double).

    Differs from `keras.optimizers.*`: Keras 3 has no RAdam. TF Addons'
    `tfa.optimizers.RectifiedAdam` (for Keras 2) had the same threshold as
    an argument (`sma_threshold=5.0`) but other defaults and extras:
    `epsilon=1e-7`, a built-in warmup (`total_steps`, `warmup_proportion`,
    `min_lr`), `amsgrad`, and a `weight_decay` applied decoupled (scaled by
    the learning rate) where torch's default is L2. Here warmup is a
    learning-rate schedule, and `decoupled_weight_decay=True` selects the
    decoupled form.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), or a schedule of the step. Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0, added to $\sqrt{v_t}$. Defaults to `1e-8`.
        {{weight_decay}}
        {{decoupled_weight_decay}}
        {{maximize}}
        {{base}}

    References:
        - Liu et al., 2020, "On the Variance of the Adaptive Learning Rate
          and Beyond" (https://github.com/LiyuanLucasLiu/RAdam).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "decoupled_weight_decay", "maximize")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        decoupled_weight_decay=False,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            **kwargs,
        )
        self.beta_1, self.beta_2 = check_betas(beta_1, beta_2)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    @property
    def _rho_inf(self):
        return 2.0 / (1.0 - self.beta_2) - 1.0

    def _rho(self, step):
        """ρ_t as a 0-d tensor of ``step``'s dtype (see the docstring)."""
        log_decay = -math.log(self.beta_2)  # beta_2 > 0 here
        scale = 2.0 / log_decay
        offset = self._rho_inf - scale  # small; exact enough in double
        return offset + scale * _one_minus_bernoulli(step * log_decay)

    def _rectification(self, step):
        """(rectify?, r_t): a 0-d bool and the factor, or None where the
        step is never rectified (ρ∞ <= 5)."""
        rho_inf = self._rho_inf
        if rho_inf <= _RHO_THRESHOLD:
            return None
        rho = self._rho(step)
        # clamped so that the branch not taken stays finite
        rho_c = ops.where(rho > _RHO_THRESHOLD, rho,
                          ops.full_like(rho, _RHO_THRESHOLD))
        const = rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0))
        rect = ops.sqrt((rho_c - 4.0) * (rho_c - 2.0) / rho_c * const)
        return rho > _RHO_THRESHOLD, rect

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        sdtype = step.dtype
        beta_1 = self._hyper("beta_1", sdtype)
        beta_2 = self.beta_2
        exp_avg = state["exp_avg"] + (1.0 - cast_scalar(beta_1, dtype)) * (
            grad - state["exp_avg"]
        )
        exp_avg_sq = (beta_2 * state["exp_avg_sq"]
                      + (1.0 - beta_2) * grad * grad)
        new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        plain_coef = ops.cast(lr, sdtype) / one_minus_power(beta_1, step)
        plain = ops.cast(plain_coef, dtype) * exp_avg
        rectification = self._rectification(step)
        if rectification is None:
            return param - plain, new
        rectify, rect = rectification
        adapted_coef = plain_coef * rect * ops.sqrt(
            one_minus_power(beta_2, step))
        adapted = ops.cast(adapted_coef, dtype) * (
            exp_avg / (self._math.sqrt(exp_avg_sq) + self.epsilon))
        return param - self._math.where(rectify, adapted, plain), new
