"""`ZooOptimizer`: the one base class of every keras-optzoo optimizer.

What it adds to `keras.optimizers.Optimizer`:

* torch-style weight decay: coupled (L2 added to the gradient) or decoupled
  (``θ ← θ(1 − γλ)`` before the update), applied exactly once inside
  ``update_step``. The Keras base class's own decoupled decay is switched off,
  and ``exclude_from_weight_decay`` is honoured in both modes.
* ``maximize``: the gradient is negated before anything else, as torch does.
* ``learning_rate`` accepts any real number (int, numpy scalar), a
  ``LearningRateSchedule`` or a callable. The schedule is called with the
  number of *updates* already applied (Keras passes micro-batches when
  gradient accumulation is on), and the value is multiplied by the tracked
  ``learning_rate_scale`` variable, which ``ReduceLROnPlateau`` lowers so that
  it composes with any schedule and survives save/load.
* Hyperparameters such as ``momentum`` or ``beta_1`` may be schedules, read
  once per step with :meth:`ZooOptimizer._hyper`.
* Per-variable state ("slots") is declared by :meth:`_slot_specs`; ``build``
  creates it in a fixed order that depends only on the config and the
  variable list, because Keras saves optimizer state by position.
* ``get_config`` is generated from the declared ``_hyperparameters``.
* A multi-tensor fast path on the torch backend (see ``multi_tensor.py``),
  which runs the same ``_update`` on lists of tensors.

A subclass implements ``_update(param, grad, state, lr, index)``, a pure
function returning the new parameter value and the new slot values. The base
class does the reading, the weight decay, the casting and the writing, so the
same math serves every backend and every execution mode. Inside ``_update``,
per-variable values are combined with arithmetic operators and
``self._math`` (sqrt, maximum, where, ...), so that the torch backend can run
the update on whole lists of variables at once.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_optzoo.optimizers import multi_tensor
from keras_optzoo.optimizers import validation

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


class SlotSpec:
    """One piece of per-variable optimizer state.

    Args:
        name: name of the slot (part of the saved variable's name).
        initial_value: constant the slot starts at.
        scalar: when True the slot is a 0-d value per variable instead of a
            tensor shaped like the variable.
        shape: a tuple for a slot whose shape is not the variable's (the
            row and column statistics of a factored second moment, say);
            such a slot is created with ``add_variable`` in the variable's
            dtype. Return these from :meth:`ZooOptimizer._slot_specs_for`,
            which sees the variable.
    """

    __slots__ = ("name", "initial_value", "scalar", "shape")

    def __init__(self, name, initial_value=0.0, scalar=False, shape=None):
        self.name = name
        self.initial_value = float(initial_value)
        self.scalar = scalar
        self.shape = None if shape is None else tuple(int(d) for d in shape)


def _is_indexed_slices(value):
    return type(value).__name__ == "IndexedSlices"


def _densify(gradient):
    """TF hands Embedding gradients over as IndexedSlices; make them dense."""
    if _is_indexed_slices(gradient):
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    return gradient


def _serialize_hyper(value):
    if isinstance(value, LearningRateSchedule):
        return keras.optimizers.schedules.serialize(value)
    return value


class ZooOptimizer(keras.optimizers.Optimizer):
    """Base class of the keras-optzoo optimizers (see the module docstring).

    Subclasses set ``_hyperparameters`` (constructor argument names saved by
    ``get_config``), implement ``_slot_specs`` and ``_update``.
    """

    #: Constructor arguments (beyond the Keras base ones) that get_config saves.
    _hyperparameters = ("weight_decay", "maximize")

    #: Whether the torch multi-tensor path may run this optimizer's
    #: ``_update`` on lists of tensors. Set False on an optimizer whose
    #: update needs per-tensor reductions (norms, means over rows) or matrix
    #: math: the torch backend then runs the per-variable ``update_step``,
    #: and :attr:`update_path` says so.
    supports_multi_tensor = True

    #: Elementwise functions for per-variable values inside ``_update``
    #: (``self._math.sqrt(v)``): ``keras.ops`` on tensors, lazy foreach nodes
    #: on the multi-tensor path's TensorLists. Scalar math uses ``keras.ops``.
    _math = multi_tensor.MATH

    def __init__(
        self,
        learning_rate,
        weight_decay=0.0,
        decoupled_weight_decay=False,
        maximize=False,
        name=None,
        **kwargs,
    ):
        learning_rate = validation.as_real(learning_rate)
        if isinstance(learning_rate, float):
            validation.check_real("learning_rate", learning_rate, low=0.0)
        elif not callable(learning_rate):
            raise TypeError(
                "Argument `learning_rate` must be a real number, a "
                "keras.optimizers.schedules.LearningRateSchedule or a "
                f"callable. Received: learning_rate={learning_rate!r}"
            )
        _check_base_args(kwargs)
        # weight_decay=None keeps the Keras base class from applying its own
        # decoupled decay; ours is applied in update_step (exactly once).
        super().__init__(
            learning_rate=learning_rate, weight_decay=None, name=name,
            **kwargs
        )
        self.weight_decay = validation.check_real(
            "weight_decay", weight_decay, low=0.0
        )
        self.decoupled_weight_decay = validation.check_bool(
            "decoupled_weight_decay", decoupled_weight_decay
        )
        self.maximize = validation.check_bool("maximize", maximize)
        #: None: the fast multi-tensor path is used where one exists for the
        #: backend (torch); False: always the generic per-variable
        #: ``update_step``; "foreach": the multi-tensor path without torch's
        #: fused kernels.
        self.use_multi_tensor = None
        self._multi_tensor = multi_tensor.State()
        self._learning_rate_scale = self.add_variable(
            shape=(),
            initializer="ones",
            dtype="float32",
            aggregation="only_first_replica",
            name="learning_rate_scale",
        )
        #: ReduceLROnPlateau's counters [has_best, best, num_bad_epochs,
        #: cooldown_counter], kept here so that a resumed run continues the
        #: plateau exactly. Always created: the saved layout must not depend
        #: on which callbacks a run used.
        self._plateau_state = self.add_variable(
            shape=(4,),
            initializer="zeros",
            dtype="float32",
            aggregation="only_first_replica",
            name="plateau_state",
        )

    # ------------------------------------------------------------------ lr
    @property
    def learning_rate(self):
        return self._get_current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        value = validation.as_real(value)
        if isinstance(value, float):
            validation.check_real("learning_rate", value, low=0.0)
        keras.optimizers.Optimizer.learning_rate.fset(self, value)

    @property
    def learning_rate_scale(self):
        """Factor applied to every learning rate (lowered by ReduceLROnPlateau)."""
        return self._learning_rate_scale

    def _get_current_learning_rate(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            # `iterations` counts updates, also under gradient accumulation.
            value = lr(self.iterations)
        elif isinstance(lr, keras.Variable):
            if lr.dtype == "float32":
                # the usual case, read every step: multiplying the backend
                # tensors directly skips keras.ops' dispatch (~15 us a step
                # on the torch backend)
                return lr.value * self._learning_rate_scale.value
            value = lr.value
        elif callable(lr):
            value = lr()
        else:
            value = lr
        return ops.multiply(
            ops.cast(value, "float32"), self._learning_rate_scale.value
        )

    # --------------------------------------------------------- hyperparams
    def _hyper(self, name, dtype):
        """Current value of hyperparameter ``name`` (a float or a schedule)."""
        value = getattr(self, name)
        if isinstance(value, LearningRateSchedule):
            return ops.cast(value(self.iterations), dtype)
        return value

    def _step(self, dtype):
        """The 1-based number of the update being applied.

        Returned as float32 (float64 for float64 variables), never as a half
        type, where large step counts would overflow: cast what is derived
        from it to the variable's dtype.
        """
        return ops.cast(self.iterations + 1, _scalar_dtype(dtype))

    # ---------------------------------------------------------------- state
    def _slot_specs(self):
        """The slots each variable needs, in saved order. Override."""
        return []

    def _slot_specs_for(self, variable, rule):
        """The slots of one variable, in saved order.

        Defaults to :meth:`_slot_specs`. Override where the state depends on
        the variable (its shape, its rank, its rule): the slots then differ
        from variable to variable and a slot a variable does not have reads
        as absent from the ``state`` its ``_update`` receives. Called once,
        in ``build``; the result must depend only on the config, the
        variable's shape and dtype and ``rule``, because Keras saves the
        state by position.
        """
        return self._slot_specs()

    def _rule_for(self, variable):
        """Which update rule a variable gets, decided once in ``build``.

        The second-rule mechanism: an optimizer that updates some variables
        with another algorithm (Muon hands non-matrix variables to AdamW)
        returns a short string here; ``_update`` reads it back with
        ``self._rules[index]`` (never from the variable, whose name is not
        reliable inside ``update_step`` on TF). Defaults to ``None``.
        """
        return None

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Decided here, by index, because TF hands `update_step` the raw
        # tf.Variable whose name must not be relied on.
        self._decay_mask = [
            bool(self.weight_decay) and self._use_weight_decay(v)
            for v in var_list
        ]
        self._rules = [self._rule_for(v) for v in var_list]
        per_variable = [
            None if self._overwrite_variable_with_gradient(v)
            else self._slot_specs_for(v, rule)
            for v, rule in zip(var_list, self._rules)
        ]
        names = [spec.name for spec in self._slot_specs()]
        for specs in per_variable:
            for spec in specs or ():
                if spec.name not in names:
                    names.append(spec.name)
        slots = {name: [None] * len(var_list) for name in names}
        for index, (variable, specs) in enumerate(zip(var_list,
                                                      per_variable)):
            for spec in specs or ():
                slots[spec.name][index] = self._make_slot(variable, index,
                                                          spec)
        self._slots = slots

    def _make_slot(self, variable, index, spec):
        initializer = keras.initializers.Constant(spec.initial_value)
        if spec.scalar:
            return self.add_variable(
                shape=(), initializer=initializer,
                dtype=_scalar_dtype(variable.dtype),
                name=f"{spec.name}_{index}",
            )
        if spec.shape is not None:
            return self.add_variable(
                shape=spec.shape, initializer=initializer,
                dtype=variable.dtype, name=f"{spec.name}_{index}",
            )
        return self.add_variable_from_reference(
            variable, name=spec.name, initializer=initializer,
        )

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        # Keras checks a `_built` attribute that is never set, so a late call
        # would be silently ignored; ours raises instead.
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` must be called before the "
                "optimizer is built (before the first `apply` or `fit`)."
            )
        super().exclude_from_weight_decay(var_list=var_list,
                                          var_names=var_names)

    def _apply_weight_decay(self, variables):
        """Disabled: weight decay is applied inside ``update_step``."""
        return

    # --------------------------------------------------------------- update
    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """Runs the update for all variables.

        Cross-variable reductions: an optimizer that needs values computed
        from all gradients at once (the global gradient norm of LAMB's
        clipping, say) overrides :meth:`_step_statistics`; its result is
        available to every ``_update`` of this step as ``self._stats``.
        It is computed from the final gradients (after Keras's clipping and,
        under ``tf.distribute``, after the all-reduce), inside the traced
        step on every backend.

        Multi-tensor hook: a subclass (or a backend-specific mixin) that
        defines ``_multi_tensor_update(grads, variables, learning_rate)``
        returning True gets every variable at once, which lets the torch
        backend use ``torch._foreach_*`` kernels. It must be numerically
        equal to the per-variable ``update_step`` (tested).
        """
        if self._has_step_statistics():
            if keras.backend.backend() == "tensorflow":
                return self._tf_update_with_statistics(
                    grads, trainable_variables, learning_rate)
            self._stats = self._step_statistics(grads, trainable_variables)
        fast = getattr(self, "_multi_tensor_update", None)
        if (fast is not None and self.use_multi_tensor is not False
                and self.supports_multi_tensor):
            if fast(grads, trainable_variables, learning_rate):
                return
        super()._backend_update_step(grads, trainable_variables,
                                     learning_rate)

    def _step_statistics(self, grads, variables):
        """Values computed once per step from every gradient. Override.

        ``grads`` and ``variables`` are in the order of the variable list
        (``self._get_variable_index`` maps a variable to its position in
        the built list); return any structure of tensors (a dict of 0-d
        tensors is usual). ``maximize`` and weight decay have not been
        applied to ``grads`` yet.
        """
        return None

    def _has_step_statistics(self):
        return type(self)._step_statistics is not ZooOptimizer._step_statistics

    def _tf_update_with_statistics(self, grads, variables, learning_rate):
        """TF: the all-reduce happens inside Keras's TF update step, so the
        statistics are computed here between the reduce and the merge."""
        import tensorflow as tf

        values = [v.value if isinstance(v, keras.Variable) else v
                  for v in variables]
        grads_and_vars = self._all_reduce_sum_gradients(
            list(zip(grads, values)))
        self._stats = self._step_statistics(
            [g for g, _ in grads_and_vars], variables)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step,
            self._distribution_strategy,
            grads_and_vars,
            learning_rate,
        )

    @property
    def update_path(self):
        """How the last step ran: "fused", "foreach" (the torch multi-tensor
        path) or "per-variable" (``update_step`` once per variable)."""
        kinds = self._multi_tensor.kinds
        if keras.backend.backend() != "torch" or not kinds or \
                not self.supports_multi_tensor or \
                self.use_multi_tensor is False:
            return "per-variable"
        return "+".join(sorted(kinds))

    def _multi_tensor_update(self, grads, variables, learning_rate):
        """The torch backend's foreach/fused path (``multi_tensor.py``);
        returns False, changing nothing, where it does not apply."""
        return multi_tensor.apply(self, grads, variables, learning_rate)

    def _prepare(self, gradient, variable, learning_rate, index):
        """Returns (param, grad, lr) after casting, maximize and weight decay."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        grad = self._math.cast(_densify(gradient), dtype)
        if self.maximize:
            grad = self._math.negative(grad)
        param = variable.value if isinstance(variable, keras.Variable) \
            else variable
        if self._decay_mask[index]:
            wd = self.weight_decay
            if self.decoupled_weight_decay:
                param = param * (1.0 - lr * wd)
            else:
                grad = grad + wd * param
        return param, grad, lr

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        param, grad, lr = self._prepare(gradient, variable, learning_rate,
                                        index)
        state = {
            name: slots[index].value for name, slots in self._slots.items()
            if slots[index] is not None
        }
        new_param, new_state = self._update(param, grad, state, lr, index)
        self.assign(variable, new_param)
        for name, value in new_state.items():
            self.assign(self._slots[name][index], value)

    def _update(self, param, grad, state, lr, index):
        """The algorithm: returns ``(new_param, {slot: new_value})``.

        ``param``, ``grad`` and the slot values are tensors of the variable's
        dtype (weight decay and maximize already applied to ``grad``/``param``),
        ``lr`` is a 0-d tensor of that dtype.

        On the torch backend the same method also runs once for a whole group
        of variables (``multi_tensor.py``): ``param``, ``grad`` and the slots
        are then TensorLists, a scalar slot is one value (or a 1-D tensor of
        one value per variable) and ``index`` is the tuple of the group's
        indices. Combine per-variable values with arithmetic operators and
        ``self._math`` functions only; anything else makes that path decline
        (with a warning) and the per-variable loop run instead.
        """
        raise NotImplementedError

    # --------------------------------------------------------------- saving
    def load_own_variables(self, store):
        """Loads saved state by position; a layout mismatch raises.

        Keras's base only warns ("Skipping variable loading") when the saved
        count differs and then trains from fresh state, and would fail late
        (or broadcast) on a shape mismatch. A built zoo optimizer raises a
        ``ValueError`` naming both layouts instead. An optimizer that is not
        built yet (no slots) keeps Keras's behaviour: it cannot know its
        layout before it sees the model's variables.
        """
        if not self.built:
            return super().load_own_variables(store)
        keys = sorted(store.keys(), key=int)
        saved = [tuple(store[k].shape) for k in keys]
        ours = [tuple(v.shape) for v in self.variables]
        if saved != ours:
            ours_text = ", ".join(
                f"{v.path}{tuple(v.shape)}" for v in self.variables
            )
            raise ValueError(
                f"Saved optimizer state does not match the layout of "
                f"optimizer '{self.name}' ({type(self).__name__}, config "
                f"{self._layout_config()}). Saved: {len(saved)} variables "
                f"with shapes {saved}. This optimizer: {len(ours)} "
                f"variables [{ours_text}]. The optimizer config (e.g. "
                f"`amsgrad`, `momentum`, `centered`, a schedule vs a float "
                f"learning rate) must be the one the state was saved with."
            )
        for key, variable in zip(keys, self.variables):
            variable.assign(store[key])

    def _layout_config(self):
        return {name: _serialize_hyper(getattr(self, name))
                for name in self._hyperparameters
                if not isinstance(getattr(self, name), LearningRateSchedule)}

    # --------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        if isinstance(config["learning_rate"], float):
            # The lr lives in a float32 variable: save the shortest decimal
            # that gives the same float32 (0.05, not 0.05000000074505806).
            config["learning_rate"] = float(
                np.format_float_positional(np.float32(config["learning_rate"]),
                                           unique=True))
        for name in self._hyperparameters:
            config[name] = _serialize_hyper(getattr(self, name))
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for name in cls._hyperparameters:
            if isinstance(config.get(name), dict):
                config[name] = keras.saving.deserialize_keras_object(
                    config[name], custom_objects=custom_objects
                )
        return super().from_config(config, custom_objects=custom_objects)


def _check_base_args(kwargs):
    """Checks the Keras base-class arguments Keras itself leaves unchecked
    (a negative ``clipnorm`` or an ``ema_momentum`` of 5 would otherwise
    train silently wrong; ``gradient_accumulation_steps=0`` would be taken
    as None). Raises in Keras's wording; the values are passed on as given.
    """
    for name in ("clipnorm", "clipvalue", "global_clipnorm",
                 "loss_scale_factor"):
        if kwargs.get(name) is not None:
            validation.check_real(name, kwargs[name], low=0.0,
                                  low_open=True)
    steps = kwargs.get("gradient_accumulation_steps")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
            raise TypeError(
                "Argument `gradient_accumulation_steps` must be an integer "
                ">= 2 or None. Received: gradient_accumulation_steps="
                f"{steps!r} (of type {type(steps).__name__})"
            )
        if steps < 2:
            raise ValueError(
                "Argument `gradient_accumulation_steps` must be an integer "
                f">= 2 or None. Received: gradient_accumulation_steps={steps}"
            )
    if "ema_momentum" in kwargs:
        # checked whether or not `use_ema` is on (Keras checks it only then)
        validation.check_real("ema_momentum", kwargs["ema_momentum"],
                              low=0.0, high=1.0)


def cast_scalar(value, dtype):
    """A Python float stays a Python float (it then takes the dtype of the
    tensor it meets, with no rounding through float32, which is what
    ``ops.cast(0.9, "float64")`` does on TF); a tensor is cast."""
    if isinstance(value, float):
        return value
    return ops.cast(value, dtype)


def one_minus_power(beta, step):
    """``1 - beta**step`` without float32 cancellation.

    For a Python-float ``beta`` close to 1 (Adam's 0.999), ``1 - beta**t`` in
    float32 loses five digits (0.999 is not representable); torch computes it
    in double. ``-expm1(t * log(beta))`` with ``log(beta)`` taken in double
    keeps float32's full precision. A tensor ``beta`` (a schedule's value)
    uses the direct form.
    """
    if isinstance(beta, float):
        if beta == 0.0:
            return ops.ones_like(step)
        return ops.negative(ops.expm1(step * math.log(beta)))
    return 1.0 - ops.power(ops.cast(beta, step.dtype), step)


def _scalar_dtype(dtype):
    # standardize: on TF, update_step sees the raw tf.Variable, whose dtype
    # is a tf.DType (str() gives "<dtype: 'float64'>", not "float64").
    dtype = keras.backend.standardize_dtype(dtype)
    return "float64" if dtype == "float64" else "float32"
