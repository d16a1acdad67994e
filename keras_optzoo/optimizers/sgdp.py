"""SGDP (SGD with radial-component projection), as timm's `SGDP`
(clovaai's code)."""

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.adamp import check_projection
from keras_optzoo.optimizers.adamp import project
from keras_optzoo.optimizers.adamp import _projection_rule
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("sgdp", "SGDP: SGD that removes the radial component "
                    "of scale-invariant weights (timm 1.0.31 SGDP, "
                    "clovaai's)")
class SGDP(ZooOptimizer):
    r"""SGDP, as timm 1.0.31's `timm.optim.sgdp.SGDP` (clovaai's code).

    $$b_t = \mu b_{t-1} + (1-\tau) g_t\ (b_0 = 0),\qquad
      p_t = g_t + \mu b_t \text{ (nesterov) or } b_t$$

    then, for variables of rank >= 2, the projection of :class:`AdamP`
    (channel view, then layer view: if the gradient is nearly orthogonal to
    the weight rows, the radial part of $p_t$ is removed and the decay is
    scaled by `wd_ratio`), and

    $$\theta_t = \theta_{t-1}\Big(1 - \frac{\gamma\lambda\rho}{1-\mu}\Big)
      - \gamma p_t$$

    with $\rho$ = `wd_ratio` if projected, else 1. Unlike `torch.optim.SGD`
    the buffer starts at zero (the first step is $(1-\tau) g_1$) and there
    is always one. With `caution`, timm's cautious masking as in AdamP.

    Differs from `keras.optimizers.SGD` (Keras has no SGDP): no projection,
    Keras keeps the learning rate inside the buffer and its decay is not
    scaled by `1/(1 - momentum)`.

    Args:
        learning_rate: A real number >= 0, a schedule or a callable. timm
            requires it; the default is the zoo's SGD default.
            Defaults to `1e-3`.
        momentum: Float in [0, 1). Defaults to `0.0`.
        dampening: Float in [0, 1]. Defaults to `0.0`.
        weight_decay: Float >= 0, decoupled and divided by `1 - momentum`;
            variables excluded with `exclude_from_weight_decay()` get none.
            Defaults to `0.0`.
        nesterov: Bool. Nesterov momentum (no restriction on momentum or
            dampening, as in the reference). Defaults to `False`.
        epsilon: Float >= 0, in the projection's norms. Defaults to `1e-8`.
        delta: Float >= 0, the cosine threshold of the projection.
            Defaults to `0.1`.
        wd_ratio: Float >= 0, the weight-decay factor of projected weights.
            Defaults to `0.1`.
        caution: Bool. Cautious updates (timm's `caution`).
            Defaults to `False`.
        maximize: Bool. Maximise the objective: the gradient is negated
            first. An extension: timm's SGDP has no `maximize`.
            Defaults to `False`.
        {{base}}

    References:
        - Heo et al., 2021, "AdamP: Slowing Down the Slowdown for Momentum
          Optimizers on Scale-invariant Weights"; code: clovaai/AdamP.
        - Liang et al., 2024, "Cautious Optimizers".
    """

    _hyperparameters = ("momentum", "dampening", "weight_decay", "nesterov",
                        "epsilon", "delta", "wd_ratio", "caution",
                        "maximize")

    #: the reference's decay is applied in _update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1e-3,
        momentum=0.0,
        dampening=0.0,
        weight_decay=0.0,
        nesterov=False,
        epsilon=1e-8,
        delta=0.1,
        wd_ratio=0.1,
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
        self.momentum = validation.check_real("momentum", momentum, low=0.0,
                                              high=1.0, high_open=True)
        self.dampening = validation.check_real("dampening", dampening,
                                               low=0.0, high=1.0)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        self.delta, self.wd_ratio, self.epsilon = check_projection(
            delta, wd_ratio, epsilon)
        self.caution = validation.check_bool("caution", caution)

    def _slot_specs(self):
        return [SlotSpec("momentum")]

    def _rule_for(self, variable):
        return _projection_rule(variable)

    def _update(self, param, grad, state, lr, index):
        momentum = self.momentum
        buf = momentum * state["momentum"] + (1.0 - self.dampening) * grad
        direction = grad + momentum * buf if self.nesterov else buf
        direction, factor = project(self, param, grad, direction, index)
        if self._decays(index):
            param = param * (1.0 - lr * self._weight_decay_value(
                param.dtype) * factor
                             / (1.0 - momentum))
        return param - lr * direction, {"momentum": buf}
