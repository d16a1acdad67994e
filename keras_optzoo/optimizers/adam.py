"""Adam and AdamW (with AMSGrad), as torch.optim.Adam / torch.optim.AdamW."""

from keras import ops

from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import cast_scalar
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def check_betas(beta_1, beta_2):
    """Validates the two Adam-family decay rates (beta_1 may be a schedule)."""
    beta_1 = validation.check_real_or_schedule("beta_1", beta_1, low=0.0,
                                               high=1.0, high_open=True)
    beta_2 = validation.check_real("beta_2", beta_2, low=0.0, high=1.0,
                                   high_open=True)
    return beta_1, beta_2


def cautious(update, grad):
    """timm's `caution` ("Cautious Optimizers", Liang et al., 2024): the
    components of ``update`` whose sign disagrees with ``grad`` are zeroed,
    the rest divided by the kept fraction (at least 1e-3) of the tensor.

    The fraction is a per-tensor mean, computed by :func:`_layerwise.caution`
    (float64 kept, as torch does); the torch multi-tensor path computes it
    for all tensors of a group at once (``self._math.mean``), while torch's
    fused Adam kernel, which has no such mask, is not used.
    """
    return _layerwise.caution(update, grad)


@register_optimizer("adam", "Adam, with AMSGrad and coupled or decoupled "
                    "weight decay (torch.optim.Adam)")
class Adam(ZooOptimizer):
    r"""Adam, as `torch.optim.Adam`.

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$$
    $$\theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
      \frac{m_t}{\sqrt{\hat v_t}/\sqrt{1-\beta_2^t} + \epsilon}$$

    where $\hat v_t = v_t$, or with `amsgrad` the running maximum of the raw
    $v_t$. ε is added after the bias correction of $\sqrt{v_t}$.

    With `caution`, the components of $m_t$ whose sign disagrees with
    $g_t$ are zeroed in the step (not in the state) and the rest divided by
    the fraction kept (at least 1e-3), as timm 1.0.31's
    `AdamWLegacy(caution=True)`.

    Differs from `keras.optimizers.Adam`: Keras adds ε to the uncorrected
    $\sqrt{v_t}$ ("ε-hat"), which changes the steps when gradients are small
    (≈1e-6), and its `weight_decay` is always decoupled (it is AdamW).

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), or a schedule of the step (for momentum
            cycling). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0. Defaults to `1e-8`.
        {{weight_decay}}
        amsgrad: Bool. Use the running maximum of the second moment.
            Defaults to `False`.
        {{decoupled_weight_decay}}
        {{maximize}}
        caution: Bool. Cautious update (timm's `caution`); with decoupled
            weight decay this equals timm 1.0.31
            `AdamWLegacy(caution=True)`. Defaults to `False`.
        {{base}}

    References:
        - Kingma and Ba, 2015, "Adam: A Method for Stochastic Optimization".
        - Reddi et al., 2018, "On the Convergence of Adam and Beyond"
          (AMSGrad).
        - Liang et al., 2024, "Cautious Optimizers: Improving Training with
          One Line of Code" (`caution`).
    """

    #: torch's fused kernel computing exactly this rule (see
    #: ``keras_optzoo/fastpath/fused.py``); subclasses that override
    #: ``_update`` or ``_prepare`` do not inherit it.
    fused_kernel = "adam"

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "amsgrad", "decoupled_weight_decay", "maximize",
                        "caution")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        decoupled_weight_decay=False,
        maximize=False,
        caution=False,
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
        self.amsgrad = validation.check_bool("amsgrad", amsgrad)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        specs = [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]
        if self.amsgrad:
            specs.append(SlotSpec("max_exp_avg_sq"))
        return specs

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        beta_1 = self._hyper("beta_1", step.dtype)
        beta_2 = self.beta_2
        exp_avg = state["exp_avg"] + (1.0 - cast_scalar(beta_1, dtype)) * (
            grad - state["exp_avg"]
        )
        exp_avg_sq = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * grad * grad
        new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        second = exp_avg_sq
        if self.amsgrad:
            second = self._math.maximum(state["max_exp_avg_sq"], exp_avg_sq)
            new["max_exp_avg_sq"] = second
        bias_1 = one_minus_power(beta_1, step)
        bias_2_sqrt = ops.sqrt(one_minus_power(beta_2, step))
        step_size = ops.cast(lr, step.dtype) / bias_1
        denom = (self._math.sqrt(second) / ops.cast(bias_2_sqrt, dtype)
                 + self.epsilon)
        direction = exp_avg
        if self.caution:
            direction = cautious(exp_avg, grad)
        param = param - ops.cast(step_size, dtype) * (direction / denom)
        return param, new


@register_optimizer("adamw", "Adam with decoupled weight decay "
                    "(torch.optim.AdamW)")
class AdamW(Adam):
    r"""AdamW, as `torch.optim.AdamW`: Adam with decoupled weight decay.

    Before each update $\theta \leftarrow \theta(1 - \gamma\lambda)$; the rest
    is :class:`Adam` (see its equations).

    Differs from `keras.optimizers.AdamW`: the default `weight_decay` is
    torch's 1e-2 (Keras: 4e-3), ε is added after the bias correction, and
    `amsgrad` keeps the maximum of the raw second moment.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1), or a schedule of the step. Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0. Defaults to `1e-8`.
        weight_decay: Float >= 0, the decoupled decay coefficient. Variables
            excluded with `exclude_from_weight_decay()` get none.
            Defaults to `1e-2`.
        amsgrad: Bool. Defaults to `False`.
        {{maximize}}
        caution: Bool. Cautious update: the components of $m_t$ whose sign
            disagrees with $g_t$ are left out of the step and the rest
            rescaled by the inverse kept fraction, as timm 1.0.31
            `AdamWLegacy(caution=True)` (whose update is otherwise torch's
            AdamW). Defaults to `False`.
        {{base}}

    References:
        - Loshchilov and Hutter, 2019, "Decoupled Weight Decay
          Regularization".
        - Liang et al., 2024, "Cautious Optimizers: Improving Training with
          One Line of Code" (`caution`).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "amsgrad", "maximize", "caution")

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        maximize=False,
        caution=False,
        **kwargs,
    ):
        if "decoupled_weight_decay" in kwargs:
            raise ValueError(
                "Argument `decoupled_weight_decay` is not accepted by AdamW, "
                "whose weight decay is always decoupled; use "
                "`Adam(decoupled_weight_decay=...)` to choose. Received: "
                f"decoupled_weight_decay={kwargs['decoupled_weight_decay']}"
            )
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            decoupled_weight_decay=True,
            maximize=maximize,
            caution=caution,
            **kwargs,
        )
