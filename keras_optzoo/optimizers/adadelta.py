"""Adadelta: step sizes from running averages of gradients and updates."""

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("adadelta", "Adadelta (torch.optim.Adadelta)")
class Adadelta(ZooOptimizer):
    r"""Adadelta, as `torch.optim.Adadelta`.

    $$v_t = \rho v_{t-1} + (1-\rho) g_t^2,\qquad
      \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t$$
    $$u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2,\qquad
      \theta_t = \theta_{t-1} - \gamma \Delta_t$$

    Differs from `keras.optimizers.Adadelta`: Keras defaults to
    `learning_rate=1e-3` and `rho=0.95` (torch: 1.0 and 0.9), and applies
    `weight_decay` decoupled instead of as L2.

    Args:
        {{learning_rate}}
        rho: Float in [0, 1]. Decay of both running averages.
            Defaults to `0.9`.
        epsilon: Float >= 0. Defaults to `1e-6`.
        {{weight_decay}}
        {{maximize}}
        {{base}}

    References:
        - Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method".
    """

    _hyperparameters = ("rho", "epsilon", "weight_decay", "maximize")

    def __init__(
        self,
        learning_rate=1.0,
        rho=0.9,
        epsilon=1e-6,
        weight_decay=0.0,
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, maximize=maximize,
                         **kwargs)
        self.rho = validation.check_real("rho", rho, low=0.0, high=1.0)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)

    def _slot_specs(self):
        return [SlotSpec("square_avg"), SlotSpec("acc_delta")]

    def _update(self, param, grad, state, lr, index):
        rho, eps = self.rho, self.epsilon
        square_avg = rho * state["square_avg"] + (1.0 - rho) * grad * grad
        sqrt = self._math.sqrt
        delta = sqrt(state["acc_delta"] + eps) / sqrt(square_avg + eps)
        delta = delta * grad
        acc_delta = rho * state["acc_delta"] + (1.0 - rho) * delta * delta
        return param - lr * delta, {"square_avg": square_avg,
                                    "acc_delta": acc_delta}
