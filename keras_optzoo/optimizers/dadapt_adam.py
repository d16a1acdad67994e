"""D-Adaptation Adam, as dadaptation 3.2's `DAdaptAdam`."""

import math

from keras import ops

from keras_optzoo import param_groups as _param_groups
from keras_optzoo.optimizers import _global_state
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import first_index
from keras_optzoo.optimizers.base import one_minus_power
from keras_optzoo.registry import register_optimizer


@register_optimizer("dadaptadam", "D-Adaptation Adam: Adam with a step "
                    "size d estimated on the fly (dadaptation 3.2)")
class DAdaptAdam(_global_state.GlobalStepState, ZooOptimizer):
    r"""D-Adaptation Adam, as dadaptation 3.2's `dadaptation.DAdaptAdam`.

    Adam whose step size is the learning rate $\gamma$ (a multiplier, 1 by
    default) times an estimate $d$ of the distance to the solution, one
    $d$ for all variables. With $k$ the number of steps taken,
    $\rho_k = \sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})$ (1 without
    `use_bias_correction`), $\eta = d_k\gamma\rho_k$,
    $\beta = \sqrt{\beta_2}$ and $r$ the group's `layer_scale`, every step
    first computes, over all variables (old $s$, $v$ in the first sum),

    $$n_{k+1} = \beta n_k + (1-\beta)\sum r\,\eta\,
      \Big\langle g, \frac{s}{\sqrt{v}+\epsilon}\Big\rangle$$
    $$m \leftarrow \beta_1 m + r\eta(1-\beta_1) g,\qquad
      v \leftarrow \beta_2 v + (1-\beta_2) g^2,\qquad
      s \leftarrow \beta s + \eta(1-\beta) g$$
    $$\hat d = \frac{n_{k+1}}{(1-\beta)\sum r\lVert s\rVert_1},\qquad
      d_{k+1} = \max(d_k, \min(\hat d, \omega d_k))$$

    and moves every variable by $x \leftarrow x - m/(\sqrt{v}+\epsilon)$
    ($m$ already holds the step size). The new $d_{k+1}$ is used from the
    next step on. Weight decay is decoupled with `decouple`
    ($x \leftarrow x - \lambda\eta x$ before the step), else added to the
    gradient. A step whose sum $\sum r\lVert s\rVert_1$ is 0 (no gradient
    yet, or a learning rate of 0) moves nothing and does not count in $k$.

    The sums over all variables are taken once per step, after Keras's
    gradient clipping and, under `tf.distribute`, after the all-reduce, so
    they are those of the whole model on every backend and distribution
    (the reference's `fsdp_in_use` path). The estimate is readable as
    `optimizer.d`.

    Param groups (`param_groups=[...]`) follow the reference: one $d$ for
    all groups; a group may set `weight_decay`, `epsilon`, `layer_scale`
    and a `learning_rate` equal to the optimizer's or 0. A group with rate
    0 adds nothing to the sums and keeps its moments, but still moves by
    its old $m/(\sqrt{v}+\epsilon)$, as in the reference.

    Differs from the reference: arguments in Keras spelling (`lr`,
    `betas`, `eps` are `learning_rate`, `beta_1`/`beta_2`, `epsilon`); the
    reference's group key `layer_scale` is also a constructor argument; no
    `log_every` (read `optimizer.d` from a callback instead) and no
    `fsdp_in_use` (the sums are always global); a float `learning_rate` of
    0 is accepted and leaves everything unchanged; `maximize` is an
    extension. The reference's scalars are Python doubles; here they are
    float32 (float64 with float64 variables).

    Differs from `keras.optimizers.Adam` (Keras has no D-Adaptation): the
    step size $d\gamma$ is learned and folded into $m$.
    `optax.contrib.dadapt_adamw` always applies the bias correction and
    decoupled weight decay, and has no `growth_rate` and no
    `layer_scale`.

    Args:
        learning_rate: A real number >= 0 (int and numpy scalars are
            accepted), a `keras.optimizers.schedules.LearningRateSchedule`
            or a callable: a multiplier on the estimated step size (leave
            it at 1 unless training is unstable). Defaults to `1.0`.
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        epsilon: Float > 0, added to the root of the second moment.
            Defaults to `1e-8`.
        weight_decay: Float >= 0 (or a schedule). Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        decouple: Bool. Decoupled (AdamW-style) weight decay scaled by the
            step size $\eta$; False: L2 added to the gradient. Defaults to
            `False`.
        use_bias_correction: Bool. Adam's bias correction $\rho_k$ on the
            step size. Defaults to `False`.
        d0: Float > 0, the initial estimate. Defaults to `1e-6`.
        growth_rate: Float > 0 (`inf` allowed), $\omega$: the largest
            factor by which $d$ may grow in one step. Defaults to `inf`.
        layer_scale: Float >= 0, $r$: a factor on the step of the
            variables (usually set per param group). Defaults to `1.0`.
        {{maximize}} Not in the reference.
        {{base}}

    References:
        - Defazio and Mishchenko, 2023, "Learning-Rate-Free Learning by
          D-Adaptation".
        - https://github.com/facebookresearch/dadaptation (3.2).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "decouple", "use_bias_correction", "d0",
                        "growth_rate", "layer_scale", "maximize")
    _per_group_keys = frozenset({"weight_decay", "epsilon", "layer_scale"})

    def __init__(
        self,
        learning_rate=1.0,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        decouple=False,
        use_bias_correction=False,
        d0=1e-6,
        growth_rate=float("inf"),
        layer_scale=1.0,
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, maximize=maximize,
                         **kwargs)
        self.beta_1 = validation.check_real("beta_1", beta_1, low=0.0,
                                            high=1.0, high_open=True)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0,
                                             low_open=True)
        self.decouple = validation.check_bool("decouple", decouple)
        self.use_bias_correction = validation.check_bool(
            "use_bias_correction", use_bias_correction)
        self.d0 = validation.check_real("d0", d0, low=0.0, low_open=True)
        self.growth_rate = validation.check_real(
            "growth_rate", growth_rate, low=0.0, low_open=True, finite=False)
        self.layer_scale = validation.check_real("layer_scale", layer_scale,
                                                 low=0.0)

    def _slot_specs(self):
        return [SlotSpec("s"), SlotSpec("exp_avg"), SlotSpec("exp_avg_sq")]

    def _global_state_specs(self):
        return [("d", self.d0), ("numerator_weighted", 0.0), ("k", 0.0)]

    def _decoupled(self):
        return self.decouple

    # -------------------------------------------------------- statistics
    def _step_statistics(self, grads, variables):
        sd = self._state_dtype

        def where(condition, x, y):
            return _global_state.where(condition, x, y, sd)

        state = self._read_state()
        d, k = state["d"], state["k"]
        lr = self._global_lr()
        live = ops.greater(lr, 0.0)
        sqrt_beta_2 = math.sqrt(self.beta_2)
        if self.use_bias_correction:
            bias = ops.sqrt(one_minus_power(self.beta_2, k + 1.0)) / \
                one_minus_power(self.beta_1, k + 1.0)
            dlr = d * lr * ops.cast(bias, sd)
        else:
            dlr = d * lr
        live_f = ops.cast(live, sd)
        # the moments and s change only at a rate > 0 (kept exactly else)
        coefs = {
            "beta_1": where(live, self.beta_1, 1.0),
            "beta_2": where(live, self.beta_2, 1.0),
            "beta_s": where(live, sqrt_beta_2, 1.0),
            "m_coef": live_f * dlr * (1.0 - self.beta_1),
            "v_coef": live_f * (1.0 - self.beta_2),
            "s_coef": live_f * dlr * (1.0 - sqrt_beta_2),
        }
        reuse = _global_state.reuse_statistics_tensors()
        s_new = {}
        numerator = ops.zeros((), sd)
        sk_l1 = ops.zeros((), sd)
        for index, g, param in self._statistics_inputs(grads, variables):
            dtype = g.dtype
            with _param_groups.scope(self, index):
                r = self.layer_scale
                eps = self.epsilon
            s = self._slot_value("s", index, dtype)
            denom = ops.sqrt(self._slot_value("exp_avg_sq", index, dtype)) \
                + eps
            dot = _global_state.cast(
                _global_state.reduce_sum(g * (s / denom)), sd)
            numerator = numerator + r * dlr * dot
            s = self._s_update(coefs, s, g, dtype)
            sk_l1 = sk_l1 + r * _global_state.cast(
                _global_state.reduce_sum(abs(s)), sd)
            if reuse and not self._half[index]:
                s_new[index] = s
        sk_l1 = where(live, sk_l1, 0.0)
        numerator_weighted = sqrt_beta_2 * state["numerator_weighted"] + \
            (1.0 - sqrt_beta_2) * numerator
        # the reference returns early (nothing moves, k stays) on a 0 sum
        gate = ops.not_equal(sk_l1, 0.0)
        d_hat = numerator_weighted / ((1.0 - sqrt_beta_2) * sk_l1)
        grown = d * self.growth_rate
        # Python's min(d_hat, grown) and max(d, .): the first argument
        # unless the second is strictly smaller / greater
        capped = where(ops.less(grown, d_hat), grown, d_hat)
        d_new = where(ops.greater(capped, d), capped, d)
        gate_f = ops.cast(gate, sd)
        return dict(coefs, **{
            "gate": gate_f,
            "dlr": gate_f * dlr,
            "s_new": s_new,
            "state": {
                "d": where(gate, d_new, d),
                "numerator_weighted": where(gate, numerator_weighted,
                                            state["numerator_weighted"]),
                "k": k + gate_f,
            },
        })

    @staticmethod
    def _s_update(st, s, grad, dtype):
        return _global_state.cast(st["beta_s"], dtype) * s + \
            _global_state.cast(st["s_coef"], dtype) * grad

    # ------------------------------------------------------------ update
    def _update(self, param, grad, state, lr, index):
        st = self._stats
        dtype = grad.dtype
        i = first_index(index)

        def c(x):
            return _global_state.cast(x, dtype)

        if self._decay_mask[i] and not self.decouple:
            grad = grad + self._weight_decay_value(dtype) * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        new = {}
        if self._active[i]:
            # r·dlr·(1 − β1) as the reference's product of doubles
            exp_avg = c(st["beta_1"]) * exp_avg + \
                c(self.layer_scale * st["m_coef"]) * grad
            exp_avg_sq = c(st["beta_2"]) * exp_avg_sq + \
                c(st["v_coef"]) * (grad * grad)
            s = st["s_new"].get(index) if isinstance(index, int) else None
            new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq,
                   "s": s if s is not None else self._s_update(
                       st, state["s"], grad, dtype)}
        denom = self._math.sqrt(exp_avg_sq) + self.epsilon
        if self._decay_mask[i] and self.decouple:
            dlr = st["dlr"]
            param = param + c(-self._weight_decay_value(dlr.dtype) * dlr) \
                * param
        param = param - c(st["gate"]) * (exp_avg / denom)
        return param, new
