"""Adan (adaptive Nesterov momentum), as timm's `timm.optim.adan.Adan`."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.adam import cautious
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer


@register_optimizer("adan", "Adan, adaptive Nesterov momentum with a "
                    "proximal weight decay (timm 1.0.31 Adan)")
class Adan(ZooOptimizer):
    r"""Adan, as timm 1.0.31's `timm.optim.adan.Adan` (from sail-sg/Adan).

    With $d_t = g_t - g_{t-1}$ ($d_1 = 0$) and $u_t = g_t + \beta_2 d_t$:

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      \delta_t = \beta_2 \delta_{t-1} + (1-\beta_2) d_t,\qquad
      n_t = \beta_3 n_{t-1} + (1-\beta_3) u_t^2$$
    $$D_t = \sqrt{n_t}/\sqrt{1-\beta_3^t} + \epsilon,\qquad
      \Delta_t = \frac{\gamma}{1-\beta_1^t}\frac{m_t}{D_t}
      + \frac{\gamma\beta_2}{1-\beta_2^t}\frac{\delta_t}{D_t}$$

    and $\theta_t = (\theta_{t-1} - \Delta_t)/(1 + \gamma\lambda)$ (the
    proximal weight decay), or with `no_prox`
    $\theta_t = \theta_{t-1}(1 - \gamma\lambda) - \Delta_t$. The betas are
    timm's: $\beta$ weighs the *old* average (the paper writes
    $1-\beta$). With `caution`, the components of $m_t$ whose sign
    disagrees with $g_t$ are left out of the step and the rest divided by
    the fraction kept (at least 1e-3).

    Differs from `keras.optimizers.Adam` (Keras has no Adan): the gradient
    difference terms and the proximal decay. Differs from `optax.adan`:
    optax writes the betas as timm does but applies weight decay as
    `θ ← θ − γλθ` in the update (like `no_prox`), has an `eps_root`, and
    its ε sits outside the bias-corrected root as here. Differs from
    `pytorch_optimizer.Adan`: it adds ε inside the bias correction and
    defaults to `weight_decouple` handling of its own.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), the first moment's decay. Defaults to
            `0.98`.
        beta_2: Float in [0, 1), the gradient difference's decay.
            Defaults to `0.92`.
        beta_3: Float in [0, 1), the second moment's decay. Defaults to
            `0.99`.
        epsilon: Float >= 0. Defaults to `1e-8`.
        weight_decay: Float >= 0, the proximal (or, with `no_prox`,
            decoupled) decay coefficient. Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        no_prox: Bool. Decay as $\theta(1-\gamma\lambda)$ before the step
            instead of dividing by $1+\gamma\lambda$ after it. Defaults to
            `False`.
        caution: Bool. Cautious update (timm's `caution`). Defaults to
            `False`.
        {{maximize}} Not in the reference.
        {{base}}

    References:
        - Xie et al., 2022, "Adan: Adaptive Nesterov Momentum Algorithm for
          Faster Optimizing Deep Models".
        - https://github.com/sail-sg/Adan
    """

    _hyperparameters = ("beta_1", "beta_2", "beta_3", "epsilon",
                        "weight_decay", "no_prox", "caution", "maximize")
    #: Adan's own decay (proximal or not), applied in _update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.98,
        beta_2=0.92,
        beta_3=0.99,
        epsilon=1e-8,
        weight_decay=0.0,
        no_prox=False,
        caution=False,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            maximize=maximize,
            **kwargs,
        )
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2),
                            ("beta_3", beta_3)):
            setattr(self, name, validation.check_real(
                name, value, low=0.0, high=1.0, high_open=True))
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.no_prox = validation.check_bool("no_prox", no_prox)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq"),
                SlotSpec("exp_avg_diff"), SlotSpec("neg_pre_grad")]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        decays = self._decays(index)
        decay = self._weight_decay_value(dtype) if decays else 0.0
        beta_1, beta_2, beta_3 = self.beta_1, self.beta_2, self.beta_3
        # d_t = g_t - g_{t-1}; 0 on the first step (neg_pre_grad holds -g)
        not_first = ops.cast(ops.greater(step, 1.0), dtype)
        diff = (grad + state["neg_pre_grad"]) * not_first
        exp_avg = state["exp_avg"] + (1.0 - beta_1) * (grad - state["exp_avg"])
        exp_avg_diff = beta_2 * state["exp_avg_diff"] + (1.0 - beta_2) * diff
        nesterov = beta_2 * diff + grad
        exp_avg_sq = (beta_3 * state["exp_avg_sq"]
                      + (1.0 - beta_3) * nesterov * nesterov)
        new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
               "exp_avg_diff": exp_avg_diff,
               "neg_pre_grad": self._math.negative(grad)}
        bias_1 = one_minus_power(beta_1, step)
        bias_2 = one_minus_power(beta_2, step)
        bias_3_sqrt = ops.sqrt(one_minus_power(beta_3, step))
        lr_s = ops.cast(lr, step.dtype)
        denom = self._math.sqrt(exp_avg_sq) / ops.cast(bias_3_sqrt, dtype) \
            + self.epsilon
        step_size = ops.cast(lr_s / bias_1, dtype)
        step_size_diff = ops.cast(lr_s * beta_2 / bias_2, dtype)
        direction = exp_avg
        if self.caution:
            direction = cautious(exp_avg, grad)
        if self.no_prox:
            if decays:
                param = param * (1.0 - lr * decay)
            param = param - step_size * (direction / denom)
            param = param - step_size_diff * (exp_avg_diff / denom)
        else:
            param = param - step_size * (direction / denom)
            param = param - step_size_diff * (exp_avg_diff / denom)
            if decays:
                param = param / (1.0 + lr * decay)
        return param, new
