"""ASGD: averaged stochastic gradient descent, as torch.optim.ASGD, with a
way to evaluate and save with the averaged weights."""

import contextlib

import keras
from keras import ops

from keras_optzoo import _minmax
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.registry import register_optimizer


@register_optimizer("asgd", "ASGD: averaged SGD with a decaying step "
                    "(torch.optim.ASGD)")
class ASGD(ZooOptimizer):
    r"""Averaged SGD, as `torch.optim.ASGD` (torch 2.13).

    Per variable the optimizer keeps torch's state: the step size
    $\eta$ (`eta`, a scalar; $\eta_1 = \gamma$), the averaging rate $\mu$
    (`mu`, a scalar; $\mu_1 = 1$) and the averaged parameters $\bar\theta$
    (`ax`). With gradient $g_t$ (after `maximize` and the L2 term), $\lambda$
    = `lambd`, $\alpha$ = `alpha`, $t_0$ = `t0` and learning rate $\gamma$:

    $$\theta_t = \theta_{t-1}(1 - \lambda\eta_t) - \eta_t g_t$$
    $$\bar\theta_t = \theta_t \text{ if } \mu_t = 1, \text{ else }
      \bar\theta_{t-1} + \mu_t(\theta_t - \bar\theta_{t-1})$$
    $$\eta_{t+1} = \frac{\gamma}{(1 + \lambda\gamma t)^{\alpha}},\qquad
      \mu_{t+1} = \frac{1}{\max(1,\ t - t_0)}$$

    As in torch, the learning rate enters through $\eta$, which is
    computed at the end of each step: a new learning rate takes effect one
    step later, and the first step uses the learning rate of that step.
    Averaging starts after $t_0$ steps; until then $\bar\theta$ is a copy
    of $\theta$.

    The model trains on $\theta$; $\bar\theta$ is the estimate ASGD is
    about. To evaluate, predict or save with it, swap it into the model:
    :meth:`swap_average_weights` (call it again to swap back), the context
    manager :meth:`averaged_weights`, or the callback
    :class:`SwapAveragedWeights` (in the spirit of
    `keras.callbacks.SwapEMAWeights`) around evaluation during `fit`.
    Swapping exchanges the values exactly (no arithmetic), so swapping
    twice is the identity and `ax` survives `.keras` save/load bit-exactly.

    Differs from `keras.optimizers.*`: Keras has no ASGD. Keras's
    `use_ema=True` keeps an exponential average with a fixed momentum;
    ASGD's average is uniform over the steps after $t_0$ (Polyak-Ruppert),
    and ASGD's own step size decays as above.

    Args:
        {{learning_rate}}
        lambd: Float >= 0, the decay term λ (shrinks θ by $1-\lambda\eta$
            each step and sets how fast η decays). Defaults to `1e-4`.
        alpha: Float >= 0, the power of the η decay. Defaults to `0.75`.
        t0: Float >= 0, the step after which averaging starts (may be
            `inf`: never average). Defaults to `1e6`.
        {{weight_decay}}
        {{maximize}}
        {{base}}

    References:
        - Polyak and Juditsky, 1992, "Acceleration of Stochastic
          Approximation by Averaging".
        - Bottou, 2012, "Stochastic Gradient Descent Tricks" (the η and μ
          schedules).
    """

    _hyperparameters = ("lambd", "alpha", "t0", "weight_decay", "maximize")

    def __init__(
        self,
        learning_rate=1e-2,
        lambd=1e-4,
        alpha=0.75,
        t0=1e6,
        weight_decay=0.0,
        maximize=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            maximize=maximize,
            **kwargs,
        )
        self.lambd = validation.check_real("lambd", lambd, low=0.0)
        self.alpha = validation.check_real("alpha", alpha, low=0.0)
        self.t0 = validation.check_real("t0", t0, low=0.0, finite=False)

    def _slot_specs(self):
        return [
            SlotSpec("eta", 0.0, scalar=True),
            SlotSpec("mu", 1.0, scalar=True),
            SlotSpec("ax"),
        ]

    def _update(self, param, grad, state, lr, index):
        dtype = grad.dtype
        step = self._step(dtype)
        sdtype = step.dtype
        lr = ops.cast(lr, sdtype)
        # torch sets eta to the lr when it creates the state (first step)
        eta = ops.where(ops.equal(self.iterations, 0), lr,
                        ops.cast(state["eta"], sdtype))
        mu = ops.cast(state["mu"], sdtype)
        param = (param * ops.cast(1.0 - self.lambd * eta, dtype)
                 - ops.cast(eta, dtype) * grad)
        ax = state["ax"]
        ax = self._math.where(ops.equal(mu, 1.0), param,
                              ax + ops.cast(mu, dtype) * (param - ax))
        new_eta = lr * ops.exp(-self.alpha * ops.log1p(self.lambd * lr * step))
        new_mu = 1.0 / _minmax.maximum(step - self.t0, 1.0)
        return param, {
            "eta": ops.cast(new_eta, state["eta"].dtype),
            "mu": ops.cast(new_mu, state["mu"].dtype),
            "ax": ax,
        }

    # ------------------------------------------------------ averaged weights
    def swap_average_weights(self, variables=None):
        """Exchanges the values of ``variables`` and their averages ``ax``.

        Call it once to put the averaged weights into the model (to
        evaluate, predict or save them), and once more to swap back before
        training on. The values are exchanged, not recomputed, so two calls
        restore both exactly. Call it outside a traced function (between
        `fit`/`evaluate` calls or from a callback).

        Args:
            variables: the trained variables (e.g.
                `model.trainable_variables`); defaults to those the
                optimizer was built with.
        """
        if not self.built:
            raise ValueError(
                "`swap_average_weights()` needs a built optimizer (one that "
                "has applied gradients or was built with `build()`).")
        if variables is None:
            variables = self._trainable_variables
        for variable in variables:
            average = self._slots["ax"][self._get_variable_index(variable)]
            if average is None:  # overwrite_with_gradient variable
                continue
            current = ops.convert_to_numpy(variable)
            variable.assign(ops.convert_to_numpy(average))
            average.assign(current)

    @contextlib.contextmanager
    def averaged_weights(self, variables=None):
        """Context manager: the averaged weights are in the model inside it.

        ``with optimizer.averaged_weights(): model.evaluate(x, y)``
        """
        self.swap_average_weights(variables)
        try:
            yield self
        finally:
            self.swap_average_weights(variables)


class SwapAveragedWeights(keras.callbacks.Callback):
    """Puts ASGD's averaged weights into the model around evaluation.

    Like `keras.callbacks.SwapEMAWeights` for `use_ema`: the model's weights
    and the :class:`ASGD` optimizer's averages `ax` are exchanged in
    `on_test_begin` (so validation during `fit` and `evaluate` use the
    averaged weights) and exchanged back in `on_test_end`; the same around
    `predict`. The exchange is exact, so training continues from exactly the
    weights it left.

    With `swap_on_epoch=True` the averaged weights are also in the model
    between `on_epoch_end` and the next `on_epoch_begin`, so a
    `keras.callbacks.ModelCheckpoint` placed after this callback saves them
    (its file then holds the averages as weights and the raw weights in the
    optimizer's `ax`: swap once after loading it to train on). At the end of
    training the raw weights are swapped back, so the model and optimizer
    state are as training left them; use `ASGD.averaged_weights()` for the
    final averaged model.

    Args:
        swap_on_epoch: Bool. Also swap at the end of every epoch (back at
            the beginning of the next). Defaults to `False`.
    """

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = validation.check_bool("swap_on_epoch",
                                                   swap_on_epoch)
        self._averages_in_model = False

    def _optimizer(self):
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if not hasattr(optimizer, "swap_average_weights"):
            raise ValueError(
                "SwapAveragedWeights needs a model compiled with an optimizer "
                "that keeps averaged weights (keras_optzoo ASGD). Received: "
                f"optimizer={type(optimizer).__name__}")
        return optimizer

    def _swap(self, averages_in_model):
        if self._averages_in_model == averages_in_model:
            return
        optimizer = self._optimizer()
        if optimizer.built:
            optimizer.swap_average_weights()
            self._averages_in_model = averages_in_model

    def on_epoch_begin(self, epoch, logs=None):
        self._swap(False)

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._swap(True)

    def on_train_end(self, logs=None):
        self._swap(False)

    def on_test_begin(self, logs=None):
        self._swap(True)

    def on_test_end(self, logs=None):
        self._swap(False)

    def on_predict_begin(self, logs=None):
        self._swap(True)

    def on_predict_end(self, logs=None):
        self._swap(False)
