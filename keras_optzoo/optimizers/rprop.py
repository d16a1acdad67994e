"""Rprop: resilient backpropagation, as torch.optim.Rprop."""

import numbers

from keras import ops

from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def _pair(name, value, meaning):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") \
            or len(value) != 2 or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool)
                for v in value):
        raise TypeError(
            f"Argument `{name}` must be a pair of real numbers {meaning}. "
            f"Received: {name}={value!r}"
        )
    return float(value[0]), float(value[1])


def check_etas(etas):
    minus, plus = _pair("etas", etas, "(etaminus, etaplus)")
    if not 0.0 < minus < 1.0 < plus < float("inf"):
        raise ValueError(
            "Argument `etas` must be (etaminus, etaplus) with "
            f"0 < etaminus < 1 < etaplus. Received: etas={tuple(etas)!r}"
        )
    return minus, plus


def check_step_sizes(step_sizes):
    low, high = _pair("step_sizes", step_sizes, "(min, max)")
    if not 0.0 <= low <= high < float("inf"):
        raise ValueError(
            "Argument `step_sizes` must be (min, max) with "
            "0 <= min <= max < inf. Received: "
            f"step_sizes={tuple(step_sizes)!r}"
        )
    return low, high


@register_optimizer("rprop", "Rprop: per-element step sizes adapted by "
                    "gradient sign changes (torch.optim.Rprop)")
class Rprop(ZooOptimizer):
    r"""Resilient backpropagation, as `torch.optim.Rprop` (torch 2.13).

    Per element the optimizer keeps torch's state: the previous (masked)
    gradient `prev` and the step size `step_size`, set to the learning rate
    γ on the first step. With gradient $g_t$ (after `maximize`),
    $s_t = \operatorname{sign}(g_t\, \text{prev}_{t-1})$,
    $(\eta^-, \eta^+)$ = `etas` and
    $(\Delta_{\min}, \Delta_{\max})$ = `step_sizes`:

    $$\Delta_t = \operatorname{clip}\big(\Delta_{t-1}\cdot
      \{\eta^+ \text{ if } s_t>0;\ \eta^- \text{ if } s_t<0;\ 1
      \text{ otherwise}\},\ \Delta_{\min}, \Delta_{\max}\big),\qquad
      \Delta_0 = \gamma$$
    $$\tilde g_t = 0 \text{ if } s_t < 0 \text{ else } g_t,\qquad
      \theta_t = \theta_{t-1} - \operatorname{sign}(\tilde g_t)\,\Delta_t,
      \qquad \text{prev}_t = \tilde g_t$$

    As in torch, the learning rate is read once, to initialise the step
    sizes on the first step: changing it later (or a schedule) has no
    effect. `sign` follows torch's (sign(NaN) = 0, so a NaN gradient
    element leaves its parameter unchanged) on every backend. There is no
    weight decay (torch's Rprop has none): `weight_decay` is refused.

    The per-element selections are written with arithmetic on
    $|s_t|$ and $s_t$ and `self._math.zero_where` (a `where` on tensors; a
    clip to bounds of 0 or ∞ on the torch multi-tensor path, which has no
    per-element select), so the update runs on that path too.

    Differs from `keras.optimizers.*`: Keras has no Rprop. `optax.rprop`
    (0.2.8) computes something else: it does not clamp the step size where
    the sign product is 0 (torch clamps it every step), and the update it
    returns at step t is the one computed at step t − 1 (masked by the
    current sign).

    Args:
        {{learning_rate}}
        etas: Pair `(etaminus, etaplus)` with
            0 < etaminus < 1 < etaplus: the factors applied to the step
            size when the gradient's sign flips or stays.
            Defaults to `(0.5, 1.2)`.
        step_sizes: Pair `(min, max)` with 0 <= min <= max, the bounds of
            the step sizes. Defaults to `(1e-6, 50.0)`.
        {{maximize}}
        {{base}}

    References:
        - Riedmiller and Braun, 1993, "A Direct Adaptive Method for Faster
          Backpropagation Learning: The RPROP Algorithm".
    """

    _hyperparameters = ("etas", "step_sizes", "maximize")

    def __init__(
        self,
        learning_rate=1e-2,
        etas=(0.5, 1.2),
        step_sizes=(1e-6, 50.0),
        maximize=False,
        **kwargs,
    ):
        if "weight_decay" in kwargs or "decoupled_weight_decay" in kwargs:
            _refuse_weight_decay(kwargs)
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=0.0,
            maximize=maximize,
            **kwargs,
        )
        self.etas = check_etas(etas)
        self.step_sizes = check_step_sizes(step_sizes)

    def _slot_specs(self):
        return [SlotSpec("prev"), SlotSpec("step_size")]

    def _update(self, param, grad, state, lr, index):
        eta_minus, eta_plus = self.etas
        size_min, size_max = self.step_sizes
        first = ops.equal(self.iterations, 0)
        step_size = self._math.where(first, lr, state["step_size"])
        sign = self._math.sign(grad * state["prev"])
        magnitude = self._math.abs(sign)
        # 0/1 masks of sign > 0, sign < 0: exact in any float type
        grew = (magnitude + sign) * 0.5
        flipped = (magnitude - sign) * 0.5
        factor = grew * eta_plus + flipped * eta_minus + (1.0 - magnitude)
        step_size = self._math.minimum(
            self._math.maximum(step_size * factor, size_min), size_max)
        grad = self._math.zero_where(flipped, grad)
        param = param - self._math.sign(grad) * step_size
        return param, {"prev": grad, "step_size": step_size}


def _refuse_weight_decay(kwargs):
    from keras_optzoo.optimizers import validation

    for name in ("weight_decay", "decoupled_weight_decay"):
        if name not in kwargs:
            continue
        value = kwargs[name]
        if name == "weight_decay":
            value = validation.check_real(name, value, low=0.0)
            if value == 0.0:
                del kwargs[name]
                continue
        raise ValueError(
            f"Argument `{name}` is not accepted by Rprop: torch.optim.Rprop "
            f"has no weight decay. Received: {name}={kwargs[name]!r}"
        )
