"""AdamW8bit, Lion8bit and AdEMAMix8bit, as bitsandbytes 0.50.2 on CPU.

The three share the blockwise 8-bit state of :mod:`._quant8`: a variable of
at least ``min_8bit_size`` elements keeps each moment as uint8 codes (one
per element, in the torch layout's row-major order) plus a float32 absmax
per 256-element block; a smaller one keeps float32 moments and follows
bitsandbytes' 32-bit CPU update (for AdamW a different rounding order).
Each step dequantises, runs the float32 update and quantises again, all
inside the compiled step.
"""

import math

import numpy as np
from keras import ops

from keras_optzoo.optimizers import _quant8
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.optimizers._quant8 import fma
from keras_optzoo.registry import register_optimizer

_STATE_DOC = """
    State: a variable with at least `min_8bit_size` elements (counted on its
    torch tensor; a Keras kernel is read as the tensor torch would hold,
    see `keras_optzoo.layout`) keeps each moment as one uint8 code per
    element, in torch's row-major order, plus one float32 absmax per
    256-element block (the last block may be shorter): the moment is
    `map[code] * absmax`, with bitsandbytes' signed dynamic map for first
    moments and its unsigned map for the second moment. A code is chosen as
    bitsandbytes' CPU quantiser chooses it (a fixed search among thresholds
    of the scaled value, not the nearest map entry). Smaller variables keep
    float32 moments. The state is ordinary optimizer variables, so it saves,
    loads and resumes bit-exactly.
"""


class _Blockwise8bit(ZooOptimizer):
    """Slots and quantised-state plumbing shared by the 8-bit classes.

    Subclasses set ``_moments``: ``(name, signed)`` per moment, in saved
    order, and implement ``_math8(param, grad, moments, lr, step,
    quantised)`` on float32 tensors in the Keras layout.
    """

    supports_multi_tensor = False
    # the decay is applied in _update, kept apart from the update's add
    weight_decay_in_update = True
    _moments = ()

    def _init_8bit(self, min_8bit_size):
        self.min_8bit_size = validation.check_int("min_8bit_size",
                                                  min_8bit_size, low=0)

    def _is_quantised(self, variable):
        size = int(np.prod(variable.shape))
        return size >= self.min_8bit_size

    def _slot_specs(self):
        return [SlotSpec(name) for name, _ in self._moments]

    def _slot_specs_for(self, variable, rule):
        if not self._is_quantised(variable):
            return self._slot_specs()
        size = int(np.prod(variable.shape))
        blocks = _quant8.num_blocks(size)
        specs = []
        for name, _ in self._moments:
            specs.append(SlotSpec(name, shape=(size,), dtype="uint8"))
            specs.append(SlotSpec(f"{name}_absmax", shape=(blocks,),
                                  dtype="float32"))
        return specs

    def _update(self, param, grad, state, lr, index):
        dtype = param.dtype
        quantised = f"{self._moments[0][0]}_absmax" in state
        layout = self.layout_of(index)
        moments = {}
        for name, signed in self._moments:
            if quantised:
                value = _quant8.dequantize(state[name],
                                           state[f"{name}_absmax"],
                                           layout.torch_shape, signed)
                moments[name] = layout.from_torch(value)
            else:
                moments[name] = ops.cast(state[name], "float32")
        step = self._step("float32")
        lr = ops.cast(lr, "float32")
        param32 = ops.cast(param, "float32")
        if self._decay_mask[index]:
            wd = ops.cast(self._weight_decay_value("float32"), "float32")
            decayed = param32 * (1.0 - lr * wd)
            # bitsandbytes rounds the decayed parameter before adding the
            # update; a select keeps XLA from fusing the product into the
            # add (one rounding instead of two)
            param32 = ops.where(ops.isnan(param32), param32, decayed)
        param32, moments = self._math8(
            param32, ops.cast(grad, "float32"), moments, lr, step, quantised)
        new_state = {}
        for name, signed in self._moments:
            if quantised:
                codes, absmax = _quant8.quantize(
                    layout.to_torch(moments[name]), signed)
                new_state[name] = codes
                new_state[f"{name}_absmax"] = absmax
            else:
                new_state[name] = ops.cast(moments[name], dtype)
        return ops.cast(param32, dtype), new_state


_COMMON_ARGS = """
        min_8bit_size: Int >= 0. Variables with fewer elements keep float32
            state. Defaults to `4096`.
        {{base}}"""


@register_optimizer("adamw8bit", "AdamW with blockwise 8-bit moments "
                    "(bitsandbytes 0.50.2 AdamW8bit, CPU)")
class AdamW8bit(_Blockwise8bit):
    __doc__ = (r"""AdamW with 8-bit moments, as bitsandbytes 0.50.2's
    `bitsandbytes.optim.AdamW8bit` (its CPU implementation).

    With $\gamma$ the learning rate, $\lambda$ `weight_decay`,
    $c_1 = 1-\beta_1^t$ and $c_2 = \sqrt{1-\beta_2^t}$:

    $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
      v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$$
    $$\theta \leftarrow \theta(1-\gamma\lambda),\qquad
      \theta_t = \theta - \frac{\gamma}{c_1}\,
      \frac{m_t}{\sqrt{v_t}/c_2 + \epsilon}$$

    where $m_{t-1}$, $v_{t-1}$ are read back from their 8-bit codes and
    $m_t$, $v_t$ are stored as 8-bit codes again. For a variable kept in
    float32 the update is bitsandbytes' 32-bit form,
    $\theta_t = \theta - \gamma\frac{c_2}{c_1}\frac{m_t}{\sqrt{v_t} +
    \epsilon c_2}$.
    """ + _STATE_DOC + r"""
    Differs from `keras.optimizers.AdamW`: the moments are 8-bit, epsilon is
    added to the bias-corrected root as in torch, and the default weight
    decay is bitsandbytes' 1e-2 (Keras: 4e-3). bitsandbytes' `amsgrad`,
    `optim_bits`, `args` and `is_paged` are not offered (the first two are
    refused by bitsandbytes' AdamW8bit too; paging does not change the
    numbers).

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1): decay of the first moment.
            Defaults to `0.9`.
        beta_2: Float in [0, 1): decay of the second moment.
            Defaults to `0.999`.
        epsilon: Float >= 0 added to the bias-corrected root.
            Defaults to `1e-8`.
        weight_decay: Float >= 0. Decoupled decay,
            `param *= 1 - learning_rate * weight_decay` before the update.
            Defaults to `0.01`.""" + _COMMON_ARGS + r"""

    References:
        - Dettmers et al., 2022, "8-bit Optimizers via Block-wise
          Quantization" (https://arxiv.org/abs/2110.02861); code:
          https://github.com/bitsandbytes-foundation/bitsandbytes.
        - Loshchilov & Hutter, 2019, "Decoupled Weight Decay
          Regularization" (https://arxiv.org/abs/1711.05101).
    """)

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "min_8bit_size", "maximize")
    _moments = (("state1", True), ("state2", False))

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=1e-2,
        min_8bit_size=4096,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay,
                         decoupled_weight_decay=True, **kwargs)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            setattr(self, name, validation.check_real(
                name, value, low=0.0, high=1.0, high_open=True))
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self._init_8bit(min_8bit_size)

    def _math8(self, param, grad, moments, lr, step, quantised):
        b1, b2 = self.beta_1, self.beta_2
        # torch's operation order: add(alpha=) and addcmul are fused
        m = fma(grad, 1.0 - b1, moments["state1"] * b1)
        v = fma((1.0 - b2) * grad, grad, moments["state2"] * b2)
        c1 = ops.cast(one_minus_power(b1, step), "float32")
        c2 = ops.sqrt(ops.cast(one_minus_power(b2, step), "float32"))
        if quantised:
            denom = ops.sqrt(v) / c2 + self.epsilon
            param = param + ((-lr / c1) * m) / denom  # addcdiv
        else:
            update = m / (ops.sqrt(v) + self.epsilon * c2)
            param = fma(update, -lr * c2 / c1, param)
        return param, {"state1": m, "state2": v}


@register_optimizer("lion8bit", "Lion with a blockwise 8-bit momentum "
                    "(bitsandbytes 0.50.2 Lion8bit, CPU)")
class Lion8bit(_Blockwise8bit):
    __doc__ = (r"""Lion with an 8-bit momentum, as bitsandbytes 0.50.2's
    `bitsandbytes.optim.Lion8bit` (its CPU implementation).

    With $\gamma$ the learning rate and $\lambda$ `weight_decay`:

    $$\theta \leftarrow \theta(1-\gamma\lambda),\qquad
      \theta_t = \theta - \gamma\,\mathrm{sign}(\beta_1 m_{t-1} +
      (1-\beta_1) g_t)$$
    $$m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t$$

    with $m$ stored as 8-bit codes (signed map).
    """ + _STATE_DOC + r"""
    Differs from `keras.optimizers.Lion`: the momentum is 8-bit and the
    default learning rate is bitsandbytes' 1e-4 (Keras: 1e-3).
    bitsandbytes' `optim_bits`, `args` and `is_paged` are not offered.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1): interpolation weight of the momentum in
            the update's sign. Defaults to `0.9`.
        beta_2: Float in [0, 1): decay of the momentum.
            Defaults to `0.99`.
        weight_decay: Float >= 0. Decoupled decay,
            `param *= 1 - learning_rate * weight_decay` before the update.
            Defaults to `0.0`.""" + _COMMON_ARGS + r"""

    References:
        - Chen et al., 2023, "Symbolic Discovery of Optimization
          Algorithms" (https://arxiv.org/abs/2302.06675).
        - Dettmers et al., 2022, "8-bit Optimizers via Block-wise
          Quantization" (https://arxiv.org/abs/2110.02861).
    """)

    _hyperparameters = ("beta_1", "beta_2", "weight_decay",
                        "min_8bit_size", "maximize")
    _moments = (("state1", True),)

    def __init__(
        self,
        learning_rate=1e-4,
        beta_1=0.9,
        beta_2=0.99,
        weight_decay=0.0,
        min_8bit_size=4096,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay,
                         decoupled_weight_decay=True, **kwargs)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            setattr(self, name, validation.check_real(
                name, value, low=0.0, high=1.0, high_open=True))
        self._init_8bit(min_8bit_size)

    def _math8(self, param, grad, moments, lr, step, quantised):
        b1, b2 = self.beta_1, self.beta_2
        m = moments["state1"]
        if quantised:
            direction = self._math.sign(m * b1 + grad * (1.0 - b1))
        else:
            direction = self._math.sign(fma(grad, 1.0 - b1, m * b1))
        param = param - lr * direction
        m = fma(grad, 1.0 - b2, m * b2)
        return param, {"state1": m}


@register_optimizer("ademamix8bit", "AdEMAMix with blockwise 8-bit moments "
                    "(bitsandbytes 0.50.2 AdEMAMix8bit, CPU)")
class AdEMAMix8bit(_Blockwise8bit):
    __doc__ = (r"""AdEMAMix with 8-bit moments, as bitsandbytes 0.50.2's
    `bitsandbytes.optim.AdEMAMix8bit` (its CPU implementation).

    With $\gamma$ the learning rate, $\lambda$ `weight_decay`,
    $c_1 = 1-\beta_1^t$, $c_2 = \sqrt{1-\beta_2^t}$:

    $$m_1 = \beta_1 m_1 + (1-\beta_1) g,\quad
      m_2 = \beta_{3,t} m_2 + (1-\beta_{3,t}) g,\quad
      \nu = \beta_2 \nu + (1-\beta_2) g^2$$
    $$\theta \leftarrow \theta(1-\gamma\lambda),\qquad
      \theta_t = \theta - \gamma\,\frac{m_1/c_1 + \alpha_t m_2}
      {\sqrt{\nu}/c_2 + \epsilon}$$

    With `t_alpha`, $\alpha_t = \min(t\alpha/T_\alpha, \alpha)$; with
    `t_beta3`, $\beta_{3,t} = \min(\exp(\frac{\ln\beta_1\ln\beta_3}
    {(1-s)\ln\beta_3 + s\ln\beta_1}), \beta_3)$, $s = t/T_{\beta_3}$;
    otherwise $\alpha$ and $\beta_3$. $m_1$, $m_2$ use the signed map,
    $\nu$ the unsigned one (bitsandbytes keeps $m_1, m_2$ stacked in one
    buffer, which quantises each as its own tensor: here they are two
    slots).
    """ + _STATE_DOC + r"""
    Differs from `keras.optimizers.Adam` (Keras has no AdEMAMix): the
    slow EMA term, 8-bit moments and decoupled weight decay.
    bitsandbytes' `is_paged` is not offered (no effect on the numbers).

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1): decay of the fast EMA. Defaults to `0.9`.
        beta_2: Float in [0, 1): decay of the second moment.
            Defaults to `0.999`.
        beta_3: Float in [0, 1): decay of the slow EMA.
            Defaults to `0.9999`.
        alpha: Float >= 0: weight of the slow EMA. Defaults to `5.0`.
        t_alpha: None or int > 0: steps of the linear warm-up of `alpha`.
            Defaults to `None`.
        t_beta3: None or int > 0: steps of the warm-up of `beta_3`.
            Defaults to `None`.
        epsilon: Float >= 0 added to the bias-corrected root.
            Defaults to `1e-8`.
        weight_decay: Float >= 0. Decoupled decay,
            `param *= 1 - learning_rate * weight_decay` before the update.
            Defaults to `0.01`.""" + _COMMON_ARGS + r"""

    References:
        - Pagliardini et al., 2024, "The AdEMAMix Optimizer: Better,
          Faster, Older" (https://arxiv.org/abs/2409.03137).
        - Dettmers et al., 2022, "8-bit Optimizers via Block-wise
          Quantization" (https://arxiv.org/abs/2110.02861).
    """)

    _hyperparameters = ("beta_1", "beta_2", "beta_3", "alpha", "t_alpha",
                        "t_beta3", "epsilon", "weight_decay",
                        "min_8bit_size", "maximize")
    _moments = (("state1", True), ("state1_slow", True), ("state2", False))

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=0.9999,
        alpha=5.0,
        t_alpha=None,
        t_beta3=None,
        epsilon=1e-8,
        weight_decay=1e-2,
        min_8bit_size=4096,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay,
                         decoupled_weight_decay=True, **kwargs)
        for name, value in (("beta_1", beta_1), ("beta_2", beta_2),
                            ("beta_3", beta_3)):
            setattr(self, name, validation.check_real(
                name, value, low=0.0, high=1.0, high_open=True))
        self.alpha = validation.check_real("alpha", alpha, low=0.0)
        self.t_alpha = None if t_alpha is None else validation.check_int(
            "t_alpha", t_alpha, low=1)
        self.t_beta3 = None if t_beta3 is None else validation.check_int(
            "t_beta3", t_beta3, low=1)
        if self.t_beta3 is not None and self.beta_1 == 0.0:
            raise ValueError(
                "Argument `beta_1` must be > 0 when `t_beta3` is set (the "
                f"beta_3 warm-up takes its logarithm). Received: "
                f"beta_1={self.beta_1}")
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self._init_8bit(min_8bit_size)

    def _math8(self, param, grad, moments, lr, step, quantised):
        b1, b2 = self.beta_1, self.beta_2
        alpha = self.alpha
        if self.t_alpha:
            # bitsandbytes: min(step * alpha / t_alpha, alpha) in double
            alpha = ops.minimum((step * self.alpha) / float(self.t_alpha),
                                self.alpha)
        b3, one_minus_b3 = self.beta_3, 1.0 - self.beta_3
        if self.t_beta3:
            s = step / float(self.t_beta3)
            ln1, ln3 = math.log(self.beta_1), math.log(self.beta_3)
            exponent = ops.minimum((ln1 * ln3) / ((1.0 - s) * ln3 + s * ln1),
                                   ln3)
            # min(exp(x), beta_3) and its complement without cancellation
            # (bitsandbytes forms 1 - beta_3 in double)
            b3 = ops.exp(exponent)
            one_minus_b3 = ops.negative(ops.expm1(exponent))
        m1 = fma(grad, 1.0 - b1, moments["state1"] * b1)
        m2 = fma(grad, one_minus_b3, moments["state1_slow"] * b3)
        nu = fma((1.0 - b2) * grad, grad, moments["state2"] * b2)
        c1 = ops.cast(one_minus_power(b1, step), "float32")
        c2 = ops.sqrt(ops.cast(one_minus_power(b2, step), "float32"))
        update = (m1 / c1 + alpha * m2) / (ops.sqrt(nu) / c2 + self.epsilon)
        param = fma(update, -lr, param)
        return param, {"state1": m1, "state1_slow": m2, "state2": nu}
