"""D-Adaptation SGD, as dadaptation 3.2's `DAdaptSGD`."""

from keras import ops

from keras_optzoo.optimizers import _global_state
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import first_index
from keras_optzoo.registry import register_optimizer


@register_optimizer("dadaptsgd", "D-Adaptation SGD: dual averaging with a "
                    "step size d estimated on the fly (dadaptation 3.2)")
class DAdaptSGD(_global_state.GlobalStepState, ZooOptimizer):
    r"""D-Adaptation SGD, as dadaptation 3.2's `dadaptation.DAdaptSGD`.

    Dual averaging whose step size is the learning rate $\gamma$ (a
    multiplier, 1 by default) times an estimate $d$ of the distance to the
    solution, one $d$ for all variables. With $x_0$ the parameters at the
    first step, $G$ the norm of all gradients of the first step (taken
    without weight decay) and $\eta = d_k\gamma/G$, every step computes,
    over all variables ($g$ with weight decay; old $s$ in the first sum),

    $$n_{k+1} = n_k + \eta\sum\langle g, s\rangle,\qquad
      s \leftarrow s + \eta g,\qquad
      \hat d = \frac{2 n_{k+1}}{\lVert s\rVert_2},\qquad
      d_{k+1} = \max(d_k, \min(\hat d, \omega d_k))$$

    (the norm over all variables), and moves every variable towards
    $z = x_0 - s$:

    $$x \leftarrow (1-c)\,x + c\,z,\qquad c = 1 - \mu$$

    with $\mu$ = `momentum` ($\mu = 0$: $x = z$). The new $d_{k+1}$ is used
    from the next step on. A step whose $\lVert s\rVert_2$ is 0 moves
    nothing and does not count in $k$ (the reference raises
    ZeroDivisionError there, and on a first gradient of norm 0).

    The sums over all variables are taken once per step, after Keras's
    gradient clipping and, under `tf.distribute`, after the all-reduce, so
    they are those of the whole model on every backend and distribution
    (the reference's `fsdp_in_use` path). The estimate is readable as
    `optimizer.d`.

    Param groups (`param_groups=[...]`) follow the reference, which reads
    every hyperparameter from its first group: a group may only set a
    `learning_rate` equal to the optimizer's, or 0. A group with rate 0
    adds nothing to the sums and keeps its $s$, but still moves towards
    its $x_0 - s$, as in the reference. Use `exclude_from_weight_decay()`
    to leave variables without weight decay.

    Differs from the reference: `lr` is `learning_rate`; no `log_every`
    (read `optimizer.d` from a callback instead) and no `fsdp_in_use` (the
    sums are always global); $z$ is not stored (it is $x_0 - s$ whenever
    it is used); a float `learning_rate` of 0 is accepted and leaves
    everything unchanged (the reference requires > 0); `maximize` is an
    extension. The reference's scalars are Python doubles; here they are
    float32 (float64 with float64 variables).

    Differs from `keras.optimizers.SGD` (Keras has no D-Adaptation): dual
    averaging from $x_0$ with a learned step size, and its `momentum` is
    an average of the iterates, not a momentum buffer.

    Args:
        learning_rate: A real number >= 0 (int and numpy scalars are
            accepted), a `keras.optimizers.schedules.LearningRateSchedule`
            or a callable: a multiplier on the estimated step size (leave
            it at 1 unless training is unstable). Defaults to `1.0`.
        momentum: Float in [0, 1), $\mu$. Defaults to `0.0`.
        weight_decay: Float >= 0 (or a schedule), L2 added to the gradient
            (not in $G$). Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        d0: Float > 0, the initial estimate. Defaults to `1e-6`.
        growth_rate: Float > 0 (`inf` allowed), $\omega$: the largest
            factor by which $d$ may grow in one step. Defaults to `inf`.
        {{maximize}} Not in the reference.
        {{base}}

    References:
        - Defazio and Mishchenko, 2023, "Learning-Rate-Free Learning by
          D-Adaptation".
        - https://github.com/facebookresearch/dadaptation (3.2).
    """

    _hyperparameters = ("momentum", "weight_decay", "d0", "growth_rate",
                        "maximize")

    def __init__(
        self,
        learning_rate=1.0,
        momentum=0.0,
        weight_decay=0.0,
        d0=1e-6,
        growth_rate=float("inf"),
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, maximize=maximize,
                         **kwargs)
        self.momentum = validation.check_real("momentum", momentum, low=0.0,
                                              high=1.0, high_open=True)
        self.d0 = validation.check_real("d0", d0, low=0.0, low_open=True)
        self.growth_rate = validation.check_real(
            "growth_rate", growth_rate, low=0.0, low_open=True, finite=False)

    def _slot_specs(self):
        # 'step' counts this parameter's updates (0: x0 is taken now)
        return [SlotSpec("step", 0.0, scalar=True), SlotSpec("s"),
                SlotSpec("x0")]

    def _global_state_specs(self):
        return [("d", self.d0), ("numerator_weighted", 0.0),
                ("g0_norm", 0.0), ("k", 0.0)]

    # -------------------------------------------------------- statistics
    def _step_statistics(self, grads, variables):
        sd = self._state_dtype

        def where(condition, x, y):
            return _global_state.where(condition, x, y, sd)

        state = self._read_state()
        d, k = state["d"], state["k"]
        lr = self._global_lr()
        live = ops.greater(lr, 0.0)
        live_f = ops.cast(live, sd)
        inputs = []
        g_sq = ops.zeros((), sd)
        for index, g, param in self._statistics_inputs(grads, variables,
                                                       decay=False):
            inputs.append((index, g, param))
            g_sq = g_sq + _global_state.cast(
                _global_state.reduce_sum(g * g), sd)
        # G: the norm of the first step's gradients (without weight decay)
        first = ops.equal(k, 0.0)
        g0_norm = where(first, ops.sqrt(live_f * g_sq), state["g0_norm"])
        # (the reference divides by zero for G = 0: no step instead)
        dlr = where(ops.greater(g0_norm, 0.0),
                    d * lr / where(ops.greater(g0_norm, 0.0), g0_norm, 1.0),
                    0.0)
        reuse = _global_state.reuse_statistics_tensors()
        s_new = {}
        s_coef = live_f * dlr
        numerator = ops.zeros((), sd)
        sk_sq = ops.zeros((), sd)
        for index, g, param in inputs:
            dtype = g.dtype
            wd = self._coupled_decay(index, dtype)
            if wd is not None:
                g = g + wd * param
            s = self._slot_value("s", index, dtype)
            numerator = numerator + dlr * _global_state.cast(
                _global_state.reduce_sum(g * s), sd)
            s = s + _global_state.cast(s_coef, dtype) * g
            sk_sq = sk_sq + _global_state.cast(
                _global_state.reduce_sum(s * s), sd)
            if reuse and not self._half[index]:
                s_new[index] = s
        sk_sq = where(live, sk_sq, 0.0)
        numerator_weighted = state["numerator_weighted"] + numerator
        gate = ops.not_equal(sk_sq, 0.0)
        d_hat = 2.0 * numerator_weighted / ops.sqrt(sk_sq)
        grown = d * self.growth_rate
        # Python's min(d_hat, grown) and max(d, .)
        capped = where(ops.less(grown, d_hat), grown, d_hat)
        d_new = where(ops.greater(capped, d), capped, d)
        gate_f = ops.cast(gate, sd)
        return {
            "gate": gate_f,
            "s_coef": s_coef,
            "s_new": s_new,
            "c": gate_f * (1.0 - self.momentum),
            "state": {
                "d": where(gate, d_new, d),
                "numerator_weighted": where(gate, numerator_weighted,
                                            state["numerator_weighted"]),
                "g0_norm": where(gate, g0_norm, state["g0_norm"]),
                "k": k + gate_f,
            },
        }

    # ------------------------------------------------------------ update
    def _update(self, param, grad, state, lr, index):
        st = self._stats
        dtype = grad.dtype
        i = first_index(index)

        def c(x):
            return _global_state.cast(x, dtype)

        if self._decay_mask[i]:
            grad = grad + self._weight_decay_value(dtype) * param
        s = state["s"]
        new = {}
        if self._active[i]:
            reused = st["s_new"].get(index) if isinstance(index, int) \
                else None
            s = reused if reused is not None else s + c(st["s_coef"]) * grad
            new["s"] = s
        first = ops.equal(state["step"], 0.0)
        x0 = _global_state.first_value(self._math, first, param,
                                       state["x0"])
        new["x0"] = x0
        new["step"] = state["step"] + ops.cast(st["gate"],
                                               state["step"].dtype)
        ck = st["c"]
        # (1 − c) x + c z; with c = 0 (no step) x itself
        param = param * c(1.0 - ck) + c(ck) * (x0 - s)
        return param, new
