"""StableAdamW (AdamW with per-tensor update clipping), as torch-optimi's
`optimi.StableAdamW`."""

import keras
from keras import ops

from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import _scalar_dtype
from keras_optzoo.optimizers.base import cast_scalar
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer

_HALF = ("float16", "bfloat16")


@register_optimizer("stableadamw", "StableAdamW, AdamW with its learning "
                    "rate clipped per tensor by the update's RMS "
                    "(torch-optimi 0.3.3 StableAdamW)")
class StableAdamW(ZooOptimizer):
    r"""StableAdamW, as torch-optimi 0.3.3's `optimi.StableAdamW` (its
    for-loop implementation, `foreach=False, triton=False`).

    The moments are averaged with debiased betas
    $\hat\beta_t = \beta\,(1-\beta^{t-1})/(1-\beta^t)$ (so they need no
    bias correction later; $\hat\beta_1 = 0$ on the first step):

    $$m_t = \hat\beta_{1,t} m_{t-1} + (1-\hat\beta_{1,t}) g_t,\qquad
      v_t = \hat\beta_{2,t} v_{t-1} + (1-\hat\beta_{2,t}) g_t^2$$

    The learning rate $\eta$ is divided by the root mean square, over the
    whole tensor, of $g_t^2/\max(v_t, \epsilon^2)$ where that exceeds 1
    (Adafactor's update clipping):

    $$\eta_t = \eta / \max\Big(1, \sqrt{\mathrm{mean}\big(g_t^2 /
      \max(v_t, \epsilon^2)\big)}\Big)$$
    $$\theta \leftarrow \theta\,(1 - \eta_t\lambda)\quad\Big(\text{with
      `decouple\_lr`: } \theta\,(1 - \tfrac{\eta_t}{\eta_{\max}}\lambda)
      \Big),\qquad
      \theta_t = \theta - \eta_t\,\frac{m_t}{\sqrt{v_t} + \epsilon}$$

    with $\lambda$ `weight_decay` and $\eta_{\max}$ `max_lr`. A NaN RMS
    leaves $\eta$ unclipped, as optimi's Python `max(1, rms)` does.

    Low precision: for a `float16` or `bfloat16` variable the moments are
    kept in the variable's dtype and every operation computes in float32
    and rounds its result to the variable's dtype where optimi's does
    (torch computes half-precision CPU operations in float32), and with
    `kahan_sum` (on by default for these dtypes) the update is accumulated
    with Kahan summation: a `kahan_comp` slot of the variable's dtype holds
    the part of the updates the rounded parameter could not take, and adds
    it to the next update. float32 and float64 variables (Keras's mixed
    precision keeps float32 master weights) have no `kahan_comp`.

    Differs from `keras.optimizers.AdamW`: the per-tensor clipping of the
    learning rate, debiased betas instead of bias corrections, ε outside
    the root without a correction, the decay multiplied by the clipped
    rate (or by its fraction of `max_lr`), Kahan summation, and optimi's
    defaults ($\beta_2$ 0.99, ε 1e-6). optimi's `lr` has no default; here
    it is `1e-3`.

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.99`.
        weight_decay: Float >= 0 (or a schedule), decoupled: the parameter
            is multiplied by `1 - clipped_rate * weight_decay` before the
            step (`1 - clipped_rate / max_lr * weight_decay` with
            `decouple_lr`). Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.01`.
        epsilon: Float >= 0, added to $\sqrt{v_t}$; its square floors
            $v_t$ in the RMS. Defaults to `1e-6`.
        decouple_lr: Bool. Fully decoupled weight decay: the decay follows
            the schedule's fraction of `max_lr` instead of the rate itself
            (optimi's `decouple_lr`). Defaults to `False`.
        max_lr: Float > 0 or None, the largest scheduled rate for
            `decouple_lr`. None with `decouple_lr`: the float
            `learning_rate` given to the constructor (optimi's default; a
            schedule or callable rate needs it given). Defaults to `None`.
        kahan_sum: Bool or None. Kahan summation of the updates of
            `float16`/`bfloat16` variables; None: on for those (optimi's
            default), False: off. No effect on other dtypes.
            Defaults to `None`.
        {{maximize}} An extension: optimi has no `maximize`.
        {{base}}

    References:
        - Wortsman et al., 2023, "Stable and low-precision training for
          large-scale vision-language models"
          (https://arxiv.org/abs/2304.13013).
        - torch-optimi, https://github.com/warner-benjamin/optimi
          (`optimi/stableadamw.py`).
        - Shazeer & Stern, 2018, "Adafactor" (update clipping).
    """

    _hyperparameters = ("beta_1", "beta_2", "weight_decay", "epsilon",
                        "decouple_lr", "max_lr", "kahan_sum", "maximize")
    #: the per-tensor RMS of the update
    #: the decay uses the clipped rate, known only inside _update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.99,
        weight_decay=1e-2,
        epsilon=1e-6,
        decouple_lr=False,
        max_lr=None,
        kahan_sum=None,
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
        self.decouple_lr = validation.check_bool("decouple_lr", decouple_lr)
        if max_lr is not None:
            max_lr = validation.check_real("max_lr", max_lr, low=0.0,
                                           low_open=True)
        elif self.decouple_lr:
            # optimi: max_lr = lr when not given, fixed at construction
            rate = validation.as_real(learning_rate)
            if not isinstance(rate, float):
                raise ValueError(
                    "Argument `max_lr` must be given when `decouple_lr=True` "
                    "and `learning_rate` is a schedule or a callable (the "
                    "largest scheduled rate). Received: max_lr=None, "
                    f"learning_rate={learning_rate!r}")
            max_lr = rate
        self.max_lr = max_lr
        if kahan_sum is not None and not isinstance(kahan_sum, bool):
            raise TypeError(
                "Argument `kahan_sum` must be True, False or None. "
                f"Received: kahan_sum={kahan_sum!r}")
        self.kahan_sum = kahan_sum

    def _slot_specs_for(self, variable, rule):
        slots = [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]
        if self._kahan(variable.dtype):
            slots.append(SlotSpec("kahan_comp"))
        return slots

    def _kahan(self, dtype):
        return self.kahan_sum is not False and \
            keras.backend.standardize_dtype(dtype) in _HALF

    def _prepare(self, gradient, variable, learning_rate, index):
        # the rate in float32 for half variables: the clipped rate is
        # scalar math, which optimi does in Python floats
        param, grad, _ = super()._prepare(gradient, variable, learning_rate,
                                          index)
        return param, grad, ops.cast(learning_rate,
                                     _scalar_dtype(variable.dtype))

    def _update(self, param, grad, state, lr, index):
        dtype = keras.backend.standardize_dtype(param.dtype)
        compute = _scalar_dtype(dtype)  # float32 for half types
        if compute != dtype:
            def up(x):
                return ops.cast(x, compute)

            def down(x):  # a result rounded to the variable's dtype
                return ops.cast(x, dtype)
        else:
            def up(x):
                return x

            down = up
        step = self._step(compute)
        beta_1, beta_2 = self.beta_1, self.beta_2
        # debiased betas: hat = beta (1 - beta^(t-1)) / (1 - beta^t),
        # 1 - hat = (1 - beta) / (1 - beta^t)
        bias_1 = one_minus_power(beta_1, step)
        bias_2 = one_minus_power(beta_2, step)
        weight_1 = ops.cast((1.0 - beta_1) / bias_1, compute)
        hat_2 = ops.cast(beta_2 * one_minus_power(beta_2, step - 1.0)
                         / bias_2, compute)
        weight_2 = ops.cast((1.0 - beta_2) / bias_2, compute)
        g = up(grad)
        exp_avg = up(state["exp_avg"])
        exp_avg = down(exp_avg + weight_1 * (g - exp_avg))  # lerp
        exp_avg_sq = down(up(down(up(state["exp_avg_sq"]) * hat_2))
                          + weight_2 * g * g)
        new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        exp_avg, exp_avg_sq = up(exp_avg), up(exp_avg_sq)
        # per-tensor RMS of g^2 / max(v, eps^2), each result rounded as
        # optimi's (eps^2 in the variable's dtype: 0 in float16)
        eps_sq = up(_layerwise.constant(self.epsilon ** 2, dtype))
        ratio = down(up(down(g * g)) / self._math.maximum(exp_avg_sq,
                                                           eps_sq))
        rms = up(down(ops.sqrt(up(down(_layerwise.mean(up(ratio)))))))
        # Python's max(1, rms): a NaN RMS leaves the rate as it is
        clip = ops.where(ops.greater(rms, 1.0), rms, ops.ones_like(rms))
        lr = lr / clip
        if self._decays(index):
            decay = cast_scalar(self._weight_decay_value(compute), compute)
            if self.decouple_lr:
                factor = 1.0 - (lr / self.max_lr) * decay
            else:
                factor = 1.0 - lr * decay
            param = down(up(param) * factor)
        root = down(self._math.sqrt(exp_avg_sq))
        denom = up(down(up(root) + self.epsilon))
        step_value = -lr * (exp_avg / denom)
        if self._kahan(dtype):
            # Kahan summation: the compensation takes the step, the
            # parameter what it can hold of it, the compensation the rest
            kahan = down(up(state["kahan_comp"]) + step_value)
            new_param = down(up(param) + up(kahan))
            kahan = down(up(kahan) + up(down(up(param) - up(new_param))))
            new["kahan_comp"] = kahan
            return new_param, new
        return down(up(param) + step_value), new
