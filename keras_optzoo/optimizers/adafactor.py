"""Adafactor, as torch.optim.Adafactor (factored second moment)."""

import math

import keras
import numpy as np
from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo.optimizers import _factored
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


# On the torch backend a Python float given to ``ops.where`` or
# ``ops.power`` becomes a float32 tensor first, and ``ops.mean`` computes in
# float32 for float64 inputs (Keras's type promotion maps 64-bit to 32-bit
# types): constants are made tensors of the operand's dtype, and means are
# ``MATH.mean`` (float64 kept). float32 values are unchanged.


def _where_greater(x, bound):
    """Python's ``max(bound, x)``: ``x`` only where ``x > bound`` (so a NaN
    ``x`` gives ``bound``, as torch's ``max(1.0, t.item())`` does)."""
    return ops.where(x > bound, x, ops.full_like(x, bound))


@register_optimizer("adafactor", "Adafactor, factored second moment "
                    "(torch.optim.Adafactor)")
class Adafactor(ZooOptimizer):
    r"""Adafactor, as `torch.optim.Adafactor` (torch 2.13).

    With $\tau$ = `beta_2_decay`, $\gamma$ = `learning_rate`, $d$ =
    `clip_threshold`, $\lambda$ = `weight_decay`, $\epsilon_1, \epsilon_2$ =
    `epsilon_1`, `epsilon_2`:

    $$\hat\beta_{2,t} = 1 - t^{\tau},\qquad
      \rho_t = \min(\gamma, 1/\sqrt t),\qquad
      \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t$$
    $$\theta \leftarrow \theta(1 - \gamma\lambda)$$

    For a variable with 2 or more dimensions the second moment is factored
    over the last two dimensions *of the torch tensor the variable maps to*
    (`keras_optzoo.layout`: a Dense kernel `(in, out)` is factored as
    torch's `(out, in)`, a Conv2D kernel `(kh, kw, in, out)` over torch's
    `(kh, kw)`), with row statistics $R$ of shape `(..., n, 1)` and column
    statistics $C$ of shape `(..., 1, m)` in that layout:

    $$R_t = \hat\beta_{2,t} R_{t-1} + (1-\hat\beta_{2,t})\,
      \mathrm{mean}_{-1}(g_t^2),\qquad
      C_t = \hat\beta_{2,t} C_{t-1} + (1-\hat\beta_{2,t})\,
      \mathrm{mean}_{-2}(g_t^2)$$
    $$\hat V_t = \frac{R_t C_t}{\max(\mathrm{mean}_{-2}(R_t), \epsilon_1)}$$

    and for 0-d and 1-d variables
    $\hat V_t = \hat\beta_{2,t}\hat V_{t-1} + (1-\hat\beta_{2,t}) g_t^2$.
    Then

    $$U_t = g_t / \sqrt{\max(\hat V_t, \epsilon_1^2)},\qquad
      \theta_t = \theta_{t-1} - \frac{\alpha_t}{\max(1,
      \mathrm{RMS}(U_t)/d)}\,U_t .$$

    $\alpha_t$ is computed from the parameter *before* the weight decay, as
    torch does; the decay is decoupled and scaled by the learning rate (not
    by $\rho_t$). The state per variable is $R$ and $C$ (sublinear: a
    1024×1024 kernel keeps 2·1024 values) or $\hat V$ for vectors and
    scalars; the step count is the optimizer's `iterations`.

    `epsilon_1=None` is torch's default: the machine epsilon of the
    variable's dtype (float64, float32, float16, bfloat16). Torch takes the
    dtype of the first parameter of a param group for the whole group; here
    each variable uses its own dtype (the same when all variables share one).
    Scalar reductions (the RMS of $\theta$ and $U$) run in float32 (float64
    for float64 variables), as torch's norms accumulate in float.

    On the torch backend the update runs on the multi-tensor path
    (`update_path` says "foreach"): factored and unfactored variables form
    two groups, the row and column means are one reduction per tensor and
    the rest runs in foreach kernels on the whole group.

    Differs from `keras.optimizers.Adafactor`: Keras's default
    `learning_rate` is 1e-3 (torch: 1e-2, the cap of the relative step);
    its `epsilon_1` (1e-30) is added to $g^2$ before the row and column
    means, where torch clamps the variance estimate and the row mean with
    $\epsilon_1$ (machine epsilon); Keras normalises the row factor by its
    mean over the last axis of $R$ and keeps a full-size $\hat V$ slot for
    every variable (state as large as Adam's second moment, not sublinear);
    its `relative_step` flag has no torch counterpart; and its weight decay
    is Keras's decoupled $\theta\gamma\lambda$ with default `None`.

    Args:
        {{learning_rate}}
        beta_2_decay: Float <= 0, the exponent $\tau$ of
            $\hat\beta_{2,t} = 1 - t^\tau$. Defaults to `-0.8`.
        epsilon_1: Float >= 0 or None, the floor of the second-moment
            estimate (torch's `eps[0]`); None takes the machine epsilon of
            the variable's dtype. Defaults to `None`.
        epsilon_2: Float >= 0, the floor of the parameter RMS in the step
            size (torch's `eps[1]`). Defaults to `1e-3`.
        clip_threshold: Float >= 1, the update clipping threshold $d$
            (torch's `d`). Defaults to `1.0`.
        weight_decay: Float >= 0. Decoupled decay
            $\theta \leftarrow \theta(1 - \gamma\lambda)$, as torch's
            Adafactor applies it. Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        {{maximize}}
        {{base}}

    References:
        - Shazeer and Stern, 2018, "Adafactor: Adaptive Learning Rates with
          Sublinear Memory Cost" (https://arxiv.org/abs/1804.04235).
        - torch.optim.Adafactor (torch 2.13), `torch/optim/_adafactor.py`.
    """

    _hyperparameters = ("beta_2_decay", "epsilon_1", "epsilon_2",
                        "clip_threshold", "weight_decay", "maximize")
    #: torch computes the step size from the parameter before decaying it
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1e-2,
        beta_2_decay=-0.8,
        epsilon_1=None,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        weight_decay=0.0,
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
        self.beta_2_decay = validation.check_real("beta_2_decay",
                                                  beta_2_decay, high=0.0)
        self.epsilon_1 = None if epsilon_1 is None else \
            validation.check_real("epsilon_1", epsilon_1, low=0.0)
        self.epsilon_2 = validation.check_real("epsilon_2", epsilon_2,
                                               low=0.0)
        self.clip_threshold = validation.check_real(
            "clip_threshold", clip_threshold, low=1.0)

    def _rule_for(self, variable):
        # factored as torch factors the tensor the variable maps to (the
        # multi-tensor path groups factored and unfactored variables apart)
        if len(self.layout_of(variable).torch_shape) >= 2:
            return "factored"
        return None

    def _slot_specs_for(self, variable, rule):
        shape = tuple(self.layout_of(variable).torch_shape)
        if rule == "factored":
            return [SlotSpec("row_var", shape=shape[:-1] + (1,)),
                    SlotSpec("col_var", shape=shape[:-2] + (1,) + shape[-1:])]
        return [SlotSpec("variance")]

    def _epsilon_1(self, dtype):
        if self.epsilon_1 is not None:
            return self.epsilon_1
        name = keras.backend.standardize_dtype(dtype)
        if name == "bfloat16":
            import ml_dtypes

            return float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps)
        return float(np.finfo(name).eps)

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        sdt = step.dtype
        # (on the multi-tensor path ``index`` is a group's tuple: the
        # layouts, sizes and size-dependent constants are one per tensor)
        layouts = _factored.layouts(self, index)
        sqrt_numel = tuple(math.sqrt(n) for n in _factored.sizes(layouts)) \
            if isinstance(index, tuple) else math.sqrt(
                _factored.sizes(layouts))
        eps1 = self._epsilon_1(dtype)

        one_minus_beta_2 = ops.power(
            step, ops.full_like(step, self.beta_2_decay))
        lr_s = ops.cast(lr, sdt)
        inv_sqrt_t = 1.0 / ops.sqrt(step)
        rho = ops.where(inv_sqrt_t < lr_s, inv_sqrt_t, lr_s)  # Python min
        param_s = MATH.cast(param, sdt)
        # torch's ``p.norm(2)``: one ``_foreach_norm`` on the fast path
        param_rms = MATH.norm(param_s) / _factored.per_tensor(sqrt_numel, sdt)
        alpha = _where_greater(param_rms, self.epsilon_2) * rho

        if self._decays(index):
            param = param * (1.0 - lr * self._weight_decay_value(dtype))

        w = ops.cast(one_minus_beta_2, dtype)
        grad_s = MATH.cast(grad, sdt)
        grad_sq = grad_s * grad_s
        if self._rule(index) == "factored":
            # row and column means over torch's last two axes, kept in the
            # torch layout; the estimate R C / mean(R) is formed in the
            # Keras layout from views of the factors
            row_mean = MATH.cast(_factored.torch_mean(grad_sq, layouts, -1),
                                 dtype)
            col_mean = MATH.cast(_factored.torch_mean(grad_sq, layouts, -2),
                                 dtype)
            row_var = state["row_var"] + w * (row_mean - state["row_var"])
            col_var = state["col_var"] + w * (col_mean - state["col_var"])
            new = {"row_var": row_var, "col_var": col_var}
            row_scale = MATH.maximum(
                MATH.mean(row_var, -2, keepdims=True), eps1)
            var_estimate = (_factored.from_torch(row_var, layouts)
                            * _factored.from_torch(col_var, layouts)) \
                / _factored.from_torch(row_scale, layouts)
        else:
            variance = state["variance"] + w * (
                MATH.cast(grad_sq, dtype) - state["variance"])
            new = {"variance": variance}
            var_estimate = variance
        update = grad / MATH.sqrt(MATH.maximum(var_estimate, eps1 * eps1))
        update_s = MATH.cast(update, sdt)
        update_rms = MATH.norm(update_s) / \
            _factored.per_tensor(
                tuple(s * self.clip_threshold for s in sqrt_numel)
                if isinstance(sqrt_numel, tuple)
                else sqrt_numel * self.clip_threshold, sdt)
        denom = _where_greater(update_rms, 1.0)
        param = param - ops.cast(alpha / denom, dtype) * update
        return param, new
