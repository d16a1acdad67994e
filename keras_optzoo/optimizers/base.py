"""`ZooOptimizer`: the one base class of every keras-optzoo optimizer.

What it adds to `keras.optimizers.Optimizer`:

* torch-style weight decay: coupled (L2 added to the gradient) or decoupled
  (``θ ← θ(1 − γλ)`` before the update), applied exactly once inside
  ``update_step``. The Keras base class's own decoupled decay is switched off,
  and ``exclude_from_weight_decay`` is honoured in both modes.
* ``maximize``: the gradient is negated before anything else, as torch does.
* ``weight_decay`` may be a ``LearningRateSchedule`` (scheduled weight
  decay), evaluated per step at the number of updates applied, as the
  learning rate; every optimizer reads the coefficient through
  :meth:`ZooOptimizer._weight_decay_value`.
* Gradient transforms on every optimizer: adaptive gradient clipping
  (``agc_clip_factor``, ``agc_eps``; timm's ``adaptive_clip_grad``) and
  gradient centralization (``gradient_centralization``, ``gc_conv_only``;
  pytorch-optimizer's ``centralize_gradient``), per output unit of the
  torch tensor the variable maps to (``keras_optzoo/layout.py``).

Order of operations in one step (that of the references: timm applies AGC
to ``p.grad`` before ``optimizer.step()``, pytorch-optimizer's Ranger21
negates for ``maximize``, then clips (AGC), then centralizes, and applies
weight decay after that, as its Lion and Adai do with GC):

1. Keras's ``apply``: loss-scale division, gradient accumulation, then
   Keras's clipping (``clipvalue`` / ``clipnorm`` / ``global_clipnorm``);
   under ``tf.distribute`` the all-reduce.
2. Adaptive gradient clipping, then gradient centralization, on every
   gradient (in ``_backend_update_step``, before the step statistics such
   as LAMB's global gradient norm, which timm computes from the clipped
   ``p.grad`` too).
3. ``maximize`` negation (``_prepare``). AGC and GC commute with it
   exactly (a positive scale from sign-free norms; a mean), so this is the
   same as pytorch-optimizer's negate-then-transform.
4. Weight decay: coupled (added to the transformed gradient) or decoupled
   (on the parameter), in ``_prepare``; or, with
   ``weight_decay_in_update``, inside ``_update`` where the algorithm's
   reference applies it.
5. The update rule, then Keras's EMA of the weights.
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
* ``shard_state=True`` (JAX, under ``keras.distribution``): every slot,
  and Keras's EMA copies and gradient accumulators, split along the
  data-parallel mesh axis on their first axis whose size divides by its
  device count (replicated where none does), the weights left in the
  distribution's layout: ZeRO stage 1 (``_sharding.py``). A ValueError on
  TensorFlow and torch; a warning when no distribution is active at build.
* ``get_config`` is generated from the declared ``_hyperparameters``.
* A multi-tensor fast path on the torch backend (``keras_optzoo/fastpath``),
  which runs the same ``_update`` on lists of tensors.

A subclass implements ``_update(param, grad, state, lr, index)``, a pure
function returning the new parameter value and the new slot values. The base
class does the reading, the weight decay, the casting and the writing, so the
same math serves every backend and every execution mode. Inside ``_update``,
per-variable values are combined with arithmetic operators and
``self._math`` (sqrt, maximum, where, ...), so that the torch backend can run
the update on whole lists of variables at once.
"""

import contextlib
import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_optzoo import _loading
from keras_optzoo import fastpath
from keras_optzoo import layout as _layout
from keras_optzoo import param_groups as _param_groups
from keras_optzoo import registry
from keras_optzoo.optimizers import _sharding
from keras_optzoo.optimizers import _transforms
from keras_optzoo.optimizers import validation

_TORCH = keras.backend.backend() == "torch"

# model.load_weights checks a keras-optzoo optimizer's saved layout before
# Keras assigns anything (all or nothing; keras_optzoo/_loading.py)
_loading.install()

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
        dtype: with ``shape``, the slot's dtype when it is not the
            variable's (the uint8 codes of an 8-bit state). Defaults to
            ``None``, the variable's dtype.
    """

    __slots__ = ("name", "initial_value", "scalar", "shape", "dtype")

    def __init__(self, name, initial_value=0.0, scalar=False, shape=None,
                 dtype=None):
        self.name = name
        self.initial_value = float(initial_value)
        self.scalar = scalar
        self.shape = None if shape is None else tuple(int(d) for d in shape)
        self.dtype = dtype


def _is_indexed_slices(value):
    return type(value).__name__ == "IndexedSlices"


def first_index(index):
    """A variable index; the multi-tensor path passes a tuple of indices of
    one param group, which share every static property."""
    return index[0] if isinstance(index, tuple) else index


def _densify(gradient):
    """TF hands Embedding gradients over as IndexedSlices; make them dense
    (JAX BCOO and torch sparse gradients too, see :func:`_densify_sparse`)."""
    if _is_indexed_slices(gradient):
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    return _densify_sparse(gradient)


def _densify_sparse(gradient):
    """A JAX ``BCOO`` / torch sparse gradient as the equal dense tensor.

    Keras's optimizers accept these in ``apply`` / ``stateless_apply``;
    densifying them before anything else (loss-scale division, gradient
    accumulation, clipping, the update) makes every step equal to the dense
    case. TF ``IndexedSlices`` are left to Keras (it all-reduces them as
    such) and are densified in ``update_step``.
    """
    kind = type(gradient).__name__
    if kind == "BCOO" or kind == "BCSR":
        return gradient.todense()
    if kind == "Tensor" and getattr(gradient, "layout", None) is not None:
        import torch

        if gradient.layout != torch.strided:
            return gradient.to_dense()
    return gradient


#: The gradient-transform options every ZooOptimizer takes, and
#: ``shard_state`` (get_config).
_TRANSFORM_OPTIONS = ("agc_clip_factor", "agc_eps", "gradient_centralization",
                      "gc_conv_only", "shard_state")


def _serialize_hyper(value):
    if isinstance(value, LearningRateSchedule):
        return keras.optimizers.schedules.serialize(value)
    return value


class ZooOptimizer(keras.optimizers.Optimizer):
    """Base class of the keras-optzoo optimizers (see the module docstring).

    Subclasses set ``_hyperparameters`` (constructor argument names saved by
    ``get_config``), implement ``_slot_specs`` and ``_update``.

    An optimizer whose reference applies weight decay somewhere other than
    torch's two places (after the update, without the learning rate, inside
    a proximal step...) sets :attr:`weight_decay_in_update`: ``_prepare``
    then casts and negates for ``maximize`` but leaves the decay to
    ``_update``, which asks ``self._decay_mask[index]`` whether the variable
    gets any and reads the coefficient with :meth:`_weight_decay_value`.
    """

    #: Constructor arguments (beyond the Keras base ones) that get_config saves.
    _hyperparameters = ("weight_decay", "maximize")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # param groups: a subclass's own update_step (LazyAdam's) also runs
        # with its variable's group's hyperparameters and learning rate
        if "update_step" in cls.__dict__:
            cls.update_step = _param_groups.grouped(cls.__dict__["update_step"])

    #: Whether the torch multi-tensor path may run this optimizer's
    #: ``_update`` on lists of tensors. Set False on an optimizer whose
    #: update needs what the lazy foreach math cannot express (reductions
    #: along rows, matrix math): the torch backend then runs the
    #: per-variable ``update_step``, and :attr:`update_path` says so.
    #: Whole-tensor reductions (``self._math.norm/sum/mean/max``) are fine,
    #: and so are reductions along axes with one tuple of axes per tensor
    #: (``self._math.sum(x, axis=..., keepdims=True)``, AdamP's rows) and
    #: views of small values (``self._math.reshape/transpose``, Adafactor's
    #: factored slots): see ``keras_optzoo/fastpath/__init__.py``.
    supports_multi_tensor = True

    #: The step statistics (``_step_statistics``) are tensors read only by
    #: ``_update``: the multi-tensor path copies them each step into tensors
    #: it keeps, so that a recorded step can be replayed (Lamb's clip).
    replay_step_statistics = False

    #: Whether ``_update`` applies the weight decay itself (see the class
    #: docstring): ``_prepare`` then applies none. A class with a fused
    #: torch kernel (``fused_kernel``) never gets it while this is True.
    weight_decay_in_update = False

    #: Elementwise functions for per-variable values inside ``_update``
    #: (``self._math.sqrt(v)``): ``keras.ops`` on tensors, lazy foreach nodes
    #: on the multi-tensor path's TensorLists. Scalar math uses ``keras.ops``.
    _math = fastpath.MATH

    def __init__(
        self,
        learning_rate,
        weight_decay=0.0,
        decoupled_weight_decay=False,
        maximize=False,
        agc_clip_factor=None,
        agc_eps=1e-3,
        gradient_centralization=False,
        gc_conv_only=False,
        shard_state=False,
        name=None,
        **kwargs,
    ):
        learning_rate = validation.as_real(learning_rate)
        if isinstance(learning_rate, float) or learning_rate is None:
            # None: ValueError, as Keras raises
            validation.check_real("learning_rate", learning_rate, low=0.0)
        elif not callable(learning_rate):
            raise TypeError(
                "Argument `learning_rate` must be a real number, a "
                "keras.optimizers.schedules.LearningRateSchedule or a "
                f"callable. Received: learning_rate={learning_rate!r}"
            )
        param_groups = kwargs.pop("param_groups", None)
        # the layout rule's per-variable overrides (keras_optzoo/layout.py)
        layouts = _layout.check_overrides(kwargs.pop("layouts", None))
        lr_reference = kwargs.pop("param_groups_lr_reference", None)
        _check_base_args(kwargs)
        if name is None:  # the registry name ("adamw"), not "adam_w"
            name = registry.default_name(type(self))
        # weight_decay=None keeps the Keras base class from applying its own
        # decoupled decay; ours is applied in update_step (exactly once).
        super().__init__(
            learning_rate=learning_rate, weight_decay=None, name=name,
            **kwargs
        )
        # Param groups (keras_optzoo/param_groups.py), resolved in build.
        # Set past Keras's attribute tracking, which would take the
        # variables of a group's list for the optimizer's own.
        object.__setattr__(self, "_param_groups",
                           _param_groups.check_groups(param_groups))
        if lr_reference is None and isinstance(learning_rate, float):
            lr_reference = learning_rate
        object.__setattr__(self, "_param_groups_lr_reference", lr_reference)
        object.__setattr__(self, "_groups", [None])
        object.__setattr__(self, "layouts", layouts)
        # a LearningRateSchedule: scheduled weight decay, read each step
        # with _weight_decay_value (keras #16517)
        self.weight_decay = validation.check_real_or_schedule(
            "weight_decay", weight_decay, low=0.0
        )
        self.decoupled_weight_decay = validation.check_bool(
            "decoupled_weight_decay", decoupled_weight_decay
        )
        self.maximize = validation.check_bool("maximize", maximize)
        # gradient transforms (keras_optzoo/optimizers/_transforms.py)
        self.agc_clip_factor = None if agc_clip_factor is None else \
            validation.check_real("agc_clip_factor", agc_clip_factor,
                                  low=0.0, low_open=True)
        self.agc_eps = validation.check_real("agc_eps", agc_eps, low=0.0)
        self.gradient_centralization = validation.check_bool(
            "gradient_centralization", gradient_centralization)
        self.gc_conv_only = validation.check_bool("gc_conv_only",
                                                  gc_conv_only)
        # ZeRO stage 1 (keras_optzoo/optimizers/_sharding.py)
        self.shard_state = validation.check_bool("shard_state", shard_state)
        if self.shard_state and keras.backend.backend() != "jax":
            raise ValueError(_sharding.unsupported_backend_message(
                keras.backend.backend()))
        if self.gc_conv_only and not self.gradient_centralization:
            raise ValueError(
                "Argument `gc_conv_only=True` needs "
                "`gradient_centralization=True`. Received: gc_conv_only="
                "True, gradient_centralization=False")
        #: None: the fast multi-tensor path is used where one exists for the
        #: backend (torch); False: always the generic per-variable
        #: ``update_step``; "foreach": the multi-tensor path without torch's
        #: fused kernels.
        self.use_multi_tensor = None
        self._multi_tensor = fastpath.State()
        self._learning_rate_scale = self.add_variable(
            shape=(),
            initializer="ones",
            dtype="float32",
            aggregation="only_first_replica",
            name="learning_rate_scale",
        )
        #: ReduceLROnPlateau's counters [has_best, best (a double as four
        #: 16-bit words), num_bad_epochs, cooldown_counter, the double rate
        #: it last set (four words)], kept here so that a resumed run
        #: continues the plateau exactly (layout:
        #: keras_optzoo/callbacks/_common.py). Always created: the saved
        #: layout must not depend on which callbacks a run used.
        self._plateau_state = self.add_variable(
            shape=(11,),
            initializer="zeros",
            dtype="float32",
            aggregation="only_first_replica",
            name="plateau_state",
        )

    # ------------------------------------------------------------------ lr
    @property
    def learning_rate(self):
        """Keras's: the tracked ``keras.Variable`` for a float rate (so
        ``.assign``, ``.value`` and ``.numpy()`` work); for a schedule or a
        callable, its current value times ``learning_rate_scale``. The update
        always uses the rate times ``learning_rate_scale`` (see
        :meth:`_backend_update_step`)."""
        if isinstance(self._learning_rate, keras.Variable):
            return self._learning_rate
        return self._scaled_learning_rate(self._get_current_learning_rate())

    @learning_rate.setter
    def learning_rate(self, value):
        value = validation.as_real(value)
        if isinstance(value, float) or value is None:
            validation.check_real("learning_rate", value, low=0.0)
        keras.optimizers.Optimizer.learning_rate.fset(self, value)

    @property
    def learning_rate_scale(self):
        """Factor applied to every learning rate (lowered by ReduceLROnPlateau)."""
        return self._learning_rate_scale

    def _get_current_learning_rate(self):
        """The rate before the plateau scale, as Keras's base returns it
        (the Variable for a float rate)."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            # `iterations` counts updates, also under gradient accumulation.
            return lr(self.iterations)
        if isinstance(lr, keras.Variable):
            return lr
        if callable(lr):
            return lr()
        return lr

    def _scaled_learning_rate(self, value):
        """``value`` (a rate, the Variable included) times the tracked
        ``learning_rate_scale``: the rate an update uses."""
        scale = self._learning_rate_scale.value
        if isinstance(value, keras.Variable):
            if value.dtype == "float32":
                # the usual case, read every step: multiplying the backend
                # tensors directly skips keras.ops' dispatch (~15 us a step
                # on the torch backend)
                return value.value * scale
            value = value.value
        return ops.multiply(ops.cast(value, "float32"), scale)

    # --------------------------------------------------------- hyperparams
    def _hyper(self, name, dtype):
        """Current value of hyperparameter ``name`` (a float or a schedule)."""
        value = getattr(self, name)
        if isinstance(value, LearningRateSchedule):
            return ops.cast(value(self.iterations), dtype)
        return value

    def _weight_decay_value(self, dtype):
        """The weight decay coefficient of this step: ``weight_decay`` as a
        Python float, or a schedule's value (a 0-d tensor of ``dtype``)
        evaluated at the number of updates applied, as the learning rate's.
        Every optimizer reads the coefficient through this method; whether a
        variable gets decay at all is ``self._decay_mask[index]``."""
        return self._hyper("weight_decay", dtype)

    # ------------------------------------------------- gradient transforms
    def _has_gradient_transforms(self):
        return (getattr(self, "agc_clip_factor", None) is not None
                or getattr(self, "gradient_centralization", False))

    def _transform_gradients(self, grads, variables, indices=None):
        """Adaptive gradient clipping, then gradient centralization, on the
        list of (clipped, accumulated, all-reduced) gradients, before the
        step statistics and the update (see the module docstring).
        ``indices``: the variables' positions in the built list, where
        ``variables`` holds their values rather than the variables."""
        if indices is None:
            indices = [self._get_variable_index(v) for v in variables]
        out = []
        for grad, variable, index in zip(grads, variables, indices):
            if grad is None:
                out.append(grad)
                continue
            param = variable.value if isinstance(variable, keras.Variable) \
                else variable
            grad = ops.cast(_densify(grad),
                            keras.backend.standardize_dtype(param.dtype))
            out.append(_transforms.transform(self, grad, param,
                                             self._layouts[index]))
        return out

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

    def layout_of(self, variable):
        """The :class:`keras_optzoo.layout.Layout` of a variable (of the
        built list, by position, or a variable itself, from its path and
        shape and the ``layouts`` overrides): how it maps to the tensor
        torch would hold. Every shape-dependent computation reads the
        variable through it; inside ``_update`` use
        ``self.layout_of(index)`` (decided in ``build``)."""
        if isinstance(variable, int):
            return self._layouts[variable]
        return _layout.resolve(variable, self.layouts)

    def _rule_for(self, variable):
        """Which update rule a variable gets, decided once in ``build``.

        The second-rule mechanism: an optimizer that updates some variables
        with another algorithm (Muon hands non-matrix variables to AdamW)
        returns a short string here; ``_update`` reads it back with
        ``self._rule(index)`` (never from the variable, whose name is not
        reliable inside ``update_step`` on TF). Defaults to ``None``.
        The torch multi-tensor path groups variables by rule (and by the
        slots ``_slot_specs_for`` gives them), so one ``_update`` call
        takes one branch for its whole group.
        """
        return None

    def _rule(self, index):
        """The update rule of the variable(s) at ``index`` (an index, or on
        the multi-tensor path the tuple of one group's indices, which share
        their rule)."""
        return self._rules[first_index(index)]

    def build(self, var_list):
        if self.built:
            return
        # What an unbuilt optimizer saves (iterations, learning_rate, ...):
        # see load_own_variables.
        self._unbuilt_variable_count = len(self._variables)
        # shard_state: every variable made by super().build (Keras's EMA
        # copies and gradient accumulators) and by the slot loop below
        # (add_variable, whichever _make_slot makes it) is laid out along
        # the data-parallel mesh axis (keras_optzoo/optimizers/_sharding.py)
        state_distribution = (_sharding.active() if self.shard_state
                              else None)
        with self._laying_out_state(state_distribution):
            super().build(var_list)
        # Param groups: each variable's group (self._group_of); the mask,
        # rules and slots below are decided with its group's
        # hyperparameters in effect (param_groups.scope).
        _param_groups.resolve(self, var_list)
        # Decided here, by index, because TF hands `update_step` the raw
        # tf.Variable whose name must not be relied on.
        self._decay_mask = self._weight_decay_mask(var_list)
        # How each variable maps to its torch tensor (the layout rule):
        # every shape-dependent computation reads it by index.
        self._layouts = [_layout.resolve(v, self.layouts) for v in var_list]
        self._rules = []
        per_variable = []
        for index, variable in enumerate(var_list):
            with _param_groups.scope(self, index):
                rule = self._rule_for(variable)
                self._rules.append(rule)
                per_variable.append(
                    None if self._overwrite_variable_with_gradient(variable)
                    else self._slot_specs_for(variable, rule))
        names = [spec.name for spec in self._slot_specs()]
        for specs in per_variable:
            for spec in specs or ():
                if spec.name not in names:
                    names.append(spec.name)
        slots = {name: [None] * len(var_list) for name in names}
        with self._laying_out_state(state_distribution):
            for index, (variable, specs) in enumerate(zip(var_list,
                                                          per_variable)):
                with _param_groups.scope(self, index):
                    for spec in specs or ():
                        slots[spec.name][index] = self._make_slot(
                            variable, index, spec)
        self._slots = slots

    @contextlib.contextmanager
    def _laying_out_state(self, distribution):
        """While open, :meth:`add_variable` gives new variables the sharded
        layout of ``distribution`` (None: Keras's layout); the attribute is
        set past Keras's attribute tracking (``object.__setattr__``)."""
        object.__setattr__(self, "_state_distribution", distribution)
        try:
            yield
        finally:
            object.__setattr__(self, "_state_distribution", None)

    def add_variable(self, shape, initializer="zeros", dtype=None,
                     aggregation="none", layout=None, name=None):
        """Keras's; while ``build`` creates the slots of an optimizer with
        ``shard_state=True``, the layout is the sharded one of
        :func:`keras_optzoo.optimizers._sharding.state_layout` (from the
        reference variable's layout that ``add_variable_from_reference``
        passes, or from a replicated one for a slot of its own shape)."""
        distribution = getattr(self, "_state_distribution", None)
        if distribution is not None:
            layout = _sharding.state_layout(distribution, shape, layout)
        return super().add_variable(
            shape=shape, initializer=initializer, dtype=dtype,
            aggregation=aggregation, layout=layout, name=name)

    def _make_slot(self, variable, index, spec):
        # a float64 constant: Keras casts a Python float to float64 through
        # float32 on TF (a 1e-6 start value would be off by 1e-14)
        initializer = keras.initializers.Constant(
            np.float64(spec.initial_value))
        if spec.scalar:
            return self.add_variable(
                shape=(), initializer=initializer,
                dtype=_scalar_dtype(variable.dtype),
                name=f"{spec.name}_{index}",
            )
        if spec.shape is not None:
            return self.add_variable(
                shape=spec.shape, initializer=initializer,
                dtype=spec.dtype or variable.dtype,
                name=f"{spec.name}_{index}",
            )
        return self.add_variable_from_reference(
            variable, name=spec.name, initializer=initializer,
        )

    def _decays(self, index):
        """Whether the variable(s) at ``index`` get weight decay (an index,
        or on the multi-tensor path the tuple of a param group's indices,
        which share the mask)."""
        return self._decay_mask[first_index(index)]

    def _weight_decay_mask(self, var_list):
        """Per variable: whether weight decay applies (decided in build)."""
        mask = []
        for index, variable in enumerate(var_list):
            with _param_groups.scope(self, index):  # the group's decay
                mask.append(bool(self.weight_decay)
                            and self._use_weight_decay(variable))
        return mask

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras's, decided in ``build``.

        After ``build`` a call is accepted when it leaves every variable's
        decay as built (a repeated call naming the same variables: under
        ``tf.distribute``, ``strategy.run`` calls it once per replica and the
        first replica builds the optimizer); a call that would change the
        built mask raises (Keras would ignore it silently).
        """
        if not self.built:
            super().exclude_from_weight_decay(var_list=var_list,
                                              var_names=var_names)
            return
        keep = {name: getattr(self, name) for name in (
            "_exclude_from_weight_decay",
            "_exclude_from_weight_decay_pattern",
            "_exclude_from_weight_decay_cache") if hasattr(self, name)}
        super().exclude_from_weight_decay(var_list=var_list,
                                          var_names=var_names)
        same = (self._weight_decay_mask(self._trainable_variables)
                == list(self._decay_mask))
        for name in ("_exclude_from_weight_decay",
                     "_exclude_from_weight_decay_pattern",
                     "_exclude_from_weight_decay_cache"):
            if name in keep:
                setattr(self, name, keep[name])
            elif hasattr(self, name):
                delattr(self, name)
        if not same:
            raise ValueError(
                "`exclude_from_weight_decay()` must be called before the "
                "optimizer is built (before the first `apply` or `fit`): "
                "after that, only a call that excludes the same variables "
                "is accepted. Received: var_list="
                f"{[getattr(v, 'path', v) for v in var_list or ()]}, "
                f"var_names={var_names}"
            )

    def _apply_weight_decay(self, variables):
        """Disabled: weight decay is applied inside ``update_step``."""
        return

    def apply(self, grads, trainable_variables=None):
        """Keras's ``apply``; JAX ``BCOO`` and torch sparse gradients are
        made dense first (results equal to the dense case).

        On the torch backend a built optimizer that uses none of Keras's
        per-step bookkeeping (accumulation, EMA, loss scaling, clipping,
        constraints, a subset of its variables) takes the lean step of
        ``keras_optzoo/fastpath/lean.py``: the same update and counter
        increment without ~50-100 us of Python per step."""
        if _TORCH and fastpath.lean.try_apply(self, grads,
                                              trainable_variables):
            return None
        grads = [None if g is None else _densify_sparse(g) for g in grads]
        return super().apply(grads, trainable_variables)

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

        Learning rate: Keras passes ``self.learning_rate``. For a float rate
        that is the Variable, multiplied here by ``learning_rate_scale``; a
        schedule's (or callable's) value comes already scaled from the
        property. Everything below receives the rate the update uses.
        """
        if isinstance(learning_rate, keras.Variable):
            learning_rate = self._scaled_learning_rate(learning_rate)
        transforms = self._has_gradient_transforms()
        if transforms or self._has_step_statistics():
            if keras.backend.backend() == "tensorflow":
                return self._tf_update_with_statistics(
                    grads, trainable_variables, learning_rate)
        if transforms:
            grads = self._transform_gradients(grads, trainable_variables)
        if self._has_step_statistics():
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
        applied to ``grads`` yet. The variables and the slots
        (``self._slots[name][index]``) may be read: they hold their values
        from before this step's update, on every backend and path. An
        optimizer with state shared by all variables (Prodigy's step size
        ``d``) computes its new value here and writes it once, after the
        update (``keras_optzoo/optimizers/_global_state.py``).
        """
        return None

    def _has_step_statistics(self):
        return type(self)._step_statistics is not ZooOptimizer._step_statistics

    def _tf_update_with_statistics(self, grads, variables, learning_rate):
        """TF: the all-reduce happens inside Keras's TF update step, so the
        gradient transforms and the statistics are computed here between
        the reduce and the merge."""
        import tensorflow as tf

        values = [v.value if isinstance(v, keras.Variable) else v
                  for v in variables]
        grads_and_vars = self._all_reduce_sum_gradients(
            list(zip(grads, values)))
        if self._has_gradient_transforms():
            reduced = self._transform_gradients(
                [g for g, _ in grads_and_vars],
                [v for _, v in grads_and_vars],
                [self._get_variable_index(v) for v in variables])
            grads_and_vars = list(zip(reduced,
                                      [v for _, v in grads_and_vars]))
        if self._has_step_statistics():
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
        """The torch backend's foreach/fused path (``keras_optzoo/fastpath``);
        returns False, changing nothing, where it does not apply."""
        return fastpath.apply(self, grads, variables, learning_rate)

    def _prepare(self, gradient, variable, learning_rate, index):
        """Returns (param, grad, lr) after casting, maximize and weight decay
        (none with :attr:`weight_decay_in_update`)."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        grad = self._math.cast(_densify(gradient), dtype)
        if self.maximize:
            grad = self._math.negative(grad)
        param = variable.value if isinstance(variable, keras.Variable) \
            else variable
        if self._decay_mask[index] and not self.weight_decay_in_update:
            wd = self._weight_decay_value(dtype)
            if self.decoupled_weight_decay:
                param = param * (1.0 - lr * wd)
            else:
                grad = grad + wd * param
        return param, grad, lr

    @_param_groups.grouped  # runs with the variable's group's values
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
        of variables (``keras_optzoo/fastpath``): ``param``, ``grad`` and the
        slots are then TensorLists, a scalar slot is one value (or a 1-D
        tensor of one value per variable) and ``index`` is the tuple of the
        group's indices. Combine per-variable values with arithmetic operators and
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
        ``ValueError`` naming both layouts instead, with one exception:
        state saved by an optimizer that was not built yet (a model compiled
        and saved before training) holds only the variables created before
        ``build`` (``iterations``, ``learning_rate``, ``learning_rate_scale``,
        ``plateau_state``, ...). That is restored and the slots keep their
        fresh values, as a Keras optimizer starts from fresh state. It is
        told from a real mismatch by its count (that of this optimizer's
        variables before ``build``), their shapes and a saved iteration
        count of 0. An optimizer that is not built yet (no slots) keeps
        Keras's behaviour: it cannot know its layout before it sees the
        model's variables. A ``plateau_state`` saved in the older (4,)
        layout is converted.
        """
        keys = sorted(store.keys(), key=int)
        variables = self.variables
        saved = self._upgrade_saved_state([store[k] for k in keys],
                                          variables)
        targets = self._load_targets([tuple(v.shape) for v in saved],
                                     lambda: saved[0])
        if targets is None:
            return super().load_own_variables(store)
        for value, variable in zip(saved, targets):
            variable.assign(value)

    def _load_targets(self, shapes, first_value):
        """The variables saved state of ``shapes`` loads into (None:
        Keras's own loading, for an optimizer that is not built); raises
        the layout error on a mismatch. ``first_value()`` reads the first
        saved value (the iteration count). Also run on a file before
        anything of it is loaded (``keras_optzoo/_loading.py``)."""
        variables = self.variables
        shapes = self._upgrade_saved_shapes(shapes, variables)
        ours = [tuple(v.shape) for v in variables]
        if not self.built and len(shapes) != len(variables):
            return None
        if shapes == ours:
            return variables
        count = getattr(self, "_unbuilt_variable_count", None)
        if (self.built and count is not None and len(shapes) == count
                and shapes == ours[:count] and count > 0
                and int(np.asarray(first_value())) == 0):
            return variables[:count]  # saved before it was built
        raise self._layout_error(shapes)

    def _upgrade_saved_shapes(self, shapes, variables):
        """The shapes after :meth:`_upgrade_saved_state`."""
        from keras_optzoo.callbacks import _common

        index = next((i for i, v in enumerate(variables)
                      if v is self._plateau_state), None)
        if (index is not None and index < len(shapes)
                and tuple(shapes[index])
                == (_common.LEGACY_PLATEAU_STATE_SIZE,)):
            shapes = list(shapes)
            shapes[index] = tuple(self._plateau_state.shape)
        return [tuple(s) for s in shapes]

    def _upgrade_saved_state(self, saved, variables):
        """Converts a ``plateau_state`` saved in the older (4,) layout."""
        from keras_optzoo.callbacks import _common

        index = next((i for i, v in enumerate(variables)
                      if v is self._plateau_state), None)
        if (index is not None and index < len(saved)
                and tuple(saved[index].shape)
                == (_common.LEGACY_PLATEAU_STATE_SIZE,)):
            saved = list(saved)
            saved[index] = _common.upgrade_plateau_state(
                np.asarray(saved[index]))
        return saved

    def _layout_error(self, saved):
        ours = [tuple(v.shape) for v in self.variables]
        ours_text = ", ".join(
            f"{v.path}{tuple(v.shape)}" for v in self.variables
        )
        return ValueError(
            f"Saved optimizer state does not match the layout of "
            f"optimizer '{self.name}' ({type(self).__name__}, config "
            f"{self._layout_config()}). Saved: {len(saved)} variables "
            f"with shapes {saved}. This optimizer: {len(ours)} "
            f"variables [{ours_text}]. The optimizer config (e.g. "
            f"`amsgrad`, `momentum`, `centered`, a schedule vs a float "
            f"learning rate) must be the one the state was saved with."
        )

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
        for name in _TRANSFORM_OPTIONS:
            config[name] = getattr(self, name)
        if self.layouts is not None:
            config["layouts"] = dict(self.layouts)
        if self._param_groups:  # (keras_optzoo/param_groups.py)
            config["param_groups"] = _param_groups.serialize(
                self._param_groups)
            if self._param_groups_lr_reference is not None:
                config["param_groups_lr_reference"] = \
                    self._param_groups_lr_reference
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

    def group_learning_rates(self):
        """Every param group's learning rate for the next update, as a dict
        of Python floats: ``{"default": rate, "param_groups[0]": rate,
        ...}``, torch's ``[g["lr"] for g in optimizer.param_groups]``.

        ``"default"`` is the rate of the variables no group matches (the
        optimizer's own), ``"param_groups[i]"`` that of the constructor's
        group ``i``. Each is evaluated at ``iterations``: the schedule's
        value (or the float rate) times ``learning_rate_scale``
        (ReduceLROnPlateau) times the group's factor
        (keras_optzoo/param_groups.py). With ``param_groups`` the optimizer
        must be built first. Reads a few eager values: call it between
        steps (a callback), not inside a compiled step.
        """
        return _param_groups.learning_rates(self)


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
