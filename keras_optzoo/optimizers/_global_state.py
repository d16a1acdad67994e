"""Shared machinery of the optimizers that adapt one step size for all
variables (Prodigy, DAdaptAdam, DAdaptSGD): the estimate is a scalar state
of the whole optimizer, computed once per step from sums over every
variable, before any variable moves.

Underscore module: infrastructure, not an algorithm (not auto-registered).

How a step runs (:class:`GlobalStepState`):

1. ``_backend_update_step`` records the step's learning rate (the rate
   Keras passes, times ``learning_rate_scale``, times the param groups'
   common factor: see :meth:`GlobalStepState._check_groups`), then lets the
   base class run.
2. The base class computes :meth:`ZooOptimizer._step_statistics` from the
   final gradients (after Keras's clipping and, under ``tf.distribute``,
   after the all-reduce), the variables and the slots, all still holding
   their values from before this step. The subclass returns its sums, the
   scalars every ``_update`` needs (as ``self._stats``) and, under
   ``"state"``, the new values of its global scalars.
3. Every variable's ``_update`` runs (per variable, or in groups on the
   torch multi-tensor path) with the scalars of step 2.
4. The global scalars are written once (``assign``), after every variable.
   Under ``tf.distribute`` they are created with
   ``aggregation="only_first_replica"`` and written in the replica context,
   as Keras writes ``iterations``; under ``keras.distribution`` they are
   replicated scalars.

The sums are over the whole (all-reduced, unsharded) gradients and
variables on every backend and distribution, which is what the references'
``fsdp_in_use`` path obtains by all-reducing per-shard partial sums.

Param groups follow the references: one estimate for all groups, and the
learning rate of every group must be the largest one or 0 (a group with
rate 0 still moves, with the others' step size, as in the references; see
the optimizers' docstrings). A group may override only the arguments the
reference reads per group (``_per_group_keys``); an override of one it
reads from its first group only raises a ValueError at ``build`` instead of
being ignored.
"""

import keras
import numpy as np
from keras import ops

from keras_optzoo import param_groups as _param_groups
from keras_optzoo.optimizers.base import _densify
from keras_optzoo.optimizers.base import _scalar_dtype

_HALF = ("float16", "bfloat16")
_BACKEND = keras.backend.backend()


# Per-variable reductions and casts of the statistics, one call per
# variable each: on the torch backend the torch functions themselves (what
# keras.ops calls there, without its dispatch, which costs more than the
# math for tensors of 1e4 elements), keras.ops elsewhere.
if _BACKEND == "torch":
    import torch as _torch

    def reduce_sum(x):
        return _torch.sum(x)

    def cast(x, dtype):
        target = getattr(_torch, dtype) if isinstance(dtype, str) else dtype
        if not isinstance(x, _torch.Tensor):
            return ops.cast(x, target)
        return x if x.dtype == target else x.to(target)

    def is_zero(x):
        return x == 0

    def select(condition, x, y):
        return _torch.where(condition, x, y)
else:
    reduce_sum = ops.sum
    cast = ops.cast

    def is_zero(x):
        return ops.equal(x, 0.0)

    def select(condition, x, y):
        return ops.where(condition, x, y)


def where(condition, x, y, dtype):
    """A 0-d select of scalars in ``dtype``; Python floats are converted
    exactly (``ops.cast`` of a Python float rounds it through float32 on
    TF)."""
    if _BACKEND == "torch":
        target = getattr(_torch, dtype)
        x, y = (_torch.tensor(v, dtype=target, device=condition.device)
                if isinstance(v, (int, float)) else cast(v, target)
                for v in (x, y))
        return _torch.where(condition, x, y)
    return ops.where(condition, _tensor(x, dtype), _tensor(y, dtype))


def constant(x, dtype):
    """A Python float as a 0-d tensor of ``dtype``, exactly."""
    return ops.convert_to_tensor(x, dtype=dtype)


def _tensor(x, dtype):
    if isinstance(x, (int, float)):
        return constant(x, dtype)
    return ops.cast(x, dtype)


def first_value(math, first, param, old):
    """``param`` where ``first`` (the variable's first step), else ``old``:
    the initial point the references take at a parameter's first step.
    ``param`` is copied: on the torch backend it may be the variable's own
    storage, written before the slots (the torch multi-tensor path selects
    the branch on the host and then leaves the slot alone)."""
    return math.where(first, param * 1.0, old)


def reuse_statistics_tensors():
    """Whether an ``_update`` may take a per-variable tensor computed by
    the statistics (a new slot value) instead of computing it again: not
    under ``tf.distribute``, where the statistics run once per replica and
    the update once per replica component, on other devices."""
    if _BACKEND == "tensorflow":
        import tensorflow as tf

        return not tf.distribute.has_strategy()
    return True


class GlobalStepState:
    """Mixin (before ``ZooOptimizer`` in the bases) for optimizers with one
    global, once-per-step scalar state. See the module docstring."""

    #: group keys the reference reads per group (besides ``params``,
    #: ``learning_rate`` and ``lr_scale``)
    _per_group_keys = frozenset()
    weight_decay_in_update = True

    def _global_state_specs(self):
        """``[(name, initial value)]`` of the global scalars, in saved order
        (created after the slots)."""
        raise NotImplementedError

    # ------------------------------------------------------------- build
    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        super().build(var_list)
        self._check_groups(var_list)
        self._compute_dtypes = [self._compute_dtype(v) for v in var_list]
        #: half-precision variables: statistics in float32, slots in the
        #: variable's dtype (a statistics tensor is not the slot's value)
        self._half = [keras.backend.standardize_dtype(v.dtype) in _HALF
                      for v in var_list]
        dtypes = {_scalar_dtype(v.dtype) for v in var_list}
        self._state_dtype = "float64" if "float64" in dtypes else "float32"
        self._state = {}
        for name, initial in self._global_state_specs():
            self._state[name] = self.add_variable(
                shape=(),
                initializer=keras.initializers.Constant(np.float64(initial)),
                dtype=self._state_dtype,
                aggregation="only_first_replica",
                name=name,
            )

    def _check_groups(self, var_list):
        """Checks the param groups against the reference's rules and sets
        ``_lr_factor`` (the factor of the groups' common rate on the
        optimizer's rate), ``_active`` (per variable: its group's rate is
        not 0) and ``_last_group`` (the id of the last group that holds
        variables, the reference's last ``param_groups`` entry)."""
        name = type(self).__name__
        allowed = set(self._per_group_keys) | {"params", "learning_rate",
                                                "lr_scale"}
        for i, group in enumerate(self._param_groups):
            bad = sorted(set(group) - allowed)
            if bad:
                raise ValueError(
                    f"param_groups[{i}]: {name} uses one value of {bad} for "
                    "all param groups (its reference reads them from its "
                    "first group only). A group may set: "
                    f"{sorted(allowed - {'params'})}.")
        group_of = list(getattr(self, "_group_of", None)
                        or [0] * len(var_list))
        groups = getattr(self, "_groups", None) or [None]
        factors = {}
        for g in sorted(set(group_of)):
            resolved = groups[g] if g < len(groups) else None
            if resolved is None or resolved.lr_mode == "default":
                factors[g] = 1.0
            elif resolved.lr_mode == "ratio":
                factors[g] = float(resolved.lr_factor)
            else:
                raise ValueError(
                    f"param_groups[{g - 1}]: {name} takes one learning rate "
                    "for all param groups; a group may set a number "
                    "`learning_rate` (the optimizer's rate, or 0) but not "
                    "a schedule of its own.")
        nonzero = sorted({f for f in factors.values() if f != 0.0})
        if len(nonzero) > 1:
            rates = {("default" if g == 0 else f"param_groups[{g - 1}]"): f
                     for g, f in factors.items()}
            raise ValueError(
                f"{name} adapts one step size for all param groups: every "
                "group's learning rate must be the same, or 0 (as its "
                "reference requires). Received the factors on the "
                f"optimizer's learning rate {rates}.")
        self._lr_factor = nonzero[0] if nonzero else 0.0
        self._active = [factors[g] != 0.0 for g in group_of]
        self._last_group = max(group_of) if group_of else 0

    # -------------------------------------------------------------- step
    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        lr = learning_rate
        if isinstance(lr, keras.Variable):
            lr = self._scaled_learning_rate(lr)
        self._step_lr = lr
        super()._backend_update_step(grads, trainable_variables,
                                     learning_rate)
        # once per step, after every variable's update
        for name, value in self._stats["state"].items():
            self._state[name].assign(value)

    def _global_lr(self):
        """The step's learning rate, the references' ``max`` over the
        groups' rates, in the state dtype."""
        lr = ops.cast(self._step_lr, self._state_dtype)
        if self._lr_factor != 1.0:
            lr = lr * self._lr_factor
        return lr

    def _read_state(self):
        return {name: ops.convert_to_tensor(var.value)
                for name, var in self._state.items()}

    def _compute_dtype(self, variable):
        dtype = keras.backend.standardize_dtype(variable.dtype)
        return "float32" if dtype in _HALF else dtype

    def _stats_inputs(self, grad, variable, index):
        """(gradient, parameter) of one variable for the statistics, in its
        compute dtype (float32 for half types), the gradient negated for
        ``maximize``; weight decay is not applied."""
        dtype = self._compute_dtypes[index]
        param = variable.value if isinstance(variable, keras.Variable) \
            else variable
        g = cast(_densify(grad), dtype)
        if _BACKEND == "tensorflow":
            # a densified IndexedSlices has an unknown first dimension
            g = ops.reshape(g, variable.shape)
        if self.maximize:
            g = -g
        return g, cast(param, dtype)

    def _statistics_inputs(self, grads, variables, decay=True):
        """``(index, g, param)`` for each active variable of the step, as
        :meth:`_stats_inputs` gives them, with the coupled weight decay
        added to ``g`` when ``decay`` (the references add it before their
        sums)."""
        for grad, variable in zip(grads, variables):
            index = self._get_variable_index(variable)
            if not self._active[index]:
                continue
            g, param = self._stats_inputs(grad, variable, index)
            wd = self._coupled_decay(index, g.dtype) if decay else None
            if wd is not None:
                g = g + wd * param
            yield index, g, param

    def _slot_value(self, name, index, dtype):
        return cast(self._slots[name][index].value, dtype)

    def _coupled_decay(self, index, dtype):
        """The coupled (L2) weight decay coefficient of variable ``index``
        (its group's), or None."""
        if not self._decay_mask[index] or self._decoupled():
            return None
        with _param_groups.scope(self, index):
            return self._weight_decay_value(dtype)

    def _decoupled(self):
        return False

    # --------------------------------------------------------- reading d
    @property
    def d(self):
        """The current step-size estimate ``d`` (a float; the optimizer
        must be built)."""
        if not self.built:
            raise ValueError(
                f"{type(self).__name__}.d needs the optimizer built (call "
                "`optimizer.build(variables)` or train one step first).")
        return float(ops.convert_to_numpy(self._state["d"].value))
