"""Schedules driven by a user function of the epoch.

With ``e = floor(step / steps_per_epoch)`` and ``eta_0`` the initial
learning rate:

* ``LambdaLR``:          ``eta(e) = eta_0 * f(e)``
* ``MultiplicativeLR``:  ``eta(e) = eta_0 * f(1) * f(2) * ... * f(e)``
  (the empty product at ``e = 0`` gives ``eta_0``).

``f`` is called with a float32 tensor holding whole epoch numbers and must
be written with ``keras.ops`` (or Python operators on its argument), so that
it traces under ``jax.jit`` and ``tf.function``: ``keras.ops.where(e < 5,
1.0, 0.1)``, not ``1.0 if e < 5 else 0.1``. The constructors check this by
calling ``f`` on a symbolic tensor and raise a ``ValueError`` when it fails.
"""

from keras import ops

from keras_optzoo.schedules import base


def _probed(name, fn, shape=()):
    return base.check_traceable(name, base.deserialize_function(fn), shape)


class _FunctionSchedule(base.Schedule):
    """Shared config handling of the two function-driven schedules."""

    def get_config(self):
        config = super().get_config()
        config["lr_lambda"] = base.serialize_function(
            type(self).__name__, "lr_lambda", self.lr_lambda
        )
        return config


@base.register
class LambdaLR(_FunctionSchedule):
    """The initial learning rate times a user function of the epoch.

    ``lr = initial_learning_rate * lr_lambda(e)`` with
    ``e = floor(step / steps_per_epoch)``; torch's
    ``torch.optim.lr_scheduler.LambdaLR``.

    ``lr_lambda`` receives a float32 scalar tensor (a whole epoch number)
    and must be traceable with ``keras.ops``: no Python ``if`` on its
    argument (use ``keras.ops.where``), no ``math.*`` or NumPy calls, no
    ``float()``. This is checked when the schedule is built.

    Saving: ``get_config`` can only store ``lr_lambda`` when it is a
    function registered with ``@keras.saving.register_keras_serializable()``
    (a ``lambda`` cannot be found again on load); otherwise it raises a
    ``ValueError`` that says so.

    Args:
        initial_learning_rate: Float >= 0, the learning rate at factor 1
            (torch reads it from the optimizer).
        lr_lambda: Traceable function of the epoch returning the factor.
        {steps_per_epoch}
    """

    _config_keys = ("initial_learning_rate", "lr_lambda", "steps_per_epoch")

    def __init__(self, initial_learning_rate, lr_lambda, steps_per_epoch=1):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.lr_lambda = _probed("lr_lambda", lr_lambda)
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)

    def _value(self, step):
        epoch = base.to_float(base.epoch_of(step, self.steps_per_epoch))
        factor = ops.cast(self.lr_lambda(epoch), "float32")
        return self.initial_learning_rate * factor


@base.register
class MultiplicativeLR(_FunctionSchedule):
    """The initial learning rate times the running product of a factor.

    ``lr = initial_learning_rate * lr_lambda(1) * ... * lr_lambda(e)`` with
    ``e = floor(step / steps_per_epoch)``; torch's
    ``torch.optim.lr_scheduler.MultiplicativeLR`` (torch multiplies the
    current learning rate by ``lr_lambda(e)`` at each epoch ``e >= 1``).

    The product has no closed form for an arbitrary function, so it is taken
    over a fixed window: ``lr_lambda`` is applied elementwise to the vector
    of epochs ``1 .. max_epochs`` and the factors of epochs ``<= e`` are
    multiplied. The cost of a call is therefore proportional to
    ``max_epochs``, not to the step, and the lr stays at its epoch
    ``max_epochs`` value after that epoch (torch would keep multiplying).
    ``lr_lambda`` must be elementwise and traceable with ``keras.ops`` (see
    :class:`LambdaLR`); a constant factor ``lambda e: 0.95`` is fine.

    Saving follows :class:`LambdaLR`: ``lr_lambda`` must be a registered
    serializable function.

    Args:
        initial_learning_rate: Float >= 0, the learning rate at epoch 0.
        lr_lambda: Traceable elementwise function of the epoch returning
            the factor applied at that epoch.
        {steps_per_epoch}
        max_epochs: Int >= 1. Last epoch whose factor is applied. Defaults
            to `10000`.
    """

    _config_keys = (
        "initial_learning_rate",
        "lr_lambda",
        "steps_per_epoch",
        "max_epochs",
    )

    def __init__(
        self,
        initial_learning_rate,
        lr_lambda,
        steps_per_epoch=1,
        max_epochs=10000,
    ):
        self.initial_learning_rate = base.check_learning_rate(
            initial_learning_rate
        )
        self.steps_per_epoch = base.check_steps_per_epoch(steps_per_epoch)
        self.max_epochs = base.check_int("max_epochs", max_epochs, low=1)
        self.lr_lambda = _probed(
            "lr_lambda", lr_lambda, shape=(self.max_epochs,)
        )

    def _value(self, step):
        epoch = base.to_float(base.epoch_of(step, self.steps_per_epoch))
        epochs = ops.arange(1, self.max_epochs + 1, dtype="float32")
        factors = ops.cast(self.lr_lambda(epochs), "float32")
        factors = ops.broadcast_to(factors, (self.max_epochs,))
        applied = ops.where(epochs <= epoch, factors, 1.0)
        return self.initial_learning_rate * ops.prod(applied)
