"""MADGRAD, as timm's `MADGRAD` (facebookresearch's code)."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._caution_and_decay import OwnWeightDecay
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("madgrad", "MADGRAD, momentumized dual averaging with a "
                    "cube-root denominator (timm 1.0.31 / facebookresearch)")
class MADGRAD(OwnWeightDecay, ZooOptimizer):
    r"""MADGRAD, as timm 1.0.31's `timm.optim.madgrad.MADGRAD` (the
    facebookresearch/madgrad code).

    With $\gamma_t$ the learning rate of step $t$ and
    $\lambda_t = (\gamma_t + \epsilon)\sqrt{t}$ (timm adds ε to the rate):

    $$S_t = S_{t-1} + \lambda_t g_t^2,\qquad s_t = s_{t-1} + \lambda_t g_t,
      \qquad z_t = x_0 - \frac{s_t}{S_t^{1/3} + \epsilon}$$
    $$\theta_t = \mu\,\theta_{t-1} + (1-\mu)\, z_t$$

    $x_0$ is the parameter before the first step (a third state tensor,
    `x0`, saved at step 1) when `momentum` $\mu > 0$; with $\mu = 0$ it is
    recovered from the current values as
    $\theta_{t-1} + s_{t-1}/(S_{t-1}^{1/3} + \epsilon)$ and $\theta_t = z_t$.
    A learning-rate change needs no special care: each step's $\lambda_t$
    uses the rate of that step, as in the reference.

    Weight decay is L2 added to the gradient, or with
    `decoupled_weight_decay` `param *= 1 - learning_rate * weight_decay`
    (without the ε) before the step, after `x0` is saved.

    Differs from `keras.optimizers.SGD` (Keras has no MADGRAD): the step is
    a dual average of all past gradients weighted by $\sqrt{t}$, divided by
    a cube root of the accumulated squares and taken from the starting
    point, and the parameter is a moving average of those points.

    Args:
        {{learning_rate}}
        momentum: Float in [0, 1). Defaults to `0.9`.
        {{weight_decay}}
        epsilon: Float > 0, added to the cube root and to the learning rate
            inside $\lambda_t$ (0 would divide 0 by 0 at the first step, a
            NaN, as timm's does). Defaults to `1e-6`.
        decoupled_weight_decay: Bool. Decoupled decay (timm's
            `decoupled_decay`), see above. Defaults to `False`.
        maximize: Bool. Maximise the objective: the gradient is negated
            first (not in timm's MADGRAD). Defaults to `False`.
        {{base}}

    References:
        - Defazio and Jelassi, 2021, "Adaptivity without Compromise: A
          Momentumized, Adaptive, Dual Averaged Gradient Method for
          Stochastic Optimization" (https://arxiv.org/abs/2101.11075); code:
          https://github.com/facebookresearch/madgrad.
    """

    _hyperparameters = ("momentum", "weight_decay", "epsilon",
                        "decoupled_weight_decay", "maximize")

    def __init__(
        self,
        learning_rate=1e-2,
        momentum=0.9,
        weight_decay=0.0,
        epsilon=1e-6,
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
        self.momentum = validation.check_real("momentum", momentum, low=0.0,
                                              high=1.0, high_open=True)
        # > 0: with epsilon 0 the first step divides 0 by 0 (the cube root
        # of the empty gradient sum; with momentum 0 on every element, else
        # wherever a gradient entry is 0), so every such parameter is NaN
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0,
                                             low_open=True)

    def _slot_specs(self):
        specs = [SlotSpec("grad_sum_sq"), SlotSpec("s")]
        if self.momentum != 0.0:
            specs.append(SlotSpec("x0"))
        return specs

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        eps = self.epsilon
        lamb = ops.cast((ops.cast(lr, step.dtype) + eps) * ops.sqrt(step),
                        dtype)
        new = {}
        if self.momentum != 0.0:
            # saved before the decay of the first step, as timm clones it.
            # `param * 1.0`, not `param`: the multi-tensor planner would
            # otherwise copy the parameter's *new* value into x0 (a slot
            # whose new value is the bare parameter leaf is written after
            # the parameter is updated in place).
            x0 = self._math.where(ops.equal(step, 1.0), param * 1.0,
                                  state["x0"])
            new["x0"] = x0
        if self.weight_decay and self._decays(index):
            wd = self._weight_decay_value(lr.dtype)
            if self.decoupled_weight_decay:
                param = param * (1.0 - lr * wd)
            else:
                grad = grad + wd * param
        grad_sum_sq, s = state["grad_sum_sq"], state["s"]
        if self.momentum == 0.0:
            x0 = param + s / (grad_sum_sq ** (1.0 / 3.0) + eps)
        grad_sum_sq = grad_sum_sq + lamb * (grad * grad)
        rms = grad_sum_sq ** (1.0 / 3.0) + eps
        s = s + lamb * grad
        z = x0 - s / rms
        if self.momentum == 0.0:
            param = z
        else:
            param = self.momentum * param + (1.0 - self.momentum) * z
        new.update(grad_sum_sq=grad_sum_sq, s=s)
        return param, new
