"""MARS (variance reduction with a scaled gradient correction), as timm's
`timm.optim.mars.Mars`."""

from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import _layerwise
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer

_MARS_TYPES = ("adamw", "lion")


@register_optimizer("mars", "MARS, a clipped variance-reduced gradient in "
                    "an AdamW or Lion step; AdamW on 1-D tensors (timm "
                    "1.0.31 Mars)")
class MARS(ZooOptimizer):
    r"""MARS, as timm 1.0.31's `timm.optim.mars.Mars` (a simplified port of
    the authors' AGI-Arena/MARS code).

    A variable of rank 2 or more (every variable with `optimize_1d`) gets
    the MARS rule. With $g_{t-1}$ the previous step's gradient and
    $\gamma_c$ = `gamma`:

    $$c_t = g_t + \gamma_c\frac{\beta_1}{1-\beta_1}(g_t - g_{t-1})
      \quad(c_1 = g_1),\qquad
      \tilde c_t = c_t / \max(\lVert c_t\rVert_2, 1)$$
    $$m_t = \beta_1 m_{t-1} + (1-\beta_1)\tilde c_t$$

    the norm taken over the whole tensor. With `mars_type="adamw"`:

    $$v_t = \beta_2 v_{t-1} + (1-\beta_2)\tilde c_t^2,\qquad
      u_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t}/\sqrt{1-\beta_2^t}
      + \epsilon}$$

    with `mars_type="lion"`: $u_t = \mathrm{sign}(m_t)$ (no $v_t$; the
    sign of NaN is 0, as torch's). Then
    $\theta_t = \theta_{t-1} - \eta(u_t + \lambda\theta_{t-1})$ with $\eta$
    the learning rate and $\lambda$ `weight_decay`.

    Variables of rank 0 and 1 (unless `optimize_1d`) get AdamW on the raw
    gradient, with `beta_1_1d`, `beta_2_1d` and the learning rate times
    `lr_1d_factor`:
    $m_t = \beta_1 m_{t-1} + (1-\beta_1)g_t$,
    $v_t = \beta_2 v_{t-1} + (1-\beta_2)g_t^2$, the same $u_t$ as above and
    $\theta_t = \theta_{t-1} - \eta\,\text{lr\_1d\_factor}\,(u_t +
    \lambda\theta_{t-1})$, whatever `mars_type` says.

    With `caution`, in either rule, the components of $m_t$ whose sign
    disagrees with $g_t$ are zeroed in the step (not in the state) and the
    rest divided by the fraction kept (at least 1e-3).

    The rank decides the rule as timm's `grad.ndim >= 2` does; neither the
    norm, the mean nor the rank depends on whether a kernel is stored as
    Keras's `(in, out)` or torch's `(out, in)`. timm counts steps per
    parameter, this class per optimizer (equal when every variable gets a
    gradient every step). State: `exp_avg` and `last_grad` per MARS
    variable, `exp_avg_sq` too with `mars_type="adamw"`; `exp_avg` and
    `exp_avg_sq` per AdamW variable (timm keeps all three for every
    parameter, one of them unused).

    Keras spelling of timm's arguments: `lr` -> `learning_rate`,
    `betas=(a, b)` -> `beta_1, beta_2`, `eps` -> `epsilon`, and
    `betas_1d=(a, b)` -> `beta_1_1d, beta_2_1d` (the same split, the
    `_1d` suffix kept); every other name is timm's.

    Differs from `keras.optimizers.AdamW` (Keras has no MARS): the
    corrected, norm-clipped gradient in both moments, the decay added to
    the update, AdamW (not MARS) on 1-D variables by default, and timm's
    defaults (learning rate 3e-3, $\beta_2$ 0.99, ε 1e-8, no decay).

    Args:
        {{learning_rate}}
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.99`.
        epsilon: Float >= 0, added to the bias-corrected root of the second
            moment. Defaults to `1e-8`.
        weight_decay: Float >= 0 (or a schedule), added to the update as
            `weight_decay * param` and multiplied by the learning rate (by
            `lr_1d_factor` too on the AdamW variables). Variables excluded
            with `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        gamma: Float >= 0, the scale of the gradient correction.
            Defaults to `0.025`.
        mars_type: `"adamw"` or `"lion"`: the step of the MARS variables.
            Defaults to `"adamw"`.
        optimize_1d: Bool. Give the MARS rule to variables of rank 0 and 1
            too. Defaults to `False`.
        lr_1d_factor: Float >= 0, multiplies the learning rate of the AdamW
            variables. Defaults to `1.0`.
        beta_1_1d: Float in [0, 1) or None, the AdamW variables' $\beta_1$;
            None: the `beta_1` given to the constructor (timm's
            `betas_1d=None`: `betas`). A param group that sets `beta_1`
            keeps this value, as a timm group that sets `betas` keeps the
            optimizer's `betas_1d`. Defaults to `None`.
        beta_2_1d: Float in [0, 1) or None, likewise for $\beta_2$.
            Defaults to `None`.
        caution: Bool. Cautious masking of $m_t$ in the step (timm's
            `caution`). Defaults to `False`.
        {{maximize}} An extension: timm's Mars has no `maximize` (the
            stored previous gradient is then the negated one).
        {{base}}

    References:
        - Yuan et al., 2024, "MARS: Unleashing the Power of Variance
          Reduction for Training Large Models"
          (https://arxiv.org/abs/2411.10438); code:
          https://github.com/AGI-Arena/MARS.
        - timm `timm/optim/mars.py`.
        - Liang et al., 2024, "Cautious Optimizers".
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "gamma", "mars_type", "optimize_1d", "lr_1d_factor",
                        "beta_1_1d", "beta_2_1d", "caution", "maximize")
    #: per-tensor norms and a rule per variable
    #: timm adds the decay to the update (inside the learning rate)
    weight_decay_in_update = True

    def __init__(
        self,
        learning_rate=3e-3,
        beta_1=0.9,
        beta_2=0.99,
        epsilon=1e-8,
        weight_decay=0.0,
        gamma=0.025,
        mars_type="adamw",
        optimize_1d=False,
        lr_1d_factor=1.0,
        beta_1_1d=None,
        beta_2_1d=None,
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
        self.beta_1 = _beta("beta_1", beta_1)
        self.beta_2 = _beta("beta_2", beta_2)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.gamma = validation.check_real("gamma", gamma, low=0.0)
        if mars_type not in _MARS_TYPES:
            raise ValueError(
                "Argument `mars_type` must be 'adamw' or 'lion'. "
                f"Received: mars_type={mars_type!r}")
        self.mars_type = mars_type
        self.optimize_1d = validation.check_bool("optimize_1d", optimize_1d)
        self.lr_1d_factor = validation.check_real("lr_1d_factor",
                                                  lr_1d_factor, low=0.0)
        # timm: betas_1d or betas, fixed when the optimizer is made
        self.beta_1_1d = self.beta_1 if beta_1_1d is None else \
            _beta("beta_1_1d", beta_1_1d)
        self.beta_2_1d = self.beta_2 if beta_2_1d is None else \
            _beta("beta_2_1d", beta_2_1d)
        self.caution = validation.check_bool("caution", caution)

    # ---------------------------------------------------------------- state
    def _rule_for(self, variable):
        # timm: `optimize_1d or grad.ndim >= 2`
        if self.optimize_1d or len(variable.shape) >= 2:
            return "mars"
        return "adamw"

    def _slot_specs_for(self, variable, rule):
        if rule == "mars":
            slots = [SlotSpec("exp_avg"), SlotSpec("last_grad")]
            if self.mars_type == "adamw":
                slots.append(SlotSpec("exp_avg_sq"))
            return slots
        return [SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    # --------------------------------------------------------------- update
    def _update(self, param, grad, state, lr, index):
        if self._rule(index) == "mars":
            return self._mars_update(param, grad, state, lr, index)
        return self._adamw_update(param, grad, state, lr, index)

    def _direction(self, exp_avg, exp_avg_sq, grad, beta_1, beta_2):
        """The AdamW direction ``(m / bc1) / (sqrt(v) / sqrt(bc2) + eps)``
        (cautious where asked)."""
        dtype = grad.dtype
        step = self._step(dtype)
        bias_1 = ops.cast(one_minus_power(beta_1, step), dtype)
        bias_2_sqrt = ops.cast(ops.sqrt(one_minus_power(beta_2, step)),
                               dtype)
        denom = self._math.sqrt(exp_avg_sq) / bias_2_sqrt + self.epsilon
        if self.caution:
            exp_avg = _layerwise.caution(exp_avg, grad)
        return (exp_avg / bias_1) / denom

    def _with_decay(self, update, param, index):
        if not self._decays(index):
            return update
        return param * self._weight_decay_value(param.dtype) + update

    def _mars_update(self, param, grad, state, lr, index):
        beta_1, beta_2 = self.beta_1, self.beta_2
        step = self._step(grad.dtype)
        scale = self.gamma * (beta_1 / (1.0 - beta_1))
        corrected = (grad - state["last_grad"]) * scale + grad
        # timm: the first step has no previous gradient (c_1 = g_1)
        c_t = self._math.where(ops.greater(step, 1.0), corrected, grad)
        c_t = c_t / _minmax.maximum(_layerwise.norm(c_t), 1.0)
        exp_avg = beta_1 * state["exp_avg"] + (1.0 - beta_1) * c_t
        new = {"exp_avg": exp_avg, "last_grad": grad}
        if self.mars_type == "adamw":
            exp_avg_sq = beta_2 * state["exp_avg_sq"] + \
                (1.0 - beta_2) * c_t * c_t
            new["exp_avg_sq"] = exp_avg_sq
            update = self._direction(exp_avg, exp_avg_sq, grad, beta_1,
                                     beta_2)
        else:
            direction = exp_avg
            if self.caution:
                direction = _layerwise.caution(exp_avg, grad)
            update = self._math.sign(direction)  # torch's: 0 for NaN
        update = self._with_decay(update, param, index)
        return param - lr * update, new

    def _adamw_update(self, param, grad, state, lr, index):
        beta_1, beta_2 = self.beta_1_1d, self.beta_2_1d
        exp_avg = beta_1 * state["exp_avg"] + (1.0 - beta_1) * grad
        exp_avg_sq = beta_2 * state["exp_avg_sq"] + \
            (1.0 - beta_2) * grad * grad
        update = self._direction(exp_avg, exp_avg_sq, grad, beta_1, beta_2)
        update = self._with_decay(update, param, index)
        return param - (lr * self.lr_1d_factor) * update, \
            {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def _beta(name, value):
    return validation.check_real(name, value, low=0.0, high=1.0,
                                 high_open=True)
