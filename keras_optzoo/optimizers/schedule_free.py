"""Schedule-free AdamW, SGD and RAdam, as the authors' package schedulefree
1.4.1 computes them, with its train and eval modes."""


import keras
import numpy as np
from keras import ops

from keras_optzoo import _float64
from keras_optzoo import fastpath
from keras_optzoo import param_groups as _param_groups
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.base import first_index
from keras_optzoo.registry import register_optimizer

_TORCH = keras.backend.backend() == "torch"

#: The layout of each param group's state vector ``schedule_free_<g>``:
#: the reference's two host-side doubles of the group (``lr_max``,
#: ``weight_sum``), three float32 limbs each (keras_optzoo/_float64.py),
#: the group's mode (1 train, 0 eval), then the scalars of the step being
#: applied, which every variable's update reads (computed once per step
#: and group, before the updates).
STATE = ("lr_max", "lr_max_mid", "lr_max_low",
         "weight_sum", "weight_sum_mid", "weight_sum_low",
         "train_mode",
         "lr", "ckp1", "y_coefficient", "bias_correction2", "adaptive",
         "to_train")
_I = {name: i for i, name in enumerate(STATE)}
_INITIAL = (list(_float64.limbs_of(-1.0)) + list(_float64.limbs_of(0.0))
            + [1.0] + [0.0] * 6)


def _check_warmup(warmup_steps):
    return validation.check_int("warmup_steps", warmup_steps, low=0)


def _host(value):
    """A 0-d variable or tensor as a Python float (eager code only)."""
    if isinstance(value, keras.Variable):
        value = value.value
    if hasattr(value, "read_value"):  # a tf.distribute variable
        value = value.read_value()
    return float(np.asarray(ops.convert_to_numpy(value)))


def _host_vector(variable):
    value = variable.value
    if hasattr(value, "read_value"):
        value = value.read_value()
    return [float(x) for x in np.asarray(ops.convert_to_numpy(value),
                                         np.float64).reshape(-1)]


def _in_place_allowed():
    """torch: a variable's ``.value`` is its storage (not inside a Keras
    StatelessScope or autocast scope)."""
    from keras_optzoo.fastpath import runner

    return runner._keras_state_allows_in_place()


def _lerp_constant(start, end, weight):
    """``torch.lerp(start, end, weight)`` for a Python-float ``weight``:
    ``start + w·(end - start)`` for ``|w| < 0.5``, else
    ``end - (end - start)·(1 - w)``, with the weight rounded to float32 and
    ``1 - w`` computed in float32, as torch's kernel does."""
    w = np.float32(weight)
    if abs(w) < 0.5:
        return start + float(w) * (end - start)
    return end - (end - start) * float(np.float32(1.0) - w)


class _HostMath:
    """The bookkeeping's operations on Python floats: the reference's own
    arithmetic (torch backend on the CPU)."""

    @staticmethod
    def where(condition, a, b):
        return a if condition else b

    @staticmethod
    def power(a, exponent):
        return a ** exponent

    @staticmethod
    def sqrt(a):
        return a ** 0.5

    @staticmethod
    def maximum(a, b):
        return max(a, b)

    @staticmethod
    def rounded(a):
        return a

    @staticmethod
    def const(a):
        return float(a)

    @staticmethod
    def flag(condition):
        return 1.0 if condition else 0.0


class _DeviceMath:
    """The same on 0-d float64 tensors inside the step (see
    keras_optzoo/_float64.py)."""

    @staticmethod
    def where(condition, a, b):
        return ops.where(condition, a, b)

    @staticmethod
    def power(a, exponent):
        if isinstance(exponent, float):
            return _float64.power(a, exponent)
        return ops.power(a, exponent)

    @staticmethod
    def sqrt(a):
        return ops.sqrt(a)

    @staticmethod
    def maximum(a, b):
        return _float64.maximum(a, b)

    @staticmethod
    def rounded(value):
        """A float64 product, rounded on its own before it is added to
        anything. XLA (JAX, TensorFlow with ``jit_compile``) lets LLVM
        contract ``a·b + c`` into one fused multiply-add, which rounds once
        where Python's floats round twice (measured: 44 of 200 random
        ``a·b + c`` differ in the last bit). A select that keeps the value
        (a NaN stays NaN) sits between the product and the sum, so no
        contraction can form; XLA does not fold ``x == x`` on floats (it is
        False for NaN)."""
        return ops.where(value == value, value, value + value)

    @staticmethod
    def const(a):
        return _float64.const(a)

    @staticmethod
    def flag(condition):
        return ops.cast(condition, "float64")


def _rounded(value):
    return _DeviceMath.rounded(value)


class _ScheduleFree(ZooOptimizer):
    r"""The schedule-free machinery shared by the three classes.

    Subclasses give ``_interpolation`` (the name of the argument that is
    the reference's β₁/momentum), ``_schedule`` (the step's learning rate
    and extra scalars) and ``_direction`` (the normalised gradient and its
    new slots).
    """

    #: weight decay is added at the training point y, inside the update
    weight_decay_in_update = True

    #: The step computes a few 0-d float64 values per param group (the
    #: reference's host-side doubles, see _bookkeeping); never a float64
    #: tensor (tests/test_host_sync.py).
    float64_scalars = True

    #: the argument whose value is the interpolation constant β
    _interpolation = "beta_1"

    def __init__(self, learning_rate, weight_decay, r, weight_lr_power,
                 **kwargs):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, **kwargs)
        self.warmup_steps = 0  # AdamW and SGD take it as an argument
        self.r = validation.check_real("r", r, low=0.0)
        self.weight_lr_power = validation.check_real(
            "weight_lr_power", weight_lr_power, low=0.0)
        # torch backend: whether a group may be in eval mode (train() is
        # then run eagerly before the next step), and whether z may have to
        # be set to the parameters at the first step (see
        # _backend_update_step)
        self._eval_pending = False
        self._z_pending = True
        #: the torch backend on the CPU computes the bookkeeping with
        #: Python floats, as the reference does (None: when the state is on
        #: the CPU and the fast path may read values there; False: always
        #: 0-d float64 tensors, as on an accelerator)
        self.host_bookkeeping = None

    # ---------------------------------------------------------------- state
    def _slot_specs(self):
        # z is zeros until the first step sets it to the parameter, as the
        # reference clones it then (see _update and _backend_update_step):
        # the weights may change between build and the first step (Keras's
        # load_model builds the optimizer before it loads the weights)
        return [SlotSpec("z")] + self._moment_slots()

    def _moment_slots(self):
        return []

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # one state vector per param group (the reference's group keys)
        self._sf_state = []
        for group in range(len(self._groups)):
            members = [i for i, g in enumerate(self._group_of) if g == group]
            dtype = "float64" if any(
                keras.backend.standardize_dtype(var_list[i].dtype)
                == "float64" for i in members) else "float32"
            self._sf_state.append(self.add_variable(
                shape=(len(STATE),), dtype=dtype,
                initializer=keras.initializers.Constant(
                    np.asarray(_INITIAL, np.float64)),
                aggregation="only_first_replica",
                name=f"schedule_free_{group}"))

    def _beta(self):
        return getattr(self, self._interpolation)

    def _group(self, index):
        group_of = getattr(self, "_group_of", None)
        return group_of[first_index(index)] if group_of else 0

    def _first_of_groups(self):
        """{group: its first variable's index} for the non-empty groups
        (decided in build, cached)."""
        cached = getattr(self, "_sf_first", None)
        if cached is None:
            cached = {}
            for index, group in enumerate(self._group_of):
                cached.setdefault(group, index)
            self._sf_first = cached
        return cached

    # ---------------------------------------------------------- bookkeeping
    def _prepare(self, gradient, variable, learning_rate, index):
        # (the learning rate is the group state's, see _update)
        param, grad, _ = super()._prepare(gradient, variable, learning_rate,
                                          index)
        return param, grad, learning_rate

    def _schedule(self, m, lr, step):
        """The reference's ``lr`` of the step and the subclass's other
        scalars (``m``: _HostMath or _DeviceMath; ``step`` = k + 1)."""
        return self._warmup(m, lr, step), {}

    def _warmup(self, m, lr, step):
        if not self.warmup_steps:
            return lr
        warmup = self.warmup_steps
        # k < warmup_steps  <=>  k + 1 <= warmup_steps
        return m.where(step <= warmup, lr * (step / warmup), lr)

    def _bookkeeping(self, m, old, lr, step):
        """The reference's host-side float math of one step, on Python
        floats or float64 tensors: the group's new state (see STATE) from
        its old one, the group's learning rate and ``step`` = k + 1."""
        lr, extra = self._schedule(m, lr, step)
        lr_max = m.maximum(lr, (old[0] + old[1]) + old[2])
        weight = m.power(lr_max, self.weight_lr_power)
        if self.r:
            weight = m.rounded(m.power(step, self.r)) * weight
        weight = m.rounded(weight)
        weight_sum = ((old[3] + old[4]) + old[5]) + weight
        # the reference catches ZeroDivisionError: ckp1 = 0
        empty = weight_sum == 0.0
        ckp1 = m.where(empty, m.const(0.0),
                       weight / m.where(empty, m.const(1.0), weight_sum))
        coef = lr * (m.rounded(self._beta() * (1.0 - ckp1)) - 1.0)
        return (lr_max, weight_sum, lr, ckp1, coef,
                extra.get("bias_correction2", m.const(1.0)),
                extra.get("adaptive", m.const(1.0)),
                old[_I["train_mode"]] < 0.5)

    def _new_state(self, variable, learning_rate):
        """The group state after this step's bookkeeping, as a tensor."""
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if self._use_host_bookkeeping(variable):
            import torch

            old = variable.value.tolist()
            lr = float(learning_rate)
            step = int(self._iterations_value()) + 1
            (lr_max, weight_sum, lr, ckp1, coef, bias_2, adaptive,
             to_train) = self._bookkeeping(_HostMath, old, lr, step)
            new = (list(_float64.limbs_of(lr_max))
                   + list(_float64.limbs_of(weight_sum))
                   + [1.0, lr, ckp1, coef, bias_2, adaptive,
                      1.0 if to_train else 0.0])
            if dtype == "float64":
                new[1:3] = [0.0, 0.0]
                new[4:6] = [0.0, 0.0]
                new[0], new[3] = lr_max, weight_sum
            return torch.tensor(new, dtype=variable.value.dtype)
        with _float64.scope():
            value = variable.value
            # element by element: float64 scalars only, no float64 vector
            old = [ops.cast(value[i], "float64") for i in range(len(STATE))]
            step = ops.cast(self.iterations + 1, "float64")
            lr = ops.cast(learning_rate, "float64")
            (lr_max, weight_sum, lr, ckp1, coef, bias_2, adaptive,
             to_train) = self._bookkeeping(_DeviceMath, old, lr, step)
            values = (list(_float64.store(lr_max, dtype))
                      + list(_float64.store(weight_sum, dtype)))
            values += [ops.ones((), dtype)] + [
                ops.cast(v, dtype) for v in (
                    lr, ckp1, coef, bias_2, ops.cast(adaptive, "float64"),
                    ops.cast(to_train, "float64"))]
            return ops.stack(values)

    def _iterations_value(self):
        iterations = self.iterations
        if isinstance(iterations, keras.Variable):
            iterations = iterations.value
        return iterations.item()

    def _use_host_bookkeeping(self, state):
        """torch on the CPU, where reading a value is no synchronisation
        (the fast path's own rule, ``fastpath.State.device_scalars``)."""
        if not _TORCH or self.host_bookkeeping is False:
            return False
        if self._multi_tensor.device_scalars:
            return False
        return state.value.device.type == "cpu"

    # --------------------------------------------------------------- update
    def _lerp(self, start, end, weight):
        """``torch.lerp`` for a 0-d tensor weight; on the torch
        multi-tensor path the pattern compiles to ``_foreach_lerp_``."""
        if isinstance(start, fastpath.TensorList):
            return start + (end - start) * weight
        small = ops.abs(weight) < 0.5
        return self._math.where(small, start + weight * (end - start),
                                end - (end - start) * (1.0 - weight))

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        vector = self._sf_state[self._group(index)].value
        scalars = {name: vector[_I[name]] for name in (
            "lr", "ckp1", "y_coefficient", "bias_correction2", "adaptive",
            "to_train")}
        z = state["z"]
        new = {}
        y = param
        if not _TORCH:
            # the reference creates z as a copy of the parameter at the
            # first step, and a step in eval mode first moves x back to y,
            # as train() does (torch does both eagerly in
            # _backend_update_step)
            z = self._math.where(ops.equal(self.iterations, 0), param, z)
            y = self._math.where(
                scalars["to_train"] > 0.5,
                _lerp_constant(param, z, 1.0 - self._beta()), param)
        direction, moments = self._direction(grad, state, scalars, dtype)
        if self._decays(index):
            direction = direction + self._weight_decay_value(dtype) * y
        ckp1 = ops.cast(scalars["ckp1"], dtype)
        coef = ops.cast(scalars["y_coefficient"], dtype)
        lr = ops.cast(scalars["lr"], dtype)
        new_y = self._lerp(y, z, ckp1) + coef * direction
        new["z"] = z - lr * direction
        new.update(moments)
        return new_y, new

    def _direction(self, grad, state, scalars, dtype):
        """(the step direction before weight decay, new moment slots)."""
        raise NotImplementedError

    def _backend_update_step(self, grads, trainable_variables,
                             learning_rate):
        if _TORCH:
            # eager on torch; the others do both inside the compiled step
            # (see _update)
            if self._z_pending:
                self._z_pending = False
                if _host(self.iterations) == 0:
                    for _, variable, z in self._z_pairs():
                        z.assign(variable.value)
            if self._eval_pending:
                self.train()
        # the bookkeeping, once per step and param group
        rate = learning_rate
        if isinstance(rate, keras.Variable):
            rate = self._scaled_learning_rate(rate)
        multiple = len(self._groups) > 1
        for group, first in self._first_of_groups().items():
            with _param_groups.scope(self, first):
                group_rate = _param_groups.group_learning_rate(
                    self, rate, first) if multiple else rate
                state = self._sf_state[group]
                new = self._new_state(state, group_rate)
                if _TORCH and _in_place_allowed():
                    # (a torch Keras variable keeps its tensor for life:
                    # the copy skips assign()'s dispatch)
                    state.value.copy_(new)
                else:
                    state.assign(new)
        super()._backend_update_step(grads, trainable_variables,
                                     learning_rate)

    # ---------------------------------------------------------------- modes
    def _z_pairs(self):
        """(index, variable, z) of every variable with a z."""
        if not self.built:
            return []
        return [(index, variable, self._slots["z"][index])
                for index, variable in enumerate(self._trainable_variables)
                if self._slots["z"][index] is not None]

    def _modes(self):
        """The mode of each group: True for train."""
        return [_host_vector(state)[_I["train_mode"]] > 0.5
                for state in self._sf_state]

    def _switch(self, to_train):
        if not self.built:
            return False
        modes = self._modes()
        # before the first step the reference has no z yet: only the mode
        # changes
        started = _host(self.iterations) > 0
        moved = False
        for index, variable, z in self._z_pairs():
            if modes[self._group(index)] == to_train or not started:
                continue
            with _param_groups.scope(self, index):
                beta = self._beta()
            weight = 1.0 - beta if to_train else 1.0 - 1.0 / beta
            variable.assign(_lerp_constant(variable.value, z.value, weight))
            moved = True
        for group, state in enumerate(self._sf_state):
            if modes[group] != to_train:
                vector = np.asarray(_host_vector(state), np.float64)
                vector[_I["train_mode"]] = 1.0 if to_train else 0.0
                state.assign(vector.astype(keras.backend.standardize_dtype(
                    state.dtype)))
        self._eval_pending = not to_train
        return moved

    def train(self):
        """Puts the training point y into the model's variables.

        The reference's ``optimizer.train()``: the variables of every
        param group in eval mode become ``lerp(x, z, 1 - β)`` (torch's
        ``lerp``), and the group's mode becomes train. Idempotent. A step
        taken in eval mode does this first by itself (inside the compiled
        step on JAX and TensorFlow, eagerly before it on torch), so calling
        it is optional. Call it outside compiled functions. Returns whether
        a variable moved.
        """
        return self._switch(True)

    def eval(self):
        """Puts the evaluation point x into the model's variables.

        The reference's ``optimizer.eval()``: the variables of every param
        group in train mode become ``lerp(y, z, 1 - 1/β)`` (torch's
        ``lerp``), and the group's mode becomes eval. Idempotent; nothing
        moves before the first step. Keras calls it at the end of ``fit``
        (:meth:`finalize_variable_values`);
        `keras_optzoo.callbacks.ScheduleFreeEval` calls it around
        evaluation during training. Call it outside compiled functions.
        Returns whether a variable moved.
        """
        return self._switch(False)

    @property
    def in_train_mode(self):
        """True when every param group is in train mode (also before the
        optimizer is built)."""
        return not self.built or all(self._modes())

    def evaluation_point(self, variable):
        """The evaluation point x of ``variable`` as a tensor, whatever the
        mode, without changing anything (``variable`` itself in eval mode
        and before the first step)."""
        if not self.built:
            return ops.copy(variable.value)
        index = self._get_variable_index(variable)
        z = self._slots["z"][index]
        if z is None or not self._modes()[self._group(index)] or \
                _host(self.iterations) == 0:
            return ops.copy(variable.value)
        with _param_groups.scope(self, index):
            beta = self._beta()
        return _lerp_constant(variable.value, z.value, 1.0 - 1.0 / beta)

    def finalize_variable_values(self, var_list):
        """Keras calls this at the end of ``fit``: the model then holds the
        evaluation point x (see :meth:`eval`), for ``evaluate``,
        ``predict`` and ``save``; the next step moves it back to y.

        With ``use_ema=True`` Keras's own finalisation runs instead (the
        model gets the EMA of the weights it trained, y, and stays in train
        mode): a lerp towards z would make no sense from an average.
        """
        if self.use_ema:
            super().finalize_variable_values(var_list)
            return
        self.eval()

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self._refresh_mode()

    def set_weights(self, weights):
        super().set_weights(weights)
        self._refresh_mode()

    def _refresh_mode(self):
        self._eval_pending = self.built and not self.in_train_mode
        self._z_pending = True


def _check_interpolation(name, value):
    """β in (0, 1): eval() divides by it (β = 0 would make y = z and lose
    x); the reference's SGD rejects momentum outside (0, 1) the same way."""
    return validation.check_real(name, value, low=0.0, high=1.0,
                                 low_open=True, high_open=True)


_MATH = r"""
    With learning rate $\gamma_t$ (after warmup, or RAdam's
    rectification), interpolation constant $\beta$ (`{beta}`), step
    $t = k + 1$ and $r$, $p$ = `r`, `weight_lr_power`:

    $$\gamma^{{\max}}_t = \max(\gamma^{{\max}}_{{t-1}}, \gamma_t),\quad
      w_t = t^r\,(\gamma^{{\max}}_t)^p,\quad
      c_{{t}} = \frac{{w_t}}{{\sum_{{i\le t}} w_i}}$$
    $$y_t = (1-c_t)\,y_{{t-1}} + c_t z_{{t-1}}
            + \gamma_t\,(\beta(1-c_t) - 1)\,d_t,\qquad
      z_t = z_{{t-1}} - \gamma_t d_t$$

    where $d_t$ is {direction}, plus `weight_decay` $\cdot\,y_{{t-1}}$
    (weight decay at the training point y). The model's variables hold y
    while training; the evaluation point, the one the method is about, is
    $x_t = (y_t - (1-\beta) z_t)/\beta$ (so that
    $y = (1-\beta) z + \beta x$). $\gamma^{{\max}}$ and $\sum w$ are the
    reference's Python doubles: here they are computed in float64 inside
    the compiled step (JAX included, in an `enable_x64` island) and kept
    exactly in float32 limbs (`keras_optzoo/_float64.py`), so a long run
    sees the same numbers as the reference's host bookkeeping (on torch
    on the CPU they are Python floats, as in the reference). They are kept
    per param group, as the reference keeps them, in one state vector per
    group (`schedule_free_<g>`).

    **Modes.** `optimizer.eval()` puts x into the model's variables
    ($y \to \mathrm{{lerp}}(y, z, 1 - 1/\beta)$) and `optimizer.train()`
    puts y back ($x \to \mathrm{{lerp}}(x, z, 1-\beta)$), exactly as the
    reference's `eval()`/`train()` move its parameters (both idempotent;
    the mode is saved with the group's state, so a file saved in either
    mode resumes exactly). In Keras this is automatic: `fit` ends in
    eval mode (so `evaluate`, `predict` and `model.save` after training
    see x), and the next training step moves back to y by itself (in the
    compiled step on JAX and TensorFlow, eagerly before it on torch; the
    reference raises instead). For validation and checkpoints *during*
    `fit`, add `keras_optzoo.callbacks.ScheduleFreeEval()`, which also
    recomputes BatchNormalization statistics at x. `evaluation_point(v)`
    reads x without switching.
"""

_DIFFERS = """
    Differs from `keras.optimizers.ScheduleFreeAdamW`: Keras averages with
    weight $1/t$ (this class with `weight_lr_power=0`, tested on JAX; the
    reference's default 2 weights the average by $\\gamma_{\\max}^2$, which
    discounts the warmup steps), has no `r`, `weight_lr_power` or
    train/eval modes (the model is evaluated and saved at y, not x), and
    applies `weight_decay`
    through its generic decoupled decay
    ($\\theta \\leftarrow \\theta(1-\\gamma\\lambda)$ before the step)
    instead of adding it to the step direction at y. On TensorFlow and
    torch Keras 3.15's reads its z after updating it (``momentum.value`` is
    the variable, or its storage), so only its JAX results are the
    algorithm it describes."""


_ADAM_DIRECTION = r"""the Adam direction
    $g_t / (\sqrt{v_t/(1-\beta_2^t)} + \epsilon)$ with
    $v_t = \beta_2 v_{t-1} + (1-\beta_2)g_t^2$
    (no first moment: the interpolation is the momentum)"""


@register_optimizer("schedulefree_adamw",
                    "Schedule-free AdamW with train/eval modes "
                    "(schedulefree 1.4.1 AdamWScheduleFree)")
class ScheduleFreeAdamW(_ScheduleFree):
    __doc__ = r"""Schedule-free AdamW, as schedulefree 1.4.1's
    `AdamWScheduleFree` (Defazio et al., 2024).

    No learning-rate schedule: the iterate is an online average of the SGD
    sequence z, with a linear warmup (`warmup_steps`) as the only
    schedule.
""" + _MATH.format(beta="beta_1", direction=_ADAM_DIRECTION) + _DIFFERS + r"""

    Args:
        {{learning_rate}}
        beta_1: Float in (0, 1), the interpolation β (the reference's
            `betas[0]`). Defaults to `0.9`.
        beta_2: Float in [0, 1), the second-moment decay. Defaults to
            `0.999`.
        epsilon: Float >= 0, added to the root. Defaults to `1e-8`.
        weight_decay: Float >= 0 (or a schedule): `weight_decay * y` is
            added to the normalised gradient. Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        warmup_steps: Int >= 0: the learning rate is multiplied by
            `min(1, t / warmup_steps)`. Defaults to `0`.
        r: Float >= 0, polynomial weighting $t^r$ of the average.
            Defaults to `0.0`.
        weight_lr_power: Float >= 0, the power $p$ of $\gamma^{\max}$ in
            the weights. Defaults to `2.0`.
        {{maximize}}
        {{base}}

    The reference's `foreach` has no counterpart (see `use_multi_tensor`).

    References:
        - Defazio et al., 2024, "The Road Less Scheduled"
          (https://github.com/facebookresearch/schedule_free).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay",
                        "warmup_steps", "r", "weight_lr_power", "maximize")

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        warmup_steps=0,
        r=0.0,
        weight_lr_power=2.0,
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, r=r,
                         weight_lr_power=weight_lr_power, maximize=maximize,
                         **kwargs)
        self.warmup_steps = _check_warmup(warmup_steps)
        self.beta_1 = _check_interpolation("beta_1", beta_1)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)

    def _moment_slots(self):
        return [SlotSpec("exp_avg_sq")]

    def _schedule(self, m, lr, step):
        # bias_correction2 = 1 - beta2 ** (k+1), a double in the reference
        return self._warmup(m, lr, step), {
            "bias_correction2": 1.0 - m.power(m.const(self.beta_2), step)}

    def _direction(self, grad, state, scalars, dtype):
        exp_avg_sq = (state["exp_avg_sq"] * self.beta_2
                      + (1.0 - self.beta_2) * grad * grad)
        bias_2 = ops.cast(scalars["bias_correction2"], dtype)
        denom = self._math.sqrt(exp_avg_sq / bias_2) + self.epsilon
        return grad / denom, {"exp_avg_sq": exp_avg_sq}


@register_optimizer("schedulefree_sgd",
                    "Schedule-free SGD with train/eval modes "
                    "(schedulefree 1.4.1 SGDScheduleFree)")
class ScheduleFreeSGD(_ScheduleFree):
    __doc__ = r"""Schedule-free SGD, as schedulefree 1.4.1's
    `SGDScheduleFree` (Defazio et al., 2024).
""" + _MATH.format(beta="momentum",
                   direction="the gradient $g_t$") + r"""

    Differs from `keras.optimizers.SGD`: Keras has no schedule-free SGD;
    its `momentum` is heavy-ball momentum, here `momentum` is the
    interpolation between z and the average (the reference's name).

    Args:
        learning_rate: A real number >= 0, a
            `keras.optimizers.schedules.LearningRateSchedule` or a callable.
            Defaults to `1.0` (the reference's).
        momentum: Float in (0, 1), the interpolation β. Defaults to `0.9`.
        weight_decay: Float >= 0 (or a schedule): `weight_decay * y` is
            added to the gradient. Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        warmup_steps: Int >= 0: the learning rate is multiplied by
            `min(1, t / warmup_steps)`. Defaults to `0`.
        r: Float >= 0, polynomial weighting $t^r$ of the average.
            Defaults to `0.0`.
        weight_lr_power: Float >= 0, the power $p$ of $\gamma^{\max}$ in
            the weights. Defaults to `2.0`.
        {{maximize}}
        {{base}}

    References:
        - Defazio et al., 2024, "The Road Less Scheduled"
          (https://github.com/facebookresearch/schedule_free).
    """

    _hyperparameters = ("momentum", "weight_decay", "warmup_steps", "r",
                        "weight_lr_power", "maximize")
    _interpolation = "momentum"

    def __init__(
        self,
        learning_rate=1.0,
        momentum=0.9,
        weight_decay=0.0,
        warmup_steps=0,
        r=0.0,
        weight_lr_power=2.0,
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, r=r,
                         weight_lr_power=weight_lr_power, maximize=maximize,
                         **kwargs)
        self.warmup_steps = _check_warmup(warmup_steps)
        self.momentum = _check_interpolation("momentum", momentum)

    def _direction(self, grad, state, scalars, dtype):
        return grad, {}


@register_optimizer("schedulefree_radam",
                    "Schedule-free RAdam with train/eval modes "
                    "(schedulefree 1.4.1 RAdamScheduleFree)")
class ScheduleFreeRAdam(_ScheduleFree):
    __doc__ = r"""Schedule-free RAdam, as schedulefree 1.4.1's
    `RAdamScheduleFree`.

    No warmup argument: RAdam's rectification is the warmup. With
    $\rho_\infty = 2/(1-\beta_2) - 1$ and
    $\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)$, the step's learning
    rate is $\gamma_t = \gamma\, r_t$ with
    $r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
    {(\rho_\infty-4)(\rho_\infty-2)\rho_t}}$ when $\rho_t > 4$; before
    that (the first 4 steps with the default $\beta_2$; always when
    $\beta_2 \le 3/5$) $r_t = 0$ with `silent_sgd_phase=True` (the
    parameters do not move, only $v_t$ is updated) and $r_t = 1$ with an
    un-normalised gradient step otherwise. The threshold is the
    reference's 4 (torch's RAdam uses 5).
""" + _MATH.format(
        beta="beta_1",
        direction=r"$g_t / (\sqrt{v_t/(1-\beta_2^t)} + \epsilon)$ when "
                  r"$\rho_t > 4$ and $g_t$ before") + r"""

    Differs from `keras.optimizers.*`: Keras has no (schedule-free) RAdam;
    `keras.optimizers.ScheduleFreeAdamW` differs from the AdamW variant as
    `ScheduleFreeAdamW`'s docstring says.

    Args:
        {{learning_rate}}
        beta_1: Float in (0, 1), the interpolation β. Defaults to `0.9`.
        beta_2: Float in [0, 1), the second-moment decay. Defaults to
            `0.999`.
        epsilon: Float >= 0, added to the root. Defaults to `1e-8`.
        weight_decay: Float >= 0 (or a schedule): `weight_decay * y` is
            added to the step direction. Variables excluded with
            `exclude_from_weight_decay()` get none. Defaults to `0.0`.
        r: Float >= 0, polynomial weighting $t^r$ of the average.
            Defaults to `0.0`.
        weight_lr_power: Float >= 0, the power $p$ of $\gamma^{\max}$ in
            the weights. Defaults to `2.0`.
        silent_sgd_phase: Bool. No parameter movement before the
            rectification starts. Defaults to `True`.
        {{maximize}}
        {{base}}

    The reference's `foreach` has no counterpart (see `use_multi_tensor`).

    References:
        - Defazio et al., 2024, "The Road Less Scheduled"
          (https://github.com/facebookresearch/schedule_free).
        - Liu et al., 2020, "On the Variance of the Adaptive Learning Rate
          and Beyond" (RAdam).
    """

    _hyperparameters = ("beta_1", "beta_2", "epsilon", "weight_decay", "r",
                        "weight_lr_power", "silent_sgd_phase", "maximize")

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.0,
        r=0.0,
        weight_lr_power=2.0,
        silent_sgd_phase=True,
        maximize=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate,
                         weight_decay=weight_decay, r=r,
                         weight_lr_power=weight_lr_power, maximize=maximize,
                         **kwargs)
        self.beta_1 = _check_interpolation("beta_1", beta_1)
        self.beta_2 = validation.check_real("beta_2", beta_2, low=0.0,
                                            high=1.0, high_open=True)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.silent_sgd_phase = validation.check_bool("silent_sgd_phase",
                                                      silent_sgd_phase)

    def _moment_slots(self):
        return [SlotSpec("exp_avg_sq")]

    def _schedule(self, m, lr, step):
        beta_2 = self.beta_2
        beta2_t = m.power(m.const(beta_2), step)
        bias_2 = 1.0 - beta2_t
        rho_inf = 2.0 / (1.0 - beta_2) - 1.0
        rho_t = rho_inf - 2 * step * beta2_t / bias_2
        adaptive = rho_t > 4.0
        ratio = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                 / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
        rect = m.where(adaptive,
                       m.sqrt(m.where(adaptive, ratio, m.const(1.0))),
                       m.const(float(not self.silent_sgd_phase)))
        return lr * rect, {"bias_correction2": bias_2,
                           "adaptive": m.flag(adaptive)}

    def _direction(self, grad, state, scalars, dtype):
        exp_avg_sq = (state["exp_avg_sq"] * self.beta_2
                      + (1.0 - self.beta_2) * grad * grad)
        bias_2 = ops.cast(scalars["bias_correction2"], dtype)
        denom = self._math.sqrt(exp_avg_sq / bias_2) + self.epsilon
        # both branches computed, one selected (the condition depends on
        # the step only); an exact 0/1 factor instead would turn an
        # overflowed v (inf * 0) into NaN where the reference steps by g
        return (self._math.where(scalars["adaptive"] > 0.5, grad / denom,
                                 grad),
                {"exp_avg_sq": exp_avg_sq})
