"""LAMB (layer-wise adaptive moments), as timm's `Lamb` (NVIDIA's NvLamb)."""

import keras
from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import _densify
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


def _as_variable(grad, variable, dtype):
    """``grad`` densified, in ``dtype`` and the variable's static shape (a
    densified IndexedSlices has an unknown first dimension inside
    tf.function); the cast and reshape only where they change something
    (on torch each is an operator call per tensor)."""
    grad = _densify(grad)
    if keras.backend.standardize_dtype(grad.dtype) != dtype:
        grad = ops.cast(grad, dtype)
    if tuple(grad.shape) != tuple(variable.shape):
        grad = ops.reshape(grad, variable.shape)
    return grad


@register_optimizer("lamb", "LAMB with a global gradient-norm clip and "
                    "layer-wise trust ratios (timm 1.0.31 Lamb)")
class Lamb(ZooOptimizer):
    r"""LAMB, as timm 1.0.31's `timm.optim.lamb.Lamb` (the NVIDIA NvLamb /
    apex FusedLAMB variant).

    With all gradients first divided by the global clip factor
    $c = \max(\lVert (g^{(1)}, \dots, g^{(n)}) \rVert_2 / \text{max\_grad\_norm}, 1)$
    (one norm over every variable), for each variable:

    $$m_t = \beta_1 m_{t-1} + \beta_3 g_t,\qquad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$$
    $$u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t}/\sqrt{1-\beta_2^t}
      + \epsilon} + \lambda\theta_{t-1}$$
    $$r_t = \frac{\lVert\theta_{t-1}\rVert}{\lVert u_t\rVert}\ \
      (1 \text{ if either norm is } 0;\ \min(r_t, 1) \text{ with trust\_clip}),
      \qquad \theta_t = \theta_{t-1} - \gamma\, r_t\, u_t$$

    where $\beta_3 = 1-\beta_1$ with `grad_averaging`, else 1; without
    `bias_correction` both corrections are 1. The weight-decay term is added
    to the update before the trust ratio (it never enters the moments); with
    `decoupled_weight_decay` it is replaced by
    $\theta \leftarrow \theta(1-\gamma\lambda)$ before the step. The trust
    ratio is applied only to variables with weight decay (a variable
    excluded with `exclude_from_weight_decay()` or `weight_decay=0` takes
    the plain Adam-style step) unless `always_adapt`. With `caution`, the
    components of the Adam direction whose sign disagrees with the (clipped)
    gradient are zeroed and the rest rescaled by the inverse kept fraction
    (before weight decay is added).

    Differs from `keras.optimizers.Lamb`: Keras has no global gradient clip,
    no weight decay inside the update (its `weight_decay` is decoupled and
    applied by the base class), puts ε inside the bias-corrected root
    ($\sqrt{v_t/(1-\beta_2^t)} + \epsilon$), defaults to ε=1e-7, and always
    applies the trust ratio. Differs from `optax.lamb`: no global clip, and
    optax applies its trust ratio to every parameter.

    Args:
        {{learning_rate}}
        bias_correction: Bool. Divide the moments by $1-\beta^t$.
            Defaults to `True`.
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float >= 0, added to the root of the second moment.
            Defaults to `1e-6`.
        weight_decay: Float >= 0, added to the update (`weight_decay *
            param`) before the trust ratio; variables excluded with
            `exclude_from_weight_decay()` get none (and no trust ratio
            unless `always_adapt`). Defaults to `0.01`.
        grad_averaging: Bool. Scale the gradient by $1-\beta_1$ in the
            first moment. Defaults to `True`.
        max_grad_norm: Float > 0 or None. Clip the global norm of all
            gradients to this value (None: no clipping). Defaults to `1.0`.
        trust_clip: Bool. Clip the trust ratio at 1 (LAMBC).
            Defaults to `False`.
        always_adapt: Bool. Apply the trust ratio also to variables without
            weight decay. Defaults to `False`.
        caution: Bool. Cautious updates (timm's `caution`).
            Defaults to `False`.
        decoupled_weight_decay: Bool. timm's `decoupled_decay`: scale the
            parameter by `1 - learning_rate * weight_decay` before the step
            instead of adding the decay to the update. Defaults to `False`.
        maximize: Bool. Maximise the objective: the gradient is negated
            (after the global norm, which it does not change). An extension:
            timm's Lamb has no `maximize`. Defaults to `False`.
        {{base}}

    References:
        - You et al., 2020, "Large Batch Optimization for Deep Learning:
          Training BERT in 76 minutes".
        - NVIDIA apex `FusedLAMB`; timm `timm/optim/lamb.py`.
        - Liang et al., 2024, "Cautious Optimizers".
    """

    _hyperparameters = ("bias_correction", "beta_1", "beta_2", "epsilon",
                        "weight_decay", "grad_averaging", "max_grad_norm",
                        "trust_clip", "always_adapt", "caution",
                        "decoupled_weight_decay", "maximize")

    def __init__(
        self,
        learning_rate=1e-3,
        bias_correction=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        weight_decay=0.01,
        grad_averaging=True,
        max_grad_norm=1.0,
        trust_clip=False,
        always_adapt=False,
        caution=False,
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
        self.bias_correction = validation.check_bool("bias_correction",
                                                     bias_correction)
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.grad_averaging = validation.check_bool("grad_averaging",
                                                    grad_averaging)
        if max_grad_norm is not None:
            max_grad_norm = validation.check_real(
                "max_grad_norm", max_grad_norm, low=0.0, low_open=True)
        self.max_grad_norm = max_grad_norm
        self.trust_clip = validation.check_bool("trust_clip", trust_clip)
        self.always_adapt = validation.check_bool("always_adapt",
                                                  always_adapt)
        self.caution = validation.check_bool("caution", caution)

    #: timm's decay: decoupled here, coupled in _update
    weight_decay_in_update = True
    #: the global gradient norm's clip factor (``self._stats``) is a 0-d
    #: tensor read only by ``_update``: the fast path's replay may read it
    #: from a tensor it refreshes each step (``fastpath/runner.py``)
    replay_step_statistics = True

    def _slot_specs(self):
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def _step_statistics(self, grads, variables):
        if self.max_grad_norm is None:
            return {}
        dtypes = {str(getattr(g, "dtype", "")) for g in grads}
        dtype = "float64" if any("float64" in d for d in dtypes) \
            else "float32"
        norms = _layerwise.norms([_as_variable(g, v, dtype)
                                  for g, v in zip(grads, variables)])
        total = _layerwise.norm(_layerwise.stack(norms))
        # timm: (global_norm / max_grad_norm).clamp_(min=1.0)
        clip = _minmax.maximum(total / self.max_grad_norm, 1.0)
        return {"clip": clip}

    def _prepare(self, gradient, variable, learning_rate, index):
        param, grad, lr = super()._prepare(gradient, variable, learning_rate,
                                           index)
        if self.decoupled_weight_decay:
            param = _layerwise.decoupled_decay(self, param, lr, index,
                                               add=True)
        return param, grad, lr

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        if self.max_grad_norm is not None:
            grad = grad / ops.cast(self._stats["clip"], dtype)
        beta_1, beta_2 = self.beta_1, self.beta_2
        if self.grad_averaging:
            exp_avg = state["exp_avg"] + (1.0 - beta_1) * (
                grad - state["exp_avg"])
        else:
            exp_avg = beta_1 * state["exp_avg"] + grad
        exp_avg_sq = beta_2 * state["exp_avg_sq"] + (1.0 - beta_2) * grad \
            * grad
        new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        if self.bias_correction:
            step = self._step(dtype)
            bias_1 = ops.cast(one_minus_power(beta_1, step), dtype)
            bias_2_sqrt = ops.cast(ops.sqrt(one_minus_power(beta_2, step)),
                                   dtype)
            denom = self._math.sqrt(exp_avg_sq) / bias_2_sqrt + self.epsilon
            update = (exp_avg / bias_1) / denom
        else:
            update = exp_avg / (self._math.sqrt(exp_avg_sq) + self.epsilon)
        if self.caution:
            update = _layerwise.caution(update, grad)
        decays = self._decays(index)
        if decays and not self.decoupled_weight_decay:
            update = update + self._weight_decay_value(dtype) * param
        if decays or self.always_adapt:
            w_norm = _layerwise.norm(param)
            u_norm = _layerwise.norm(update)
            ratio = _layerwise.guarded_ratio(w_norm, u_norm, w_norm / u_norm)
            if self.trust_clip:
                ratio = _minmax.minimum(ratio, 1.0)
            update = update * ratio
        return param - lr * update, new
