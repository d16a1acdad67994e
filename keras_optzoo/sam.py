"""Sharpness-aware minimization (SAM, ASAM) as a Keras model wrapper.

SAM needs two gradient evaluations per step, so it lives in the train step,
not in the optimizer: :class:`SAMModel` wraps any Keras model and replaces
its `train_step` (one implementation per backend, each compiled as Keras
compiles its own: `jax.jit`, `tf.function(jit_compile=...)`, eager torch),
and it works with any optimizer given to `compile`.
"""

import keras
from keras import ops

from keras_optzoo.optimizers import validation

PACKAGE = "keras_optzoo"


def _is_float(variable):
    return "float" in keras.backend.standardize_dtype(variable.dtype)


def _perturbation(grads, params, rho, adaptive, epsilon):
    """pytorch_optimizer's `SAM.first_step`:

    e_w = (p^2 if adaptive else 1) * g * rho / (||(|p| if adaptive) g|| + eps)
    """
    squares = []
    for g, p in zip(grads, params):
        g = ops.cast(g, "float32")
        if adaptive:
            g = g * ops.abs(ops.cast(p, "float32"))
        squares.append(ops.sum(ops.square(g)))
    norm = ops.sqrt(ops.sum(ops.stack(squares))) + epsilon
    scale = rho / norm
    out = []
    for g, p in zip(grads, params):
        e = g * ops.cast(scale, g.dtype)
        if adaptive:
            e = ops.square(p) * e
        out.append(e)
    return out


def _unscale_for_replicas(tf, loss):
    """The loss times the number of replicas under a ``tf.distribute``
    strategy, for the loss tracker: what Keras's own TF train step does
    (``unscale_loss_for_distribution``, a private Keras function; written
    here with tf.distribute's public API so no Keras internals are used)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = ops.multiply(loss, ops.cast(replicas, loss.dtype))
    return loss


@keras.saving.register_keras_serializable(package=PACKAGE)
class SAMModel(keras.Model):
    r"""Trains the wrapped model with sharpness-aware minimization (Foret et
    al.) or its adaptive form ASAM (Kwon et al.), as
    `pytorch_optimizer.SAM(params, base_optimizer, rho, adaptive)` with its
    `first_step` / `second_step`.

    Each training step computes the gradient $g$ at the weights $w$,
    moves to the worst point nearby,

    $$e = \rho\,\frac{T^2 g}{\lVert T g\rVert + \epsilon},\qquad
      T = \mathrm{diag}(|w|)\ \text{(adaptive)}\ \text{or}\ I,$$

    computes the gradient again at $w + e$, restores $w$ exactly and gives
    that second gradient to the optimizer (any Keras or keras-optzoo
    optimizer, with its clipping, schedule, EMA or loss scaling). The norm
    is over all trained weights together.

        model = oz.sam.SAMModel(keras.Sequential([...]), rho=0.05)
        model.compile(optimizer=oz.SGD(0.1, momentum=0.9), loss=...)
        model.fit(x, y)

    The reported loss and metrics are those of the first pass (at $w$), as
    torch users log the loss of their first closure. Non-trainable
    floating-point weights (BatchNormalization moving statistics) keep the
    values of the first pass: the second pass does not update them, as
    pytorch_optimizer's `disable_running_stats` recipe does; integer ones
    (random seed states) advance in both passes, so dropout draws a new mask
    for the second pass, as torch does. `predict`, `evaluate`, `save` and
    `load_model` (no `custom_objects` needed) work as for any model; the
    wrapped model is `model.inner`.

    With `tf.distribute` each replica perturbs with its own gradient
    (the m-sharpness of the SAM paper), not the all-reduced one.

    Args:
        model: The Keras model to train. Required.
        rho: Float >= 0, the neighbourhood radius. Defaults to `0.05`
            (ASAM's paper uses larger values, e.g. `2.0`).
        adaptive: Bool, ASAM. Defaults to `False`.
        epsilon: Float >= 0, added to the norm (pytorch_optimizer's
            `perturb_eps`). Defaults to `1e-12`.
        **kwargs: `name` and the other `keras.Model` arguments.

    References:
        - Foret et al., 2021, "Sharpness-Aware Minimization for Efficiently
          Improving Generalization".
        - Kwon et al., 2021, "ASAM: Adaptive Sharpness-Aware Minimization
          for Scale-Invariant Learning of Deep Neural Networks".
        - pytorch_optimizer 4.1 (`pytorch_optimizer/optimizer/sam.py`).
    """

    def __init__(self, model, rho=0.05, adaptive=False, epsilon=1e-12,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(
                "Argument `model` must be a Keras model. Received: "
                f"model={model!r} (of type {type(model).__name__})")
        self.rho = validation.check_real("rho", rho, low=0.0)
        self.adaptive = validation.check_bool("adaptive", adaptive)
        self.epsilon = validation.check_real("epsilon", epsilon, low=0.0)
        self.inner = model
        if getattr(model, "built", False):
            self.built = True

    def build(self, input_shape=None):
        if not self.inner.built and input_shape is not None:
            self.inner.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.inner),
            "rho": self.rho,
            "adaptive": self.adaptive,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects)
        return cls(**config)

    def _perturb(self, grads, params):
        return _perturbation(grads, params, self.rho, self.adaptive,
                             self.epsilon)

    def _restored_mask(self):
        """True for the non-trainable variables reset after the second
        pass (the floating-point ones)."""
        return [_is_float(v) for v in self.non_trainable_variables]

    # ------------------------------------------------------------ train_step
    def train_step(self, *args):
        backend = keras.backend.backend()
        if backend == "jax":
            return self._train_step_jax(*args)
        if backend == "tensorflow":
            return self._train_step_tf(*args)
        if backend == "torch":
            return self._train_step_torch(*args)
        raise NotImplementedError(
            f"SAMModel supports the jax, tensorflow and torch backends. "
            f"Received: backend={backend!r}")

    def _train_step_jax(self, state, data):
        import jax

        (trainable, non_trainable, optimizer_vars, metrics_vars) = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(self.compute_loss_and_updates,
                                     has_aux=True)
        (_, aux), grads = grad_fn(
            trainable, non_trainable, metrics_vars, x, y, sample_weight,
            training=True, optimizer_variables=optimizer_vars)
        unscaled_loss, y_pred, non_trainable_1, metrics_vars_1 = aux
        perturbed = [p + e for p, e in
                     zip(trainable, self._perturb(grads, trainable))]
        (_, aux2), grads2 = grad_fn(
            perturbed, non_trainable_1, metrics_vars_1, x, y, sample_weight,
            training=True, optimizer_variables=optimizer_vars)
        non_trainable_2 = aux2[2]
        non_trainable = [
            first if keep else second
            for keep, first, second in zip(
                self._restored_mask(), non_trainable_1, non_trainable_2)
        ]
        trainable, optimizer_vars = self.optimizer.stateless_apply(
            optimizer_vars, grads2, trainable)
        logs, metrics_vars = self._update_metrics_variables(
            metrics_vars_1, unscaled_loss, x, y, y_pred, sample_weight)
        return logs, (trainable, non_trainable, optimizer_vars,
                      metrics_vars)

    def _first_pass_loss(self, x, y, sample_weight):
        if self._call_has_training_arg:
            y_pred = self(x, training=True)
        else:
            y_pred = self(x)
        loss = self._compute_loss(x=x, y=y, y_pred=y_pred,
                                  sample_weight=sample_weight, training=True)
        return y_pred, loss

    def _snapshot(self):
        mask = self._restored_mask()
        kept = [v for v, keep in zip(self.non_trainable_variables, mask)
                if keep] + list(self.metrics_variables)
        return kept, [ops.copy(v.value) for v in kept]

    def _train_step_tf(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        params = self.trainable_variables
        with tf.GradientTape() as tape:
            y_pred, loss = self._first_pass_loss(x, y, sample_weight)
            self._loss_tracker.update_state(
                _unscale_for_replicas(tf, loss),
                sample_weight=tf.shape(
                    next(i for i in keras.tree.flatten(x) if i is not None)
                )[0])
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, params)
        old = [tf.identity(p.value) for p in params]
        kept, kept_values = self._snapshot()
        for p, w, e in zip(params, old, self._perturb(grads, old)):
            p.assign(w + e)
        with tf.GradientTape() as tape:
            _, loss2 = self._first_pass_loss(x, y, sample_weight)
            if self.optimizer is not None:
                loss2 = self.optimizer.scale_loss(loss2)
        grads2 = tape.gradient(loss2, params)
        for p, w in zip(params, old):
            p.assign(w)
        for v, value in zip(kept, kept_values):
            v.assign(value)
        self.optimizer.apply_gradients(zip(grads2, params))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _train_step_torch(self, data):
        import torch

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        params = self.trainable_variables
        y_pred, loss = self._first_pass_loss(x, y, sample_weight)
        self.zero_grad()
        self._loss_tracker.update_state(
            loss,
            sample_weight=next(
                i for i in keras.tree.flatten(x) if i is not None).shape[0])
        if self.optimizer is not None:
            loss = self.optimizer.scale_loss(loss)
        loss.backward()
        grads = [p.value.grad for p in params]
        with torch.no_grad():
            old = [p.value.detach().clone() for p in params]
            kept, kept_values = self._snapshot()
            for p, w, e in zip(params, old, self._perturb(grads, old)):
                p.assign(w + e)
        self.zero_grad()
        _, loss2 = self._first_pass_loss(x, y, sample_weight)
        if self.optimizer is not None:
            loss2 = self.optimizer.scale_loss(loss2)
        loss2.backward()
        grads2 = [p.value.grad for p in params]
        with torch.no_grad():
            for p, w in zip(params, old):
                p.assign(w)
            for v, value in zip(kept, kept_values):
                v.assign(value)
            self.optimizer.apply(grads2, params)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
