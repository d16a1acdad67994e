"""AdEMAMix, as pytorch-optimizer's `AdEMAMix`."""

import math

from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._caution_and_decay import OwnWeightDecay
from keras_optzoo.optimizers._caution_and_decay import pto_caution
from keras_optzoo.optimizers.adopt import check_pto_decay
from keras_optzoo.optimizers.adopt import pto_weight_decay
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("ademamix", "AdEMAMix, Adam plus a slow gradient EMA "
                    "(pytorch-optimizer 4.1.0)")
class AdEMAMix(OwnWeightDecay, ZooOptimizer):
    r"""AdEMAMix, as `pytorch_optimizer.AdEMAMix` 4.1.0.

    Adam's fast momentum plus $\alpha$ times a slow one (not bias-corrected):

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      s_t = \beta_{3,t} s_{t-1} + (1-\beta_{3,t}) g_t,\qquad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$$
    $$\theta_t = \theta_{t-1} - \gamma\,
      \frac{m_t/(1-\beta_1^t) + \alpha_t s_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t}
      + \epsilon}$$

    Without `t_alpha_beta3`, $\alpha_t = \alpha$ and
    $\beta_{3,t} = \beta_3$. With it ($T$), both warm up as closed forms of
    the step: $\alpha_t = \min(t\alpha/T, \alpha)$ and
    $\beta_{3,t} = \min\!\big(\exp\frac{\ln\beta_1 \ln\beta_3}
    {(1-t/T)\ln\beta_3 + (t/T)\ln\beta_1},\ \beta_3\big)$ (then
    `beta_1` must be > 0). With `caution=True` (pytorch-optimizer's
    `cautious`) the fast momentum in the step is multiplied by
    $\mathbb{1}[m_t g_t > 0] \cdot n / (\sum\mathbb{1} + 1)$, $n$ the
    tensor's size. Weight decay as pytorch-optimizer applies it, before the
    update: L2 (default), decoupled
    `param *= 1 - learning_rate * weight_decay`, or with `fixed_decay`
    `param *= 1 - weight_decay`.

    Differs from `keras.optimizers.Adam` (Keras has no AdEMAMix): the slow
    EMA term. Differs from `optax.contrib.ademamix` 0.2.8: with constant
    `beta_3`/`alpha` and no weight decay the update is the same (measured:
    optax's trajectory is within 6e-6 of the largest movement of
    pytorch-optimizer's over 60 float32 steps at the defaults, float32
    rounding: optax computes $1-\beta^t$ in float32); optax has no built-in
    warm-up (`b3`/`alpha` are schedules of the 0-based count instead of
    `t_alpha_beta3` of the 1-based step), and its `weight_decay` is always
    decoupled (`param -= lr * wd * param`, the same as
    `decoupled_weight_decay=True` here) while pytorch-optimizer's default is
    L2. pytorch-optimizer's `stable_adamw` option is not offered.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), the fast momentum's decay.
            Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        beta_3: Float in [0, 1), the slow momentum's decay.
            Defaults to `0.9999`.
        alpha: Float >= 0, the weight of the slow momentum.
            Defaults to `5.0`.
        t_alpha_beta3: None or a number of steps > 0 over which `alpha` and
            `beta_3` warm up. Defaults to `None`.
        epsilon: Float >= 0. Defaults to `1e-8`.
        {{weight_decay}}
        decoupled_weight_decay: Bool (the reference's `weight_decouple`).
            Defaults to `False`.
        fixed_decay: Bool. With `decoupled_weight_decay`, leave the learning
            rate out of the decay. Defaults to `False`.
        caution: Bool. pytorch-optimizer's `cautious` (see above).
            Defaults to `False`.
        {{maximize}}
        {{base}}

    References:
        - Pagliardini, Ablin and Grangier, 2024, "The AdEMAMix Optimizer:
          Better, Faster, Older" (https://arxiv.org/abs/2409.03137); code:
          https://github.com/apple/ml-ademamix.
    """

    _hyperparameters = ("beta_1", "beta_2", "beta_3", "alpha",
                        "t_alpha_beta3", "epsilon", "weight_decay",
                        "decoupled_weight_decay", "fixed_decay", "caution",
                        "maximize")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=0.9999,
        alpha=5.0,
        t_alpha_beta3=None,
        epsilon=1e-8,
        weight_decay=0.0,
        decoupled_weight_decay=False,
        fixed_decay=False,
        caution=False,
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
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2),
                            ("beta_3", beta_3)):
            setattr(self, name, validation.check_real(
                name, value, low=0.0, high=1.0, high_open=True))
        self.alpha = validation.check_real("alpha", alpha, low=0.0)
        self.t_alpha_beta3 = None if t_alpha_beta3 is None else \
            validation.check_real("t_alpha_beta3", t_alpha_beta3, low=0.0,
                                  low_open=True)
        if self.t_alpha_beta3 is not None and self.beta_1 == 0.0:
            raise ValueError(
                "Argument `beta_1` must be > 0 when `t_alpha_beta3` is set "
                "(the beta_3 warm-up takes its logarithm). Received: "
                f"beta_1={self.beta_1}")
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.fixed_decay = check_pto_decay(weight_decay,
                                           self.decoupled_weight_decay,
                                           fixed_decay)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq"),
                SlotSpec("exp_avg_slow")]

    def _schedules(self, step):
        """(alpha_t, 1 - beta3_t) of the 1-based step, as scalars."""
        if self.t_alpha_beta3 is None:
            return self.alpha, 1.0 - self.beta_3
        frac = step / self.t_alpha_beta3
        alpha_t = _minmax.minimum(frac * self.alpha, self.alpha)
        log_1, log_3 = math.log(self.beta_1), math.log(self.beta_3)
        exponent = (log_1 * log_3) / ((1.0 - frac) * log_3 + frac * log_1)
        # 1 - min(exp(x), beta_3) without cancellation near 1
        one_minus_beta3 = ops.negative(ops.expm1(_minmax.minimum(exponent,
                                                                 log_3)))
        return alpha_t, one_minus_beta3

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        param, grad = pto_weight_decay(self, param, grad, lr, index)
        alpha_t, weight_3 = self._schedules(step)
        if not isinstance(weight_3, float):
            alpha_t = ops.cast(alpha_t, dtype)
            weight_3 = ops.cast(weight_3, dtype)
        beta_1, beta_2 = self.beta_1, self.beta_2
        exp_avg = state["exp_avg"]
        exp_avg = exp_avg + (1.0 - beta_1) * (grad - exp_avg)
        exp_avg_sq = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * (
            grad * grad)
        slow = state["exp_avg_slow"]
        slow = slow + weight_3 * (grad - slow)
        bias_1 = ops.cast(one_minus_power(beta_1, step), dtype)
        bias_2_sqrt = ops.cast(ops.sqrt(one_minus_power(beta_2, step)), dtype)
        denom = self._math.sqrt(exp_avg_sq) / bias_2_sqrt + self.epsilon
        fast = pto_caution(exp_avg, grad, self, index) if self.caution \
            else exp_avg
        update = fast / bias_1 + alpha_t * slow
        param = param - lr * (update / denom)
        return param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
                       "exp_avg_slow": slow}
