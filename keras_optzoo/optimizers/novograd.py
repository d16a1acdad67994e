"""NovoGrad (layer-wise second moments), as timm's `NvNovoGrad` (NVIDIA's)."""

from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("novograd", "NovoGrad: layer-wise normalised gradients "
                    "with momentum (timm 1.0.31 NvNovoGrad, NVIDIA's)")
class NovoGrad(ZooOptimizer):
    r"""NovoGrad, as timm 1.0.31's `timm.optim.nvnovograd.NvNovoGrad` (the
    NVIDIA Jasper implementation).

    Each variable keeps ONE second-moment number, the running average of its
    gradient's squared norm:

    $$v_t = \begin{cases}\lVert g_t\rVert^2 & v_{t-1} = 0\\
      \beta_2 v_{t-1} + (1-\beta_2)\lVert g_t\rVert^2 & \text{else}\end{cases}
      \qquad \hat v_t = \max(\hat v_{t-1}, v_t)\ \text{(amsgrad) or } v_t$$
    $$u_t = \frac{g_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\theta_{t-1},
      \qquad m_t = \beta_1 m_{t-1} + \alpha u_t,
      \qquad \theta_t = \theta_{t-1} - \gamma m_t$$

    with $\alpha = 1-\beta_1$ under `grad_averaging`, else 1. The weight
    decay is added to the *normalised* gradient (as in the paper); with
    `decoupled_weight_decay` it is replaced by $\theta \leftarrow
    \theta(1-\gamma\lambda)$ before the step. No bias correction.

    Differs from `keras.optimizers.Adam` (Keras has no NovoGrad): the second
    moment is one scalar per variable and there is no bias correction.
    Differs from `optax.novograd`: other defaults (β₁ 0.9, β₂ 0.25, ε 1e-6),
    the second moment starts from the first step's squared norm by step
    count (here, as in NVIDIA's code, whenever it is still exactly 0), and
    there is no `grad_averaging` or `amsgrad`.

    Args:
        learning_rate: A real number >= 0, a schedule or a callable.
            Defaults to `1e-3`.
        beta_1: Float in [0, 1). Defaults to `0.95`.
        beta_2: Float in [0, 1). Defaults to `0.98`.
        epsilon: Float >= 0. Defaults to `1e-8`.
        weight_decay: Float >= 0, added to the normalised gradient
            (`weight_decay * param`); variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        grad_averaging: Bool. Scale the normalised gradient by $1-\beta_1$
            before the momentum. Defaults to `False`.
        amsgrad: Bool. Normalise by the running maximum of the second
            moment. Defaults to `False`.
        decoupled_weight_decay: Bool. timm's `decoupled_decay`: scale the
            parameter by `1 - learning_rate * weight_decay` instead.
            Defaults to `False`.
        maximize: Bool. Maximise the objective: the gradient is negated
            first. An extension: timm's NvNovoGrad has no `maximize`.
            Defaults to `False`.
        {{base}}

    References:
        - Ginsburg et al., 2019, "Stochastic Gradient Methods with
          Layer-wise Adaptive Moments for Training of Deep Networks".
        - NVIDIA DeepLearningExamples, Jasper `novograd.py`; timm
          `timm/optim/nvnovograd.py`.
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "grad_averaging", "amsgrad", "decoupled_weight_decay",
                        "maximize")

    #: timm's decay: decoupled here, coupled in _update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.95,
        beta_2=0.98,
        epsilon=1e-8,
        weight_decay=0.0,
        grad_averaging=False,
        amsgrad=False,
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
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.grad_averaging = validation.check_bool("grad_averaging",
                                                    grad_averaging)
        self.amsgrad = validation.check_bool("amsgrad", amsgrad)

    def _slot_specs(self):
        specs = [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq", scalar=True)]
        if self.amsgrad:
            specs.append(SlotSpec("max_exp_avg_sq", scalar=True))
        return specs

    def _prepare(self, gradient, variable, learning_rate, index):
        param, grad, lr = super()._prepare(gradient, variable, learning_rate,
                                           index)
        if self.decoupled_weight_decay:
            param = _layerwise.decoupled_decay(self, param, lr, index)
        return param, grad, lr

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        scalar_dtype = state["exp_avg_sq"].dtype
        sq_norm = self._math.sum(self._math.square(
            self._math.cast(grad, scalar_dtype)))
        previous = state["exp_avg_sq"]
        exp_avg_sq = ops.where(
            ops.equal(previous, 0.0), sq_norm,
            self.beta_2 * previous + (1.0 - self.beta_2) * sq_norm)
        new = {"exp_avg_sq": exp_avg_sq}
        second = exp_avg_sq
        if self.amsgrad:
            second = _minmax.maximum(state["max_exp_avg_sq"], exp_avg_sq)
            new["max_exp_avg_sq"] = second
        denom = ops.cast(ops.sqrt(second) + self.epsilon, dtype)
        update = grad / denom
        if self._decays(index) and not self.decoupled_weight_decay:
            update = update + self._weight_decay_value(dtype) * param
        if self.grad_averaging:
            update = update * (1.0 - self.beta_1)
        exp_avg = self.beta_1 * state["exp_avg"] + update
        new["exp_avg"] = exp_avg
        return param - lr * exp_avg, new
