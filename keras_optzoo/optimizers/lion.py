"""Lion, as lion-pytorch's `Lion` (and timm's `Lion` with `caution=True`)."""

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._caution_and_decay import timm_caution
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("lion", "Lion, sign of an interpolated momentum, "
                    "decoupled weight decay (lion-pytorch 0.2.5; timm with "
                    "caution)")
class Lion(ZooOptimizer):
    r"""Lion (EvoLved Sign Momentum), as `lion_pytorch.Lion` 0.2.5.

    With $\gamma$ the learning rate and $\lambda$ `weight_decay`:

    $$\theta \leftarrow \theta(1 - \gamma\lambda)$$
    $$u_t = \mathrm{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t),\qquad
      \theta_t = \theta - \gamma u_t$$
    $$m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t$$

    The decay is decoupled and multiplied by the learning rate
    (lion-pytorch's `p *= 1 - lr * wd`), and it is applied before the update.
    One state tensor per parameter (`exp_avg`, starting at zero). As in
    torch, the sign of a NaN is 0 on every backend.

    With `caution=True` the update is timm 1.0.31's `Lion(caution=True)`
    (otherwise the same algorithm): $u_t$ is multiplied by
    $\mathbb{1}[u_t g_t > 0] / \max(\text{mean}(\mathbb{1}[u_t g_t > 0]),
    10^{-3})$, the mean taken over each tensor (Liang et al., 2024).

    Differs from `keras.optimizers.Lion`: the default learning rate is
    lion-pytorch's 1e-4 (Keras: 1e-3); Keras rejects `beta_1 = 0` (the sign
    of the gradient alone), which lion-pytorch accepts, and has no
    `caution`. The update rule and the decoupled decay
    $\theta \leftarrow \theta - \gamma\lambda\theta$ are otherwise the
    same. lion-pytorch's `decoupled_weight_decay=True` (the decay divided by
    the initial learning rate) and `use_triton` are not offered.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1]: the interpolation weight of the momentum in
            the update's sign. Defaults to `0.9`.
        beta_2: Float in [0, 1]: the decay of the momentum.
            Defaults to `0.99`.
        weight_decay: Float >= 0. Decoupled decay,
            `param *= 1 - learning_rate * weight_decay` before the update.
            Variables excluded with `exclude_from_weight_decay()` get none.
            Defaults to `0.0`.
        caution: Bool. timm's cautious masking of the update (see above).
            Defaults to `False`.
        maximize: Bool. Maximise the objective (the gradient is negated
            first; timm's Lion has it, lion-pytorch's has not).
            Defaults to `False`.
        {{base}}

    References:
        - Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"
          (https://arxiv.org/abs/2302.06675); code:
          https://github.com/google/automl/tree/master/lion and
          https://github.com/lucidrains/lion-pytorch.
        - Liang et al., 2024, "Cautious Optimizers: Improving Training with
          One Line of Code" (https://arxiv.org/abs/2411.16085).
    """

    _hyperparameters = ("beta_1", "beta_2", "weight_decay", "caution",
                        "maximize")

    def __init__(
        self,
        learning_rate=1e-4,
        beta_1=0.9,
        beta_2=0.99,
        weight_decay=0.0,
        caution=False,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            decoupled_weight_decay=True,
            maximize=maximize,
            **kwargs,
        )
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        return [SlotSpec("exp_avg")]

    def _update(self, param, grad, state, lr, index):
        beta_1, beta_2 = self.beta_1, self.beta_2
        exp_avg = state["exp_avg"]
        update = self._math.sign(beta_1 * exp_avg + (1.0 - beta_1) * grad)
        if self.caution:
            update = timm_caution(update, grad)
        param = param - lr * update
        exp_avg = beta_2 * exp_avg + (1.0 - beta_2) * grad
        return param, {"exp_avg": exp_avg}
