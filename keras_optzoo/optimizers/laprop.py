"""LaProp, as timm's `LaProp`."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers._caution_and_decay import OwnWeightDecay
from keras_optzoo.optimizers._caution_and_decay import timm_caution
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("laprop", "LaProp, momentum of the RMS-normalised "
                    "gradient (timm 1.0.31)")
class LaProp(OwnWeightDecay, ZooOptimizer):
    r"""LaProp, as timm 1.0.31's `timm.optim.laprop.LaProp`.

    The momentum averages the *normalised* gradient, each term weighted by
    the learning rate of its step; the step divides by the same average of
    the learning rates (which makes the bias correction, and keeps a
    learning-rate change from rescaling the stored momentum):

    $$v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\qquad
      m_t = \beta_1 m_{t-1} + (1-\beta_1)\,\gamma_t\,
      \frac{g_t}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}$$
    $$\ell_t = \beta_1 \ell_{t-1} + (1-\beta_1)\gamma_t,\qquad
      \theta \leftarrow \theta - \frac{\gamma_t}{\ell_t} m_t,\qquad
      \theta \leftarrow \theta - \gamma_t\lambda\,\theta$$

    $\ell$ (`exp_avg_lr_1`, one scalar per parameter, starting at 0) is
    timm's running average of the learning rate; with a constant rate
    $\gamma/\ell_t = 1/(1-\beta_1^t)$. The weight decay is decoupled and
    applied *after* the update, as timm does. With `caution=True` the
    momentum used for the step (not the stored one) is multiplied by timm's
    mask $\mathbb{1}[m_t g_t > 0] / \max(\text{mean}, 10^{-3})$ per tensor.

    Differs from `keras.optimizers.RMSprop` with momentum (Keras has no
    LaProp): the momentum is taken of the normalised gradient and is
    bias-corrected, the second moment is bias-corrected too, and ε defaults
    to 1e-15. Differs from `keras.optimizers.Adam`: Adam normalises the
    momentum of the raw gradient instead.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0, added to the root of the corrected second
            moment. Defaults to `1e-15`.
        weight_decay: Float >= 0. Decoupled decay applied after the update,
            `param -= learning_rate * weight_decay * param`. Variables
            excluded with `exclude_from_weight_decay()` get none.
            Defaults to `0.0`.
        caution: Bool. timm's cautious masking (see above).
            Defaults to `False`.
        maximize: Bool. Maximise the objective: the gradient is negated
            first (not in timm's LaProp). Defaults to `False`.
        {{base}}

    References:
        - Ziyin, Wang and Ueda, 2020, "LaProp: Separating Momentum and
          Adaptivity in Adam" (https://arxiv.org/abs/2002.04839); code:
          https://github.com/Z-T-WANG/LaProp-Optimizer.
        - Liang et al., 2024, "Cautious Optimizers"
          (https://arxiv.org/abs/2411.16085).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "caution", "maximize")

    def __init__(
        self,
        learning_rate=4e-4,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-15,
        weight_decay=0.0,
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
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq"),
                SlotSpec("exp_avg_lr_1", scalar=True)]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        beta_1, beta_2 = self.beta_1, self.beta_2
        # scalar math in float32 (float64 for float64 variables)
        lr_s = ops.cast(lr, step.dtype)
        lr_avg = beta_1 * ops.cast(state["exp_avg_lr_1"], step.dtype) \
            + (1.0 - beta_1) * lr_s
        nonzero = ops.not_equal(lr_avg, 0.0)
        step_size = ops.where(
            nonzero, lr_s / ops.where(nonzero, lr_avg, 1.0), 0.0)
        bias_2 = ops.cast(one_minus_power(beta_2, step), dtype)
        exp_avg_sq = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * (
            grad * grad)
        denom = self._math.sqrt(exp_avg_sq / bias_2) + self.epsilon
        exp_avg = beta_1 * state["exp_avg"] + ops.cast(
            lr_s * (1.0 - beta_1), dtype) * (grad / denom)
        update = timm_caution(exp_avg, grad) if self.caution else exp_avg
        param = param - ops.cast(step_size, dtype) * update
        if self.weight_decay and self._decays(index):
            param = param - (lr * self._weight_decay_value(lr.dtype)) \
                * param
        return param, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
                       "exp_avg_lr_1": lr_avg}
