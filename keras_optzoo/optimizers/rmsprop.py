"""RMSprop, plain or centred, with optional momentum."""

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("rmsprop", "RMSprop, centred and momentum variants "
                    "(torch.optim.RMSprop)")
class RMSprop(ZooOptimizer):
    r"""RMSprop, as `torch.optim.RMSprop` (`rho` is torch's `alpha`).

    $$v_t = \rho v_{t-1} + (1-\rho) g_t^2$$

    Centred: $\bar g_t = \rho \bar g_{t-1} + (1-\rho) g_t$ and
    $a_t = \sqrt{v_t - \bar g_t^2} + \epsilon$; otherwise
    $a_t = \sqrt{v_t} + \epsilon$. With momentum $\mu > 0$:
    $b_t = \mu b_{t-1} + g_t / a_t$, $\theta_t = \theta_{t-1} - \gamma b_t$;
    else $\theta_t = \theta_{t-1} - \gamma g_t / a_t$.

    Differs from `keras.optimizers.RMSprop`: Keras puts ε inside the square
    root, defaults to `rho=0.9` and `learning_rate=1e-3`, keeps the learning
    rate inside the momentum buffer, and applies `weight_decay` decoupled.

    Args:
        {{learning_rate}}
        rho: Float in [0, 1), the smoothing constant (torch's `alpha`).
            Defaults to `0.99`.
        epsilon: Float >= 0, added to the root. Defaults to `1e-8`.
        {{weight_decay}}
        momentum: Float >= 0, or a schedule of the step. Defaults to `0.0`.
        centered: Bool. Normalise by the estimated variance instead of the
            second moment. Defaults to `False`.
        {{maximize}}
        {{base}}

    References:
        - Hinton, Lecture 6e of "Neural Networks for Machine Learning".
        - Graves, 2013, "Generating Sequences With Recurrent Neural Networks"
          (the centred form).
    """

    _hyperparameters = ("rho", "epsilon", "weight_decay", "momentum",
                        "centered", "maximize")

    def __init__(
        self,
        learning_rate=1e-2,
        rho=0.99,
        epsilon=1e-8,
        weight_decay=0.0,
        momentum=0.0,
        centered=False,
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, maximize=maximize,
                         **kwargs)
        self.rho = validation.check_real("rho", rho, low=0.0, high=1.0,
                                         high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.momentum = validation.check_real_or_schedule(
            "momentum", momentum, low=0.0
        )
        self.centered = validation.check_bool("centered", centered)

    def _slot_specs(self):
        specs = [SlotSpec("square_avg")]
        if self.momentum != 0.0:
            specs.append(SlotSpec("momentum_buffer"))
        if self.centered:
            specs.append(SlotSpec("grad_avg"))
        return specs

    def _update(self, param, grad, state, lr, index):
        rho = self.rho
        new = {"square_avg": rho * state["square_avg"]
               + (1.0 - rho) * grad * grad}
        if self.centered:
            new["grad_avg"] = rho * state["grad_avg"] + (1.0 - rho) * grad
            avg = self._math.sqrt(new["square_avg"] - new["grad_avg"] ** 2)
        else:
            avg = self._math.sqrt(new["square_avg"])
        avg = avg + self.epsilon
        if "momentum_buffer" in state:
            momentum = self._hyper("momentum", grad.dtype)
            buf = momentum * state["momentum_buffer"] + grad / avg
            new["momentum_buffer"] = buf
            return param - lr * buf, new
        return param - lr * (grad / avg), new
