"""NAdam: Adam with Nesterov momentum and torch's momentum-decay schedule."""

import math

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.adam import check_betas
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import cast_scalar
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("nadam", "NAdam: Adam with Nesterov momentum "
                    "(torch.optim.NAdam)")
class NAdam(ZooOptimizer):
    r"""NAdam, as `torch.optim.NAdam`.

    The momentum coefficient follows $\mu_t = \beta_1(1 - \tfrac12
    \cdot 0.96^{t\psi})$ with $\psi$ = `momentum_decay`, and
    $\Pi_t = \prod_{k\le t}\mu_k$. With $m_t, v_t$ as in Adam and
    $d_t = \sqrt{v_t / (1-\beta_2^t)} + \epsilon$:

    $$\theta_t = \theta_{t-1}
      - \gamma\frac{1-\mu_t}{1-\Pi_t}\frac{g_t}{d_t}
      - \gamma\frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\frac{m_t}{d_t}$$

    $\Pi_t$ is kept per variable (a scalar slot), as torch keeps it per
    parameter, so it also works under any distribution strategy.

    Differs from `keras.optimizers.Nadam`: Keras uses $0.96^{t}$, which is
    this optimizer with `momentum_decay=1.0` (torch's default is 4e-3), puts
    ε on the uncorrected root, and applies `weight_decay` decoupled.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), or a schedule of the step. Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0. Defaults to `1e-8`.
        {{weight_decay}}
        momentum_decay: Float >= 0, ψ above. Defaults to `4e-3`.
        {{decoupled_weight_decay}}
        {{maximize}}
        {{base}}

    References:
        - Dozat, 2016, "Incorporating Nesterov Momentum into Adam".
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "momentum_decay", "decoupled_weight_decay",
                        "maximize")

    def __init__(
        self,
        learning_rate=2e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        momentum_decay=4e-3,
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
        self.momentum_decay = validation.check_real(
            "momentum_decay", momentum_decay, low=0.0
        )

    def _slot_specs(self):
        return [
            SlotSpec("exp_avg"),
            SlotSpec("exp_avg_sq"),
            SlotSpec("mu_product", 1.0, scalar=True),
        ]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        sdtype = step.dtype
        beta_1 = self._hyper("beta_1", sdtype)
        psi = self.momentum_decay
        # 0.96 ** (t ψ) as exp(t ψ log 0.96): keras's torch backend returns
        # float32 from ops.power(python float, float64 tensor).
        log_decay = psi * math.log(0.96)
        mu = beta_1 * (1.0 - 0.5 * ops.exp(step * log_decay))
        mu_next = beta_1 * (1.0 - 0.5 * ops.exp((step + 1.0) * log_decay))
        mu_product = ops.cast(state["mu_product"], sdtype) * mu
        exp_avg = state["exp_avg"] + cast_scalar(1.0 - beta_1, dtype) * (
            grad - state["exp_avg"]
        )
        exp_avg_sq = (self.beta_2 * state["exp_avg_sq"]
                      + (1.0 - self.beta_2) * grad * grad)
        bias_2 = one_minus_power(self.beta_2, step)
        denom = (self._math.sqrt(exp_avg_sq / ops.cast(bias_2, dtype))
                 + self.epsilon)
        lr = ops.cast(lr, sdtype)
        grad_coef = lr * (1.0 - mu) / (1.0 - mu_product)
        avg_coef = lr * mu_next / (1.0 - mu_product * mu_next)
        param = (param - ops.cast(grad_coef, dtype) * (grad / denom)
                 - ops.cast(avg_coef, dtype) * (exp_avg / denom))
        return param, {
            "exp_avg": exp_avg,
            "exp_avg_sq": exp_avg_sq,
            "mu_product": ops.cast(mu_product, state["mu_product"].dtype),
        }
