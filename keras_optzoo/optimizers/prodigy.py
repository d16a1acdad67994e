"""Prodigy: Adam with a learned step size, as prodigyopt 1.1.2's `Prodigy`."""

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



@register_optimizer("prodigy", "Prodigy: Adam with a step size d it "
                    "estimates on the fly (prodigyopt 1.1.2)")
class Prodigy(_global_state.GlobalStepState, ZooOptimizer):
    r"""Prodigy, as prodigyopt 1.1.2's `prodigyopt.Prodigy` (with
    `slice_p=1`, the exact method).

    Adam whose step size is the learning rate $\gamma$ (a multiplier, 1 by
    default) times an estimate $d$ of the distance to the solution, learned
    from the gradients. One $d$ serves all variables. With $k$ the number
    of steps taken, the bias correction
    $\rho_k = \sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})$ (1 without
    `use_bias_correction`), $\eta = d_k \gamma \rho_k$ and $x_0$ the
    parameters at the first step, every step first computes, over all
    variables,

    $$m \leftarrow \beta_1 m + d_k(1-\beta_1) g,\qquad
      v \leftarrow \beta_2 v + d_k^2(1-\beta_2) g^2,\qquad
      s \leftarrow \beta_3 s + \tfrac{d_k}{d_0}\,\eta\, g$$
    $$r_{k+1} = \beta_3 r_k + \tfrac{d_k}{d_0}\,\eta
      \sum \langle g, x_0 - x\rangle,\qquad
      \hat d = c\,\frac{r_{k+1}}{\sum \lVert s\rVert_1}$$

    (with `safeguard_warmup` the $s$ update uses $d_k$ in place of $\eta$),
    then the new estimate $d_{\max} \leftarrow \max(d_{\max}, \hat d)$,
    $d_{k+1} = \min(d_{\max}, \omega\, d_k)$ (at $d_k = d_0$ first
    $d_k \leftarrow \max(d_k, \hat d)$), and then moves every variable:

    $$x \leftarrow x - \eta\,\frac{m}{\sqrt{v} + d_{k+1}\epsilon}$$

    ($\eta\, d_{k+1}\, g / (\sqrt{v} + d_{k+1}\epsilon)$ with
    $\beta_1 = 0$, which keeps no $m$). $c$ is `d_coef`, $\omega$
    `growth_rate`, $\beta_3$ defaults to $\sqrt{\beta_2}$. Weight decay is
    decoupled ($x \leftarrow x - \lambda\eta x$ before the step) with
    `decouple`, else added to the gradient. A step whose sum
    $\sum\lVert s\rVert_1$ is 0 (no gradient yet, or a learning rate of 0)
    moves nothing and does not count in $k$.

    The sums over all variables are taken once per step, after Keras's
    gradient clipping and, under `tf.distribute`, after the all-reduce, so
    they are those of the whole model on every backend and distribution
    (the reference's `fsdp_in_use` path, which all-reduces per-shard sums).
    The estimate is readable as `optimizer.d`.

    Param groups (`param_groups=[...]`) follow the reference: one $d$ for
    all groups; a group may set `weight_decay`, `epsilon`, `d0` (its
    $d_0$ in the two ratios $d_k/d_0$; the initial $d$ is the
    optimizer's) and `safeguard_warmup`, and a `learning_rate` equal to
    the optimizer's or 0. A group with rate 0 adds nothing to the sums and
    keeps its moments, but still moves with the others' step, as in the
    reference.

    Differs from the reference: arguments in Keras spelling
    (`lr`, `betas`, `beta3`, `eps` are `learning_rate`, `beta_1`/`beta_2`,
    `beta_3`, `epsilon`); no `fsdp_in_use` (the sums are always global) and
    no `slice_p` (1, the exact statistics); a float `learning_rate` of 0
    is accepted (the reference requires > 0) and leaves everything
    unchanged; `maximize` is an extension. The reference's scalars are
    Python doubles; here they are float32 (float64 with float64 variables).

    Differs from `keras.optimizers.Adam` (Keras has no Prodigy): the step
    size is $d\gamma$ with $d$ learned, and ε is scaled by $d$.
    `optax.contrib.prodigy` always applies the bias correction and
    decoupled weight decay, and has no `growth_rate` (nor the $d_{\max}$
    and $d_k = d_0$ rules).

    Args:
        learning_rate: A real number >= 0 (int and numpy scalars are
            accepted), a `keras.optimizers.schedules.LearningRateSchedule`
            or a callable: a multiplier on the estimated step size (leave
            it at 1 unless training is unstable; schedules such as cosine
            annealing apply as usual). Defaults to `1.0`.
        beta_1: Float in [0, 1). Defaults to `0.9`.
        beta_2: Float in [0, 1). Defaults to `0.999`.
        beta_3: Float in [0, 1] or None, the decay of the estimate's
            running sums; None: $\sqrt{\beta_2}$. Defaults to `None`.
        epsilon: Float > 0, added to the root of the second moment (times
            $d$). Defaults to `1e-8`.
        weight_decay: Float >= 0 (or a schedule). Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        decouple: Bool. Decoupled (AdamW-style) weight decay, scaled by
            the step size $\eta$; False: L2 added to the gradient.
            Defaults to `True`.
        use_bias_correction: Bool. Adam's bias correction $\rho_k$ on the
            step size. Defaults to `False`.
        safeguard_warmup: Bool. Leave the learning rate out of the
            denominator's running sum $s$ (for warm-up schedules).
            Defaults to `False`.
        d0: Float > 0, the initial estimate $d_0$. Defaults to `1e-6`.
        d_coef: Float > 0, $c$: a factor on the estimate (0.5 or 2.0
            often work too). Defaults to `1.0`.
        growth_rate: Float > 0 (`inf` allowed), $\omega$: the largest
            factor by which $d$ may grow in one step. Defaults to `inf`.
        {{maximize}} Not in the reference.
        {{base}}

    References:
        - Mishchenko and Defazio, 2024, "Prodigy: An Expeditiously
          Adaptive Parameter-Free Learner".
        - https://github.com/konstmish/prodigy (prodigyopt 1.1.2).
    """

    _hyperparameters = ("beta_1", "beta_2", "beta_3", "epsilon",
                        "weight_decay", "decouple", "use_bias_correction",
                        "safeguard_warmup", "d0", "d_coef", "growth_rate",
                        "maximize")
    _per_group_keys = frozenset({"weight_decay", "epsilon", "d0",
                                 "safeguard_warmup"})

    def __init__(
        self,
        learning_rate=1.0,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=None,
        epsilon=1e-8,
        weight_decay=0.0,
        decouple=True,
        use_bias_correction=False,
        safeguard_warmup=False,
        d0=1e-6,
        d_coef=1.0,
        growth_rate=float("inf"),
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
        self.beta_3 = None if beta_3 is None else validation.check_real(
            "beta_3", beta_3, low=0.0, high=1.0)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0,
                                             low_open=True)
        self.decouple = validation.check_bool("decouple", decouple)
        self.use_bias_correction = validation.check_bool(
            "use_bias_correction", use_bias_correction)
        self.safeguard_warmup = validation.check_bool("safeguard_warmup",
                                                      safeguard_warmup)
        self.d0 = validation.check_real("d0", d0, low=0.0, low_open=True)
        self.d_coef = validation.check_real("d_coef", d_coef, low=0.0,
                                            low_open=True)
        self.growth_rate = validation.check_real(
            "growth_rate", growth_rate, low=0.0, low_open=True, finite=False)

    # ------------------------------------------------------------- state
    def _slot_specs(self):
        # the reference's per-parameter state, in its order ('step' counts
        # this parameter's updates; 0: p0 is taken at this step)
        specs = [SlotSpec("step", 0.0, scalar=True), SlotSpec("s"),
                 SlotSpec("p0")]
        if self.beta_1 > 0.0:
            specs.append(SlotSpec("exp_avg"))
        specs.append(SlotSpec("exp_avg_sq"))
        return specs

    def _global_state_specs(self):
        return [("d", self.d0), ("d_max", self.d0), ("d_numerator", 0.0),
                ("k", 0.0)]

    def _decoupled(self):
        return self.decouple

    def _beta_3(self):
        return math.sqrt(self.beta_2) if self.beta_3 is None else self.beta_3

    # -------------------------------------------------------- statistics
    def _step_statistics(self, grads, variables):
        sd = self._state_dtype

        def where(condition, x, y):
            return _global_state.where(condition, x, y, sd)

        state = self._read_state()
        d, d_max, k = state["d"], state["d_max"], state["k"]
        lr = self._global_lr()
        live = ops.greater(lr, 0.0)
        live_f = ops.cast(live, sd)
        beta_3 = self._beta_3()
        if self.use_bias_correction:
            bias = ops.sqrt(one_minus_power(self.beta_2, k + 1.0)) / \
                one_minus_power(self.beta_1, k + 1.0)
            dlr = d * lr * ops.cast(bias, sd)
        else:
            dlr = d * lr
        # the moments and s change only at a rate > 0 (kept exactly else)
        coefs = {
            "beta_1": where(live, self.beta_1, 1.0),
            "beta_2": where(live, self.beta_2, 1.0),
            "beta_3": where(live, beta_3, 1.0),
            "m_coef": live_f * d * (1.0 - self.beta_1),
            "v_coef": live_f * d * d * (1.0 - self.beta_2),
            "d": d,
            "s_dlr": live_f * dlr,
            "s_d": live_f * d,
        }
        reuse = _global_state.reuse_statistics_tensors()
        s_new = {}
        numerator = ops.zeros((), sd)
        denominator = ops.zeros((), sd)
        for index, g, param in self._statistics_inputs(grads, variables):
            dtype = g.dtype
            with _param_groups.scope(self, index):
                d0 = self.d0
                s = self._s_update(coefs, self._slot_value("s", index, dtype),
                                   g, dtype)
            first = _global_state.is_zero(self._slots["step"][index].value)
            p0 = self._slot_value("p0", index, dtype)
            dot = _global_state.cast(
                _global_state.reduce_sum(g * (p0 - param)), sd)
            numerator = numerator + _global_state.select(
                first, 0.0, (d / d0) * dlr * dot)
            denominator = denominator + _global_state.cast(
                _global_state.reduce_sum(abs(s)), sd)
            if reuse and not self._half[index]:
                s_new[index] = s
        denominator = where(live, denominator, 0.0)
        # the reference returns early (nothing moves, k stays) on a 0 sum
        gate = ops.not_equal(denominator, 0.0)
        global_numerator = beta_3 * state["d_numerator"] + numerator
        d_hat = self.d_coef * global_numerator / denominator
        # (a tensor of the state dtype: ops.equal would round a Python
        # float through float32 on TF)
        d_last = _global_state.constant(self._group_d0(self._last_group), sd)
        # Python's max(a, b) / min(a, b) keep `a` unless `b` is strictly
        # greater / smaller (NaN included)
        d_new = where(ops.logical_and(ops.equal(d, d_last),
                                      ops.greater(d_hat, d)), d_hat, d)
        d_max_new = where(ops.greater(d_hat, d_max), d_hat, d_max)
        grown = d_new * self.growth_rate
        d_new = where(ops.less(grown, d_max_new), grown, d_max_new)
        d_new = where(gate, d_new, d)
        gate_f = ops.cast(gate, sd)
        return dict(coefs, **{
            "gate": gate_f,
            # the step, only where the reference does not return early
            "dlr": gate_f * dlr,
            "d_new": d_new,
            "s_new": s_new,
            "state": {
                "d": d_new,
                "d_max": where(gate, d_max_new, d_max),
                "d_numerator": where(gate, global_numerator,
                                     state["d_numerator"]),
                "k": k + gate_f,
            },
        })

    def _s_update(self, st, s, grad, dtype):
        """The new ``s`` of a variable (its group's ``d0`` and
        ``safeguard_warmup`` in effect)."""
        coef = (st["d"] / self.d0) * (
            st["s_d"] if self.safeguard_warmup else st["s_dlr"])
        return _global_state.cast(st["beta_3"], dtype) * s + \
            _global_state.cast(coef, dtype) * grad

    def _group_d0(self, group):
        groups = getattr(self, "_groups", None) or [None]
        resolved = groups[group] if group < len(groups) else None
        if resolved is not None and "d0" in resolved.overlay:
            return resolved.overlay["d0"]
        return self.d0

    # ------------------------------------------------------------ update
    def _update(self, param, grad, state, lr, index):
        st = self._stats
        dtype = grad.dtype
        i = first_index(index)

        def c(x):
            return _global_state.cast(x, dtype)

        if self._decay_mask[i] and not self.decouple:
            grad = grad + self._weight_decay_value(dtype) * param
        first = ops.equal(state["step"], 0.0)
        new = {"p0": _global_state.first_value(self._math, first, param,
                                               state["p0"]),
               "step": state["step"] + ops.cast(st["gate"],
                                                state["step"].dtype)}
        exp_avg = state.get("exp_avg")
        exp_avg_sq = state["exp_avg_sq"]
        if self._active[i]:
            if exp_avg is not None:
                exp_avg = c(st["beta_1"]) * exp_avg + c(st["m_coef"]) * grad
                new["exp_avg"] = exp_avg
            exp_avg_sq = c(st["beta_2"]) * exp_avg_sq + \
                c(st["v_coef"]) * (grad * grad)
            new["exp_avg_sq"] = exp_avg_sq
            s = st["s_new"].get(index) if isinstance(index, int) else None
            new["s"] = s if s is not None else self._s_update(
                st, state["s"], grad, dtype)
        dlr = st["dlr"]
        denom = self._math.sqrt(exp_avg_sq) + c(st["d_new"] * self.epsilon)
        if self._decay_mask[i] and self.decouple:
            param = param + c(-self._weight_decay_value(dlr.dtype) * dlr) \
                * param
        if exp_avg is not None:
            param = param - c(dlr) * (exp_avg / denom)
        else:
            param = param - c(dlr * st["d_new"]) * (grad / denom)
        return param, new
