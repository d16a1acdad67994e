"""AdaBelief, as the authors' `adabelief_pytorch.AdaBelief` 0.2.1."""

import math

from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer


def rectification_length(beta_2, step):
    r"""RAdam's length of the approximated SMA, $\rho_t$, as a 0-d tensor.

    $\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)$ cancels five digits
    in float32 near the threshold ($\rho_5 \approx 4.996$ for
    $\beta_2 = 0.999$); with $L = -\ln\beta_2$ and $y = tL$ it is written
    as $c + t - 2t f(y)$, $c = \rho_\infty - 2/L$ (in double),
    $f(y) = 1/\mathrm{expm1}(y) - 1/y + 1/2$, a series for small $y$.
    """
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    if beta_2 == 0.0:
        # 2 t 0^t / (1 - 0^t) = 0 for t >= 1
        return ops.full_like(step, rho_inf)
    log_b = -math.log(beta_2)
    const = rho_inf - 2.0 / log_b
    y = step * log_b
    # both branches computed on a clamped y, one selected
    y_small = _minmax.minimum(y, 0.1)
    y2 = y_small * y_small
    series = y_small * (1.0 / 12.0 + y2 * (-1.0 / 720.0 + y2 * (
        1.0 / 30240.0 - y2 / 1209600.0)))
    y_large = _minmax.maximum(y, 0.1)
    direct = 1.0 / ops.expm1(y_large) - 1.0 / y_large + 0.5
    f = ops.where(y < 0.1, series, direct)
    return const + step - 2.0 * step * f


@register_optimizer("adabelief", "AdaBelief, rectified, decoupled weight "
                    "decay (adabelief-pytorch 0.2.1)")
class AdaBelief(ZooOptimizer):
    r"""AdaBelief, as the authors' `adabelief_pytorch.AdaBelief` 0.2.1.

    The second moment tracks the "belief" $(g_t - m_t)^2$ instead of $g_t^2$,
    and ε enters twice: it is added to the stored $s_t$ every step and again
    to the denominator:

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon$$

    Without `rectify`:
    $\theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}
    \frac{m_t}{\sqrt{\hat s_t}/\sqrt{1-\beta_2^t} + \epsilon}$, with
    $\hat s_t = s_t$, or with `amsgrad` the running maximum of $s_t$.

    With `rectify` (RAdam's rectification, the default): with
    $\rho_\infty = 2/(1-\beta_2) - 1$ and
    $\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)$, if $\rho_t \ge 5$

    $$\theta_t = \theta_{t-1} - \frac{\gamma r_t\sqrt{1-\beta_2^t}}
      {1-\beta_1^t}\frac{m_t}{\sqrt{s_t} + \epsilon},\quad
      r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
      {(\rho_\infty-4)(\rho_\infty-2)\rho_t}}$$

    (the reference uses $s_t$ here even with `amsgrad`, whose maximum then
    only matters without `rectify`); otherwise, with `degenerated_to_sgd`,
    the SGD-with-momentum step $\theta_t = \theta_{t-1} -
    \frac{\gamma}{1-\beta_1^t} m_t$, and without it no step at all.

    Weight decay: decoupled by default, $\theta \leftarrow \theta(1 -
    \gamma\lambda)$ before the step, or $\theta \leftarrow \theta(1 -
    \lambda)$ with `fixed_decay`; coupled L2 (added to the gradient, so it
    enters the moments) when `decoupled_weight_decay=False`.

    Differs from `keras.optimizers.Adam` (Keras has no AdaBelief): the
    belief second moment, ε added to $s_t$ and to the denominator, the
    rectification. Differs from `optax.adabelief`: optax adds ε inside the
    root (`eps_root`) and outside, but has no rectification, no weight decay
    and no `degenerated_to_sgd`. Differs from
    `pytorch_optimizer.AdaBelief`: its rectification threshold is
    $\rho_t > 4$ (here, as in the reference, $\rho_t \ge 5$).
    $\rho_t$ is computed in a form that keeps float32 accuracy near the
    threshold (the reference computes it in double).

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0, added to $s_t$ and to the denominator.
            Defaults to `1e-16`.
        weight_decay: Float >= 0. Decoupled unless
            `decoupled_weight_decay=False`. Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        amsgrad: Bool. Keep the running maximum of $s_t$ (used by the
            unrectified step). Defaults to `False`.
        decoupled_weight_decay: Bool, the reference's `weight_decouple`.
            Defaults to `True`.
        fixed_decay: Bool. With decoupled decay, decay by $\lambda$
            instead of $\gamma\lambda$ each step. Defaults to `False`.
        rectify: Bool. RAdam-style rectification. Defaults to `True`.
        degenerated_to_sgd: Bool. While $\rho_t < 5$ take an SGD-with-
            momentum step (else no step). Defaults to `True`.
        {{maximize}} Not in the reference.
        {{base}}

    References:
        - Zhuang et al., 2020, "AdaBelief Optimizer: Adapting Stepsizes by
          the Belief in Observed Gradients" (NeurIPS).
        - https://github.com/juntang-zhuang/Adabelief-Optimizer
          (`adabelief-pytorch` 0.2.1).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "amsgrad", "decoupled_weight_decay", "fixed_decay",
                        "rectify", "degenerated_to_sgd", "maximize")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-16,
        weight_decay=0.0,
        amsgrad=False,
        decoupled_weight_decay=True,
        fixed_decay=False,
        rectify=True,
        degenerated_to_sgd=True,
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
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.amsgrad = validation.check_bool("amsgrad", amsgrad)
        self.fixed_decay = validation.check_bool("fixed_decay", fixed_decay)
        self.rectify = validation.check_bool("rectify", rectify)
        self.degenerated_to_sgd = validation.check_bool(
            "degenerated_to_sgd", degenerated_to_sgd)

    def _slot_specs(self):
        specs = [SlotSpec("exp_avg"), SlotSpec("exp_avg_var")]
        if self.amsgrad:
            specs.append(SlotSpec("max_exp_avg_var"))
        return specs

    @property
    def weight_decay_in_update(self):
        """The fixed decay is AdaBelief's own (applied in ``_prepare``)."""
        return self.fixed_decay and self.decoupled_weight_decay

    def _prepare(self, gradient, variable, learning_rate, index):
        param, grad, lr = super()._prepare(gradient, variable, learning_rate,
                                           index)
        if self.weight_decay_in_update and self._decay_mask[index]:
            # fixed decay: θ ← θ(1 − λ), without the learning rate
            param = param * (1.0 - self._weight_decay_value(variable.dtype))
        return param, grad, lr

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        beta_1, beta_2, eps = self.beta_1, self.beta_2, self.epsilon
        exp_avg = beta_1 * state["exp_avg"] + (1.0 - beta_1) * grad
        residual = grad - exp_avg
        exp_avg_var = (beta_2 * state["exp_avg_var"]
                       + (1.0 - beta_2) * residual * residual) + eps
        new = {"exp_avg": exp_avg, "exp_avg_var": exp_avg_var}
        second = exp_avg_var
        if self.amsgrad:
            second = self._math.maximum(state["max_exp_avg_var"],
                                        exp_avg_var)
            new["max_exp_avg_var"] = second
        bias_1 = one_minus_power(beta_1, step)
        bias_2 = one_minus_power(beta_2, step)
        lr_s = ops.cast(lr, step.dtype)
        if not self.rectify:
            denom = (self._math.sqrt(second)
                     / ops.cast(ops.sqrt(bias_2), dtype) + eps)
            step_size = ops.cast(lr_s / bias_1, dtype)
            return param - step_size * (exp_avg / denom), new
        rho_inf = 2.0 / (1.0 - beta_2) - 1.0
        rho = rectification_length(beta_2, step)
        rectified = rho >= 5.0
        ratio = (bias_2 * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0) / rho
                 * rho_inf / (rho_inf - 2.0))
        zero = ops.zeros_like(ratio)
        adaptive_size = ops.where(
            rectified, ops.sqrt(_minmax.maximum(ratio, 0.0)), zero) / bias_1
        adaptive = param - ops.cast(adaptive_size * lr_s, dtype) * (
            exp_avg / (self._math.sqrt(exp_avg_var) + eps))
        if self.degenerated_to_sgd:
            sgd = param - ops.cast(lr_s / bias_1, dtype) * exp_avg
        else:
            sgd = param
        return self._math.where(rectified, adaptive, sgd), new
