"""Stochastic gradient descent with momentum, dampening and Nesterov."""

from keras import ops

from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer(
    "sgd",
    "Stochastic gradient descent (torch.optim.SGD)",
    presets={
        "gd": ({}, "Plain gradient descent: SGD without momentum"),
        "momentum": ({"momentum": 0.9}, "SGD with heavy-ball momentum 0.9"),
        "nag": (
            {"momentum": 0.9, "nesterov": True},
            "Nesterov accelerated gradient: SGD, momentum 0.9, nesterov",
        ),
    },
)
class SGD(ZooOptimizer):
    r"""Gradient descent with optional momentum, as `torch.optim.SGD`.

    With gradient $g_t$ (after `maximize` and weight decay), momentum $\mu$,
    dampening $\tau$ and learning rate $\gamma$:

    $$b_1 = g_1,\qquad b_t = \mu b_{t-1} + (1-\tau) g_t\ (t>1)$$
    $$d_t = g_t + \mu b_t \text{ (nesterov) or } b_t,\qquad
      \theta_t = \theta_{t-1} - \gamma d_t$$

    Without momentum, $d_t = g_t$. The learning rate stays outside the
    buffer, so changing it mid-run takes effect at once.

    Differs from `keras.optimizers.SGD`: Keras keeps the learning rate inside
    the momentum buffer (`b ← μb − γg`), has no dampening, starts the buffer
    at zero rather than at the first gradient, and applies `weight_decay`
    decoupled instead of as L2.

    Args:
        {{learning_rate}}
        momentum: Float >= 0, or a schedule of the step. Defaults to `0.0`.
        dampening: Float in [0, 1]. Defaults to `0.0`.
        nesterov: Bool. Nesterov momentum; needs `momentum > 0` and
            `dampening == 0`. Defaults to `False`.
        {{weight_decay}}
        {{maximize}}
        {{base}}

    References:
        - Sutskever et al., 2013, "On the importance of initialization and
          momentum in deep learning".
    """

    #: torch's fused kernel computing exactly this rule (see
    #: ``keras_optzoo/fastpath/fused.py``); subclasses that override
    #: ``_update`` or ``_prepare`` do not inherit it.
    fused_kernel = "sgd"

    _hyperparameters = ("momentum", "dampening", "nesterov", "weight_decay",
                        "maximize")

    def __init__(
        self,
        learning_rate=1e-3,
        momentum=0.0,
        dampening=0.0,
        nesterov=False,
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
        self.momentum = validation.check_real_or_schedule(
            "momentum", momentum, low=0.0
        )
        self.dampening = validation.check_real("dampening", dampening,
                                               low=0.0, high=1.0)
        self.nesterov = validation.check_bool("nesterov", nesterov)
        if nesterov and (momentum == 0.0 or self.dampening != 0.0):
            raise ValueError(
                "Argument `nesterov=True` requires `momentum` > 0 and "
                f"`dampening` = 0. Received: momentum={momentum}, "
                f"dampening={dampening}"
            )

    def _slot_specs(self):
        if self.momentum == 0.0:
            return []
        return [SlotSpec("momentum_buffer")]

    def _update(self, param, grad, state, lr, index):
        if not state:
            return param - lr * grad, {}
        momentum = self._hyper("momentum", grad.dtype)
        first = ops.equal(self.iterations, 0)
        buf = self._math.where(
            first,
            grad,
            momentum * state["momentum_buffer"]
            + (1.0 - self.dampening) * grad,
        )
        direction = grad + momentum * buf if self.nesterov else buf
        return param - lr * direction, {"momentum_buffer": buf}
