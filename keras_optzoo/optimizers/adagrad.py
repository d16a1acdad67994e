"""Adagrad: per-coordinate step sizes from the sum of squared gradients."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("adagrad", "Adagrad (torch.optim.Adagrad)")
class Adagrad(ZooOptimizer):
    r"""Adagrad, as `torch.optim.Adagrad`.

    The accumulator starts at `initial_accumulator_value`; with
    $\gamma_t = \gamma / (1 + (t-1)\,\text{lr\_decay})$:

    $$S_t = S_{t-1} + g_t^2,\qquad
      \theta_t = \theta_{t-1} - \gamma_t\, g_t / (\sqrt{S_t} + \epsilon)$$

    Differs from `keras.optimizers.Adagrad`: Keras puts ε inside the square
    root, starts the accumulator at 0.1, has no `lr_decay`, and applies
    `weight_decay` decoupled instead of as L2.

    Args:
        {{learning_rate}}
        lr_decay: Float >= 0. The learning rate is divided by
            `1 + (t - 1) * lr_decay` at update `t`. Defaults to `0.0`.
        {{weight_decay}}
        initial_accumulator_value: Float >= 0. Defaults to `0.0`.
        epsilon: Float >= 0, added to the root. Defaults to `1e-10`.
        {{maximize}}
        {{base}}

    References:
        - Duchi et al., 2011, "Adaptive Subgradient Methods for Online
          Learning and Stochastic Optimization".
    """

    #: torch's fused kernel computing exactly this rule (see
    #: ``keras_optzoo/fastpath/fused.py``); subclasses that override
    #: ``_update`` or ``_prepare`` do not inherit it.
    fused_kernel = "adagrad"

    _hyperparameters = ("lr_decay", "weight_decay",
                        "initial_accumulator_value", "epsilon", "maximize")

    def __init__(
        self,
        learning_rate=1e-2,
        lr_decay=0.0,
        weight_decay=0.0,
        initial_accumulator_value=0.0,
        epsilon=1e-10,
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, maximize=maximize,
                         **kwargs)
        self.lr_decay = validation.check_real("lr_decay", lr_decay, low=0.0)
        self.initial_accumulator_value = validation.check_real(
            "initial_accumulator_value", initial_accumulator_value, low=0.0
        )
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)

    def _slot_specs(self):
        return [SlotSpec("sum", self.initial_accumulator_value)]

    def _update(self, param, grad, state, lr, index):
        step = self._step(grad.dtype)
        clr = lr / ops.cast(1.0 + (step - 1.0) * self.lr_decay, grad.dtype)
        total = state["sum"] + grad * grad
        param = param - clr * (grad / (self._math.sqrt(total)
                                       + self.epsilon))
        return param, {"sum": total}
