"""Adafactor as Hugging Face transformers implements it (fairseq's rule)."""

import keras
from keras import ops

from keras_optzoo.fastpath import MATH
from keras_optzoo.optimizers import _factored
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.adafactor import _where_greater
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.came import _clip_by_rms
from keras_optzoo.optimizers.came import _factor_mean
from keras_optzoo.optimizers.came import _factored_inverse_sqrt
from keras_optzoo.optimizers.came import _factored_rule
from keras_optzoo.optimizers.came import _rms
from keras_optzoo.registry import register_optimizer


class _RelativeStep(keras.optimizers.schedules.LearningRateSchedule):
    """transformers' relative step size of update ``t = step + 1``:
    ``min(1e-6 t if warmup_init else 1e-2, 1/sqrt(t))``."""

    def __init__(self, warmup_init=False):
        self.warmup_init = bool(warmup_init)

    def __call__(self, step):
        t = ops.cast(step, "float32") + 1.0
        inv_sqrt = 1.0 / ops.sqrt(t)
        cap = 1e-6 * t if self.warmup_init else ops.full_like(t, 1e-2)
        return ops.where(inv_sqrt < cap, inv_sqrt, cap)  # Python's min

    def get_config(self):
        return {"warmup_init": self.warmup_init}


@register_optimizer("hfadafactor", "Adafactor as Hugging Face transformers' "
                    "(relative step, parameter scaling; transformers 5.24)")
class HFAdafactor(ZooOptimizer):
    r"""Adafactor, as `transformers.optimization.Adafactor` (transformers
    5.24.0, fairseq's rule).

    With $\epsilon_1, \epsilon_2$ = `epsilon_1`, `epsilon_2`, $d$ =
    `clip_threshold`, $c$ = `decay_rate`, $\lambda$ = `weight_decay` and
    $t$ the 1-based step. The step size is

    $$\rho_t = \begin{cases}\min(10^{-6} t,\ 1/\sqrt t) &
      \text{relative\_step, warmup\_init}\\
      \min(10^{-2},\ 1/\sqrt t) & \text{relative\_step}\\
      \gamma\ (\text{learning\_rate}) & \text{otherwise}\end{cases}
      \qquad
      \alpha_t = \rho_t \cdot \begin{cases}\max(\epsilon_2,
      \mathrm{RMS}(\theta_{t-1})) & \text{scale\_parameter}\\
      1 & \text{otherwise}\end{cases}$$

    and with $\hat\beta_{2,t} = 1 - t^{c}$, for a variable of 2 or more
    dimensions, factored over the last two dimensions *of the torch tensor
    the variable maps to* (`keras_optzoo.layout`: a Dense kernel `(in, out)`
    as torch's `(out, in)`) with row vectors $R$ `(..., n)` and column
    vectors $C$ `(..., m)`:

    $$R_t = \hat\beta_{2,t} R_{t-1} + (1 - \hat\beta_{2,t})\,
      \mathrm{mean}_{-1}(g_t^2 + \epsilon_1),\qquad
      C_t = \hat\beta_{2,t} C_{t-1} + (1 - \hat\beta_{2,t})\,
      \mathrm{mean}_{-2}(g_t^2 + \epsilon_1)$$
    $$u_t = \big(R_t / \mathrm{mean}(R_t)\big)^{-1/2} \otimes C_t^{-1/2}
      \, g_t$$

    (for 0-d and 1-d variables $V_t = \hat\beta_{2,t} V_{t-1} + (1 -
    \hat\beta_{2,t})(g_t^2 + \epsilon_1)$, $u_t = g_t/\sqrt{V_t}$); then

    $$u_t \leftarrow \alpha_t\, u_t / \max(1, \mathrm{RMS}(u_t)/d),\qquad
      m_t = \beta_1 m_{t-1} + (1 - \beta_1) u_t\ \text{(only when
      beta\_1 is given; then } u_t \leftarrow m_t)$$
    $$\theta_t = \theta_{t-1} - \lambda\alpha_t\theta_{t-1} - u_t .$$

    The momentum averages the *scaled* update (the step size enters it),
    and the weight decay is multiplied by $\alpha_t$, parameter scale
    included, both as transformers does. State per variable, in
    transformers' names and order: `exp_avg` (only with `beta_1`), then
    `exp_avg_sq_row` and `exp_avg_sq_col` (factored) or `exp_avg_sq`;
    transformers' `RMS` entry (recomputed each step before it is read) is
    not kept. The RMS values are computed in float32 (float64 for float64
    variables). On the torch backend the update runs on the multi-tensor
    path (`update_path` says "foreach"): factored and unfactored variables
    form two groups, the row and column means are one reduction per tensor
    and the rest runs in foreach kernels on the whole group.

    **The learning rate.** transformers' default is `lr=None` with
    `relative_step=True`: the step size is then computed, not given. Here
    `learning_rate=None` (the default) stands for the same, and
    `optimizer.learning_rate` reads $\rho_t$ of the next update (before
    the parameter scale, the value transformers' `AdafactorSchedule`
    reports without it); it is a computed value and cannot be assigned.
    `learning_rate_scale` (lowered by `ReduceLROnPlateau`) multiplies it, as
    it does any learning rate of this package (1 by default, which is
    transformers' rule). `get_config()` saves `learning_rate=None` then. For
    an external rate or schedule set `relative_step=False` (and, as
    transformers recommends, `scale_parameter=False`) and pass
    `learning_rate`.

    Differs from `keras.optimizers.Adafactor`: Keras adds `epsilon_1` to
    $g^2$ as here but normalises the row factor differently, keeps a
    full-size second-moment slot for every variable, has no first moment,
    no `scale_parameter`/`warmup_init` and its `relative_step` caps the
    rate at `learning_rate`; its default is an external rate of 1e-3.
    Differs from `keras_optzoo.Adafactor` (torch.optim's): torch clamps
    the estimate with $\epsilon_1$ instead of adding it to $g^2$, decays
    weights by the learning rate without the parameter scale, has no first
    moment and always uses the relative step capped at `learning_rate`.

    Args:
        learning_rate: None (with `relative_step=True`: the computed step
            size), or with `relative_step=False` a real number >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable
            with no arguments (transformers' `lr`). Defaults to `None`.
        epsilon_1: Float >= 0, added to $g^2$ (transformers' `eps[0]`).
            Defaults to `1e-30`.
        epsilon_2: Float >= 0, the floor of the parameter RMS in the scale
            (transformers' `eps[1]`). Defaults to `1e-3`.
        clip_threshold: Float > 0, the RMS threshold $d$ of the update
            clipping. Defaults to `1.0`.
        decay_rate: Float <= 0, the exponent $c$ of
            $\hat\beta_{2,t} = 1 - t^c$. Defaults to `-0.8`.
        beta_1: None or a float in [0, 1] (transformers' `beta1`): the decay
            of a first moment of the scaled update; None keeps none.
            Defaults to `None`.
        weight_decay: Float >= 0, or a schedule. Decay
            $\theta \leftarrow \theta - \lambda\alpha_t\theta$ by the step
            size $\alpha_t$ (parameter scale included). Variables excluded
            with `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        scale_parameter: Bool. Multiply the step size by
            $\max(\epsilon_2, \mathrm{RMS}(\theta))$. Defaults to `True`.
        relative_step: Bool. Compute the step size from the step count
            (then `learning_rate` must be None). Defaults to `True`.
        warmup_init: Bool. With `relative_step`, the step size grows as
            $10^{-6} t$ (capped by $1/\sqrt t$) instead of starting at
            $10^{-2}$. Needs `relative_step=True`. Defaults to `False`.
        {{maximize}}
        {{base}}

    Raises:
        ValueError: `learning_rate` given with `relative_step=True`,
            `warmup_init=True` without `relative_step`, or no
            `learning_rate` with `relative_step=False`.

    References:
        - Shazeer and Stern, 2018, "Adafactor: Adaptive Learning Rates with
          Sublinear Memory Cost" (https://arxiv.org/abs/1804.04235).
        - transformers 5.24.0, `transformers/optimization.py`, `Adafactor`
          (from fairseq's `fairseq/optim/adafactor.py`).
    """

    _hyperparameters = ("epsilon_1", "epsilon_2", "clip_threshold",
                        "decay_rate", "beta_1", "weight_decay",
                        "scale_parameter", "relative_step", "warmup_init",
                        "maximize")
    #: the decay is scaled by the step size alpha_t (parameter scale
    #: included), known only inside the update
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=None,
        epsilon_1=1e-30,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        decay_rate=-0.8,
        beta_1=None,
        weight_decay=0.0,
        scale_parameter=True,
        relative_step=True,
        warmup_init=False,
        maximize=False,
        **kwargs,
    ):
        relative_step = validation.check_bool("relative_step", relative_step)
        warmup_init = validation.check_bool("warmup_init", warmup_init)
        if learning_rate is not None:
            # a bad value is reported as such before the combinations
            value = validation.as_real(learning_rate)
            if isinstance(value, float):
                validation.check_real("learning_rate", value, low=0.0)
            elif not callable(value):
                raise TypeError(
                    "Argument `learning_rate` must be a real number, a "
                    "keras.optimizers.schedules.LearningRateSchedule or a "
                    f"callable. Received: learning_rate={learning_rate!r}")
        if learning_rate is not None and relative_step:
            raise ValueError(
                "Argument `learning_rate` must be None with "
                "`relative_step=True` (the step size is computed; set "
                "`relative_step=False` for an external rate). Received: "
                f"learning_rate={learning_rate!r}, relative_step=True")
        if warmup_init and not relative_step:
            raise ValueError(
                "Argument `warmup_init=True` requires `relative_step=True`. "
                "Received: warmup_init=True, relative_step=False")
        if learning_rate is None and not relative_step:
            raise ValueError(
                "Argument `learning_rate` must be given with "
                "`relative_step=False`. Received: learning_rate=None, "
                "relative_step=False")
        super().__init__(
            learning_rate=_RelativeStep(warmup_init) if relative_step
            else learning_rate,
            weight_decay=weight_decay,
            maximize=maximize,
            **kwargs,
        )
        self.relative_step = relative_step
        self.warmup_init = warmup_init
        self.scale_parameter = validation.check_bool("scale_parameter",
                                                     scale_parameter)
        self.epsilon_1 = validation.check_real("epsilon_1", epsilon_1,
                                               low=0.0)
        self.epsilon_2 = validation.check_real("epsilon_2", epsilon_2,
                                               low=0.0)
        self.clip_threshold = validation.check_real(
            "clip_threshold", clip_threshold, low=0.0, low_open=True)
        self.decay_rate = validation.check_real("decay_rate", decay_rate,
                                                high=0.0)
        self.beta_1 = None if beta_1 is None else validation.check_real(
            "beta_1", beta_1, low=0.0, high=1.0)

    @property
    def learning_rate(self):
        """The rate of the next update: with `relative_step`, the computed
        relative step size $\\rho_t$ (times `learning_rate_scale`), else
        as every optimizer of the package."""
        return ZooOptimizer.learning_rate.fget(self)

    @learning_rate.setter
    def learning_rate(self, value):
        if getattr(self, "relative_step", False):
            raise ValueError(
                "`learning_rate` cannot be set with `relative_step=True`: "
                "the step size is computed (use `relative_step=False` for "
                f"an external rate). Received: learning_rate={value!r}")
        ZooOptimizer.learning_rate.fset(self, value)

    def get_config(self):
        config = super().get_config()
        if self.relative_step:
            config["learning_rate"] = None
        return config

    def _rule_for(self, variable):
        return _factored_rule(self, variable)

    def _slot_specs_for(self, variable, rule):
        shape = tuple(self.layout_of(variable).torch_shape)
        specs = [] if self.beta_1 is None else [SlotSpec("exp_avg")]
        if rule == "factored":
            specs += [SlotSpec("exp_avg_sq_row", shape=shape[:-1]),
                      SlotSpec("exp_avg_sq_col",
                               shape=shape[:-2] + shape[-1:])]
        else:
            specs.append(SlotSpec("exp_avg_sq"))
        return specs

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        sdt = step.dtype
        # (on the multi-tensor path ``index`` is a group's tuple: layouts
        # and sizes are one per tensor, the parameter RMS one per tensor)
        layouts = _factored.layouts(self, index)
        numel = _factored.sizes(layouts)

        alpha = ops.cast(lr, sdt)
        if self.scale_parameter:
            alpha = alpha * _where_greater(_rms(param, numel, sdt),
                                           self.epsilon_2)
        alpha = ops.cast(alpha, dtype)
        weight = ops.cast(ops.power(step, ops.full_like(step,
                                                        self.decay_rate)),
                          dtype)  # 1 - beta2_t
        keep = 1.0 - weight
        new = {}
        sq = grad * grad + self.epsilon_1
        if self._rule(index) == "factored":
            # the row and column means over the torch tensor's last two
            # axes, kept in the slots in torch's shapes; the update is
            # formed in the variable's own layout from views of the factors
            row = keep * state["exp_avg_sq_row"] + \
                weight * _factor_mean(sq, layouts, -1)
            col = keep * state["exp_avg_sq_col"] + \
                weight * _factor_mean(sq, layouts, -2)
            new["exp_avg_sq_row"], new["exp_avg_sq_col"] = row, col
            update = _factored_inverse_sqrt(row, col, layouts) * grad
        else:
            variance = keep * state["exp_avg_sq"] + weight * sq
            new["exp_avg_sq"] = variance
            update = MATH.rsqrt(variance) * grad
        update = _clip_by_rms(update, numel, self.clip_threshold, sdt)
        update = update * alpha
        if self.beta_1 is not None:
            update = self.beta_1 * state["exp_avg"] + \
                (1.0 - self.beta_1) * update
            new["exp_avg"] = update
        if self._decays(index):
            param = param - (self._weight_decay_value(dtype) * alpha) * param
        return param - update, new
