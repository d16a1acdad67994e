"""Adamax: Adam with the infinity norm, as torch.optim.Adamax."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.adam import check_betas
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import cast_scalar
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("adamax", "Adamax: Adam with the infinity norm "
                    "(torch.optim.Adamax)")
class Adamax(ZooOptimizer):
    r"""Adamax, as `torch.optim.Adamax` (torch 2.13).

    With gradient $g_t$ (after `maximize` and the L2 term), $\beta_1, \beta_2$
    = `beta_1`, `beta_2`, ε = `epsilon` and learning rate $\gamma$:

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      u_t = \max(\beta_2 u_{t-1},\ |g_t| + \epsilon)$$
    $$\theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}$$

    ε is added to $|g_t|$ inside the maximum, so it is part of the running
    infinity norm $u_t$ (torch's `exp_inf`); $m_t$ and $u_t$ start at zero.

    Differs from `keras.optimizers.Adamax`: Keras keeps
    $u_t = \max(\beta_2 u_{t-1}, |g_t|)$ and adds ε to it in the update
    ($\theta \leftarrow \theta - \gamma m_t / ((1-\beta_1^t)(u_t+\epsilon))$),
    so ε is neither inside the maximum nor carried forward; its defaults
    are `learning_rate=1e-3` and `epsilon=1e-7` (torch: 2e-3 and 1e-8); and
    its `weight_decay` is decoupled (θ ← θ − γλθ) where torch's is L2 added
    to the gradient. The bias correction $1-\beta_1^t$ is the same.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), or a schedule of the step. Defaults to `0.9`.
        beta_2: Float in [0, 1), the decay of the infinity norm.
            Defaults to `0.999`.
        epsilon: Float >= 0, added to $|g_t|$ inside the maximum.
            Defaults to `1e-8`.
        {{weight_decay}}
        {{maximize}}
        {{base}}

    References:
        - Kingma and Ba, 2015, "Adam: A Method for Stochastic Optimization",
          section 7.1 (AdaMax).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "maximize")

    def __init__(
        self,
        learning_rate=2e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            maximize=maximize,
            **kwargs,
        )
        self.beta_1, self.beta_2 = check_betas(beta_1, beta_2)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_inf")]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        beta_1 = self._hyper("beta_1", step.dtype)
        exp_avg = state["exp_avg"] + (1.0 - cast_scalar(beta_1, dtype)) * (
            grad - state["exp_avg"]
        )
        exp_inf = self._math.maximum(
            self.beta_2 * state["exp_inf"],
            self._math.abs(grad) + self.epsilon,
        )
        step_size = ops.cast(lr, step.dtype) / one_minus_power(beta_1, step)
        param = param - ops.cast(step_size, dtype) * (exp_avg / exp_inf)
        return param, {"exp_avg": exp_avg, "exp_inf": exp_inf}
