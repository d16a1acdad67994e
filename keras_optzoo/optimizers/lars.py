"""LARS / LARC (layer-wise adaptive rate scaling), as timm's `Lars`."""

from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("lars", "LARS / LARC: SGD with layer-wise trust ratios "
                    "(timm 1.0.31 Lars)")
class Lars(ZooOptimizer):
    r"""LARS (with LARC clipping), as timm 1.0.31's `timm.optim.lars.Lars`.

    For each variable with weight decay $\lambda$ (or every variable with
    `always_adapt`), with trust coefficient $\eta$:

    $$r_t = \frac{\eta\,\lVert\theta\rVert}
      {\lVert g_t\rVert + \lambda\lVert\theta\rVert + \epsilon}\ \
      (1 \text{ if either norm is } 0),\qquad
      g_t \leftarrow (g_t + \lambda\theta)\, r_t$$

    with `trust_clip` (LARC) $r_t \leftarrow \min(r_t/\gamma, 1)$. Then SGD as
    `torch.optim.SGD`: $b_1 = g_1$, $b_t = \mu b_{t-1} + (1-\tau) g_t$,
    $d_t = g_t + \mu b_t$ (nesterov) or $b_t$, $\theta_t = \theta_{t-1} -
    \gamma d_t$. A variable without weight decay (excluded with
    `exclude_from_weight_decay()`, or `weight_decay=0`) takes the plain SGD
    step unless `always_adapt`.

    Differs from `keras.optimizers.SGD` (Keras has no LARS): Keras's SGD has
    no trust ratio, keeps the learning rate inside the momentum buffer and
    applies `weight_decay` decoupled. Differs from `optax.lars`: optax
    applies its decay and trust ratio with other defaults (trust
    coefficient, ε, nesterov) and masks by rank rather than by weight decay.

    Args:
        learning_rate: A real number >= 0, a schedule or a callable.
            Defaults to `1.0`.
        momentum: Float >= 0. Defaults to `0.0`.
        dampening: Float in [0, 1]. Defaults to `0.0`.
        weight_decay: Float >= 0. L2 penalty added to the gradient before
            the trust ratio scales it, and part of the ratio's denominator.
            Variables excluded with `exclude_from_weight_decay()` get none.
            Defaults to `0.0`.
        nesterov: Bool. Nesterov momentum; needs `momentum > 0` and
            `dampening == 0`. Defaults to `False`.
        trust_coefficient: Float >= 0, timm's `trust_coeff`.
            Defaults to `0.001`.
        epsilon: Float >= 0, in the trust ratio's denominator.
            Defaults to `1e-8`.
        trust_clip: Bool. LARC: clip the trust ratio divided by the learning
            rate at 1. Defaults to `False`.
        always_adapt: Bool. Apply the trust ratio to every variable, not
            only those with weight decay. Defaults to `False`.
        maximize: Bool. Maximise the objective: the gradient is negated
            first. An extension: timm's Lars has no `maximize`.
            Defaults to `False`.
        {{base}}

    References:
        - You, Gitman and Ginsburg, 2017, "Large Batch Training of
          Convolutional Networks".
        - NVIDIA apex `LARC`; timm `timm/optim/lars.py`.
    """

    _hyperparameters = ("momentum", "dampening", "weight_decay", "nesterov",
                        "trust_coefficient", "epsilon", "trust_clip",
                        "always_adapt", "maximize")

    #: the reference's decay is applied in _update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1.0,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        trust_coefficient=1e-3,
        epsilon=1e-8,
        trust_clip=False,
        always_adapt=False,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            maximize=maximize,
            **kwargs,
        )
        self.momentum = validation.check_real("momentum", momentum, low=0.0)
        self.dampening = validation.check_real("dampening", dampening,
                                               low=0.0, high=1.0)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        if self.nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError(
                "Argument `nesterov=True` requires `momentum` > 0 and "
                f"`dampening` = 0. Received: momentum={momentum}, "
                f"dampening={dampening}"
            )
        self.trust_coefficient = validation.check_real(
            "trust_coefficient", trust_coefficient, low=0.0)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.trust_clip = validation.check_bool("trust_clip", trust_clip)
        self.always_adapt = validation.check_bool("always_adapt",
                                                  always_adapt)

    def _slot_specs(self):
        if self.momentum == 0.0:
            return []
        return [SlotSpec("momentum_buffer")]

    def _update(self, param, grad, state, lr, index):
        decays = self._decays(index)
        wd = self._weight_decay_value(param.dtype) if decays else 0.0
        if decays or self.always_adapt:
            w_norm = _layerwise.norm(param)
            g_norm = _layerwise.norm(grad)
            ratio = self.trust_coefficient * w_norm / (
                g_norm + w_norm * wd + self.epsilon)
            ratio = _layerwise.guarded_ratio(w_norm, g_norm, ratio)
            if self.trust_clip:
                # timm: torch.clamp(trust_ratio / lr, max=1.0)
                ratio = _minmax.minimum(ratio / lr, 1.0)
            grad = (grad + wd * param) * ratio
        if not state:
            return param - lr * grad, {}
        momentum = self.momentum
        first = ops.equal(self.iterations, 0)
        buf = self._math.where(first, grad, momentum * state["momentum_buffer"]
                        + (1.0 - self.dampening) * grad)
        direction = grad + momentum * buf if self.nesterov else buf
        return param - lr * direction, {"momentum_buffer": buf}
