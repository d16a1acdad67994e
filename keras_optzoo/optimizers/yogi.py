"""Yogi, as `optax.yogi`."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("yogi", "Yogi, Adam with an additive second-moment "
                    "update (optax.yogi 0.2.8)")
class Yogi(ZooOptimizer):
    r"""Yogi, as `optax.yogi` 0.2.8 (`scale_by_yogi` then the learning rate).

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      v_t = v_{t-1} - (1-\beta_2)\,\mathrm{sign}(v_{t-1} - g_t^2)\, g_t^2$$
    $$\theta_t = \theta_{t-1} - \gamma\,
      \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}$$

    Both moments start at `initial_accumulator_value` (optax's
    `scale_by_yogi` default 1e-6, which `optax.yogi` uses and does not
    expose), both are bias-corrected, and ε is added after the root of the
    corrected second moment.

    `weight_decay` (not in `optax.yogi`) is coupled L2, as in the rest of the
    zoo: `weight_decay * param` is added to the gradient first, which is
    `optax.chain(optax.add_decayed_weights(weight_decay), optax.yogi(...))`.

    Differs from `keras.optimizers.Adam` (Keras has no Yogi): the second
    moment moves additively by $\pm(1-\beta_2)g^2$ instead of
    multiplicatively, and starts at 1e-6. Differs from TF Addons'
    `tfa.optimizers.Yogi`: TFA starts the first moment at 0 (optax and this
    class at `initial_accumulator_value`), adds ε to the *uncorrected*
    $\sqrt{v_t}$ (it scales the learning rate by
    $\sqrt{1-\beta_2^t}/(1-\beta_1^t)$ instead), and has L1/L2 proximal
    regularization and a `tanh` activation instead of `weight_decay`.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0, added to the root of the corrected second
            moment. Defaults to `1e-3`.
        initial_accumulator_value: Float >= 0, the starting value of both
            moments. Defaults to `1e-6`.
        {{weight_decay}}
        maximize: Bool. Maximise the objective: the gradient is negated
            first (not in optax). Defaults to `False`.
        {{base}}

    References:
        - Zaheer et al., 2018, "Adaptive Methods for Nonconvex Optimization"
          (NeurIPS 2018).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon",
                        "initial_accumulator_value", "weight_decay",
                        "maximize")

    def __init__(
        self,
        learning_rate=1e-2,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-3,
        initial_accumulator_value=1e-6,
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
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.initial_accumulator_value = validation.check_real(
            "initial_accumulator_value", initial_accumulator_value, low=0.0)

    def _slot_specs(self):
        init = self.initial_accumulator_value
        return [SlotSpec("exp_avg", init), SlotSpec("exp_avg_sq", init)]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        beta_1, beta_2 = self.beta_1, self.beta_2
        exp_avg = beta_1 * state["exp_avg"] + (1.0 - beta_1) * grad
        v = state["exp_avg_sq"]
        grad_sq = grad * grad
        exp_avg_sq = v - (1.0 - beta_2) * (self._math.sign(v - grad_sq)
                                           * grad_sq)
        bias_1 = ops.cast(one_minus_power(beta_1, step), dtype)
        bias_2 = ops.cast(one_minus_power(beta_2, step), dtype)
        denom = self._math.sqrt(exp_avg_sq / bias_2) + self.epsilon
        param = param - lr * ((exp_avg / bias_1) / denom)
        return param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
