"""Lookahead, a wrapper around any optimizer, as timm's `Lookahead`."""


import keras
import numpy as np
from keras import ops

from keras_optzoo import registry
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import _check_base_args
from keras_optzoo.registry import register_optimizer

#: The Keras base-class arguments; the wrapper owns them (the inner
#: optimizer's own clipping, EMA, accumulation and loss scaling would be
#: bypassed, so they are refused there).
_BASE_ARGS = ("clipnorm", "clipvalue", "global_clipnorm", "use_ema",
              "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
              "gradient_accumulation_steps")


def _active_base_args(optimizer):
    out = []
    for name in ("clipnorm", "clipvalue", "global_clipnorm",
                 "loss_scale_factor", "gradient_accumulation_steps"):
        if getattr(optimizer, name, None) is not None:
            out.append(name)
    if getattr(optimizer, "use_ema", False):
        out.append("use_ema")
    return out


@register_optimizer(
    "lookahead",
    "Lookahead around any optimizer (timm 1.0.31 Lookahead)",
    presets={
        "ranger": ({"optimizer": "radam", "beta_1": 0.95, "epsilon": 1e-5},
                   "Ranger: Lookahead(RAdam(beta_1=0.95, epsilon=1e-5)), "
                   "k=6, alpha=0.5"),
    },
)
class Lookahead(keras.optimizers.Optimizer):
    r"""Lookahead, as timm 1.0.31's `timm.optim.lookahead.Lookahead(base,
    alpha, k)`: the inner optimizer takes every step on the fast weights
    $\theta$; every `sync_period` ($k$) steps the slow weights $\phi$ move
    towards them and the fast weights restart from there:

    $$\phi \leftarrow \phi + \alpha(\theta - \phi),\qquad
      \theta \leftarrow \phi\qquad (t \bmod k = 0)$$

    As in timm, $\phi$ is created at the first synchronisation ($t = k$) as a
    copy of $\theta_k$, so that first synchronisation changes nothing (the
    paper starts $\phi$ at $\theta_0$).

    `Lookahead` is a Keras optimizer itself: `model.compile(optimizer=
    oz.Lookahead(oz.AdamW(...)))`. Its `variables` are its own (the step
    counter, EMA and accumulation state when enabled, one slow copy of every
    trained variable) followed by the inner optimizer's, so `.keras` files
    and `stateless_apply` (JAX) carry both. `learning_rate`,
    `learning_rate_scale` (keras-optzoo inner optimizers) and
    `exclude_from_weight_decay` are the inner optimizer's, and
    `inner_optimizer` is the wrapped one (the keras-optzoo callbacks find
    it there). Clipping, EMA, gradient accumulation and loss scaling are
    the wrapper's arguments (EMA then averages the weights after the
    synchronisation); an inner optimizer that has them is refused.

    Differs from `keras.optimizers` (Keras has no Lookahead) and from TF
    Addons' `tfa.optimizers.Lookahead`, whose slow weights start at
    $\theta_0$ (the first synchronisation moves the weights). Differs from
    `optax.lookahead`, which keeps both weight sets in the parameters and
    also starts the slow weights at $\theta_0$.

    Args:
        optimizer: The optimizer to wrap: a Keras optimizer (any
            keras-optzoo one, or a Keras built-in), a keras-optzoo registry
            name ("adamw", then `**kwargs` other than the base arguments are
            its constructor arguments) or a serialized optimizer.
            Required.
        sync_period: Int >= 1, timm's `k`. Defaults to `6`.
        slow_step_size: Float in [0, 1], timm's `alpha`. Defaults to `0.5`.
        **kwargs: The Keras base arguments (`clipnorm`, `clipvalue`,
            `global_clipnorm`, `use_ema`, `ema_momentum`,
            `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`, `name`), applied by the wrapper;
            with `optimizer` given by name, also the inner optimizer's
            arguments.

    References:
        - Zhang, Lucas, Hinton and Ba, 2019, "Lookahead Optimizer: k steps
          forward, 1 step back".
        - timm (`timm/optim/lookahead.py`), from alphadl/lookahead.pytorch.
    """

    def __init__(self, optimizer=None, sync_period=6, slow_step_size=0.5,
                 name=None, **kwargs):
        base = {k: kwargs.pop(k) for k in list(kwargs) if k in _BASE_ARGS}
        if optimizer is None:
            raise ValueError(
                "Lookahead needs the optimizer to wrap: "
                "`Lookahead(oz.AdamW(...))`, or by name "
                "`Lookahead('adamw', learning_rate=...)` / "
                "`oz.get('lookahead', optimizer='adamw')`. Received: "
                "optimizer=None")
        if isinstance(optimizer, (str, dict)):
            if isinstance(optimizer, dict) and kwargs:
                raise ValueError(
                    f"Argument(s) not recognized: {kwargs} (an optimizer "
                    "given as a config takes no further arguments)")
            optimizer = registry.get(optimizer, **kwargs)
        elif kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "Argument `optimizer` must be a keras.optimizers.Optimizer, "
                "a registry name or a serialized optimizer. Received: "
                f"optimizer={optimizer!r}")
        if isinstance(optimizer, Lookahead) or getattr(
                optimizer, "inner_optimizer", None) is not None:
            raise ValueError(
                "Argument `optimizer` must not be a wrapper (Lookahead, "
                "LossScaleOptimizer). Received: "
                f"optimizer={type(optimizer).__name__}")
        active = _active_base_args(optimizer)
        if active:
            raise ValueError(
                f"The wrapped optimizer sets {', '.join(active)}: set "
                "clipping, EMA, gradient accumulation and loss scaling on "
                "the Lookahead instead (it applies them around the whole "
                "step).")
        sync_period = validation.check_int("sync_period", sync_period, low=1)
        slow_step_size = validation.check_real(
            "slow_step_size", slow_step_size, low=0.0, high=1.0)
        _check_base_args(base)
        if name is None:  # "lookahead", as the registry
            name = registry.default_name(type(self))
        # The learning rate is the inner optimizer's: a callable keeps the
        # base class from creating a variable of its own.
        super().__init__(learning_rate=self._inner_learning_rate, name=name,
                         **base)
        self.inner_optimizer = optimizer
        self.sync_period = int(sync_period)
        self.slow_step_size = slow_step_size

    def _inner_learning_rate(self):
        return self.inner_optimizer.learning_rate

    # ----------------------------------------------------- inner's settings
    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def learning_rate_scale(self):
        """The inner optimizer's factor (lowered by ReduceLROnPlateau)."""
        return self.inner_optimizer.learning_rate_scale

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list=var_list,
                                                       var_names=var_names)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    # ---------------------------------------------------------------- state
    def build(self, var_list):
        if self.built:
            return
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        # what the wrapper itself saves before it is built (load_own_variables)
        self._unbuilt_own_count = len(self._variables)
        super().build(var_list)
        self._slow = [
            self.add_variable_from_reference(v, name="lookahead_slow")
            for v in var_list
        ]

    # --------------------------------------------------------------- update
    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        inner = self.inner_optimizer
        # (a no-op for keras-optzoo optimizers; Keras built-ins decay here)
        inner._apply_weight_decay(trainable_variables)
        inner._backend_update_step(grads, trainable_variables, learning_rate)
        inner._iterations.assign_add(1)
        # the number of this update (the wrapper's counter moves after it)
        step = ops.add(ops.cast(self.iterations, "int32"), 1)
        sync = ops.equal(ops.mod(step, self.sync_period), 0)
        first = ops.equal(step, self.sync_period)
        alpha = self.slow_step_size
        for variable in trainable_variables:
            slow = self._slow[self._get_variable_index(variable)]
            fast = variable.value if isinstance(variable, keras.Variable) \
                else variable
            start = ops.where(first, fast, slow.value)
            new_slow = start + alpha * (fast - start)
            slow.assign(ops.where(sync, new_slow, slow.value))
            self.assign(variable, ops.where(sync, new_slow, fast))

    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError(
            "Lookahead updates through its inner optimizer")

    # --------------------------------------------------------------- saving
    def load_own_variables(self, store):
        """Loads the saved state (its own variables, then the inner
        optimizer's, by position); a layout mismatch raises.

        Keras's base only warns ("Skipping variable loading") when the
        saved count differs. A built Lookahead raises a ``ValueError``
        naming both layouts instead, except for state saved before the
        first step (a model compiled and saved before training: the
        wrapper's step count and the inner optimizer's variables created
        before ``build``), which keeps Keras's behaviour.
        """
        keys = sorted(store.keys(), key=int)
        saved = [store[k] for k in keys]
        targets = self._load_targets([tuple(v.shape) for v in saved],
                                     lambda: saved[0])
        if targets is None:
            return super().load_own_variables(store)
        for value, variable in zip(saved, targets):
            variable.assign(value)

    def _load_targets(self, shapes, first_value):
        """The variables saved state of ``shapes`` loads into (None:
        Keras's own loading); raises on a mismatch. Also run on a file
        before anything of it is loaded (``keras_optzoo/_loading.py``)."""
        variables = self.variables
        ours = [tuple(v.shape) for v in variables]
        shapes = [tuple(s) for s in shapes]
        if shapes == ours:
            return variables
        if not self.built:
            return None
        own = self._unbuilt_own_count
        inner = [tuple(v.shape) for v in self.inner_optimizer.variables]
        if (len(shapes) > own and shapes[:own] == ours[:own]
                and shapes[own:] == inner[:len(shapes) - own]
                and int(np.asarray(first_value())) == 0):
            return None  # saved before the first step
        ours_text = ", ".join(f"{v.path}{tuple(v.shape)}" for v in variables)
        raise ValueError(
            f"Saved optimizer state does not match the layout of optimizer "
            f"'{self.name}' (Lookahead around "
            f"{type(self.inner_optimizer).__name__}, sync_period="
            f"{self.sync_period}). Saved: {len(shapes)} variables with "
            f"shapes {shapes}. This optimizer: {len(ours)} variables "
            f"[{ours_text}]. The state must be saved with the same "
            "optimizer (a Lookahead around the same inner optimizer with "
            "the same config).")

    # --------------------------------------------------------------- config
    def get_config(self):
        return {
            "name": self.name,
            "optimizer": keras.optimizers.serialize(self.inner_optimizer),
            "sync_period": self.sync_period,
            "slow_step_size": self.slow_step_size,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("optimizer"), dict):
            config["optimizer"] = keras.optimizers.deserialize(
                config["optimizer"], custom_objects=custom_objects)
        return cls(**config)
