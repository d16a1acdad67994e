"""LRFinder: the learning-rate range test as a Keras callback."""

import math

import keras
import numpy as np
from keras import ops

from keras_optzoo.callbacks._common import as_float as _as_float
from keras_optzoo.callbacks._common import unwrap as _unwrap
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import ZooOptimizer


@keras.saving.register_keras_serializable(package="keras_optzoo")
class LRFinder(keras.callbacks.Callback):
    """The learning-rate range test (Smith 2017; fastai's ``lr_find``).

    Training runs for at most ``num_steps`` batches while the learning rate
    grows exponentially from ``min_lr`` to ``max_lr``; batch ``i`` (counted
    from 0) uses

        ``lr_i = min_lr * (max_lr / min_lr) ** (i / (num_steps - 1))``.

    The loss of every batch is recorded, smoothed with a bias-corrected
    exponential moving average, and training stops early once the smoothed
    loss exceeds ``divergence_threshold`` times the best smoothed loss so far
    (or is not finite): from there on larger learning rates only diverge.
    With ``restore=True`` the model's weights and the optimizer's state are
    put back exactly as they were at the start, so the test leaves no trace
    and a real training run can follow on the same model.

        finder = LRFinder(min_lr=1e-6, max_lr=1.0)
        model.fit(x, y, batch_size=32, epochs=3, callbacks=[finder])
        finder.suggestion()    # a learning rate to start from
        finder.plot()          # loss vs learning rate, log x axis

    or in one call, which fits for as many epochs as ``num_steps`` needs:
    ``finder = LRFinder.run(model, x, y, batch_size=32, max_lr=1.0)``.

    **Which loss is recorded.** Keras hands callbacks the running mean of the
    loss over the epoch so far, not the loss of the last batch. The finder
    recovers each batch's loss from two consecutive running means:
    ``loss_b = (b + 1)·mean_b − b·mean_{b−1}`` for batch ``b`` of an epoch.
    This is exact when all batches have the same size (Keras weights the mean
    by batch size: a smaller last batch of an epoch is recorded slightly off;
    :meth:`run` uses full batches only). With ``steps_per_execution=k`` the
    callback runs once every ``k`` batches: each record is then the mean loss
    of those ``k`` batches, which all used the same learning rate.

    **The learning rate** must be a float (a tracked variable), for a
    keras-optzoo optimizer and a Keras built-in alike; a schedule or a
    callable raises a ``ValueError`` at the start of training. It is set
    through ``self.model.optimizer`` before every batch (on JAX that is what
    makes the compiled step see it) and the recorded value is read back from
    the optimizer after the batch, so ``history["lr"]`` is what the update
    used. For a keras-optzoo optimizer the ``learning_rate_scale`` (lowered
    by ``ReduceLROnPlateau``) is held at 1 during the test. The learning rate
    the optimizer had before is always restored at the end, also with
    ``restore=False``.

    Args:
        min_lr: Float > 0, the first learning rate. Defaults to ``1e-7``.
        max_lr: Float > ``min_lr``, the learning rate of step
            ``num_steps - 1``. Defaults to ``10.0``.
        num_steps: Int >= 2, the number of batches of the test.
            Defaults to ``100``.
        smoothing: Float in [0, 1), the EMA factor β of the smoothed loss
            (0: no smoothing). Defaults to ``0.98``.
        divergence_threshold: Float > 1, or ``None`` to never stop early.
            Defaults to ``4.0``.
        restore: Bool. Put the model's weights and the optimizer's variables
            back at the end of training. Defaults to ``True``.

    Attributes:
        history: dict of lists, one entry per recorded batch: ``"lr"``,
            ``"loss"`` (the batch's loss) and ``"smoothed_loss"``.
        diverged: True when the test stopped on divergence.
    """

    def __init__(
        self,
        min_lr=1e-7,
        max_lr=10.0,
        num_steps=100,
        smoothing=0.98,
        divergence_threshold=4.0,
        restore=True,
    ):
        super().__init__()
        self.min_lr = validation.check_real("min_lr", min_lr, low=0.0,
                                            low_open=True)
        self.max_lr = validation.check_real("max_lr", max_lr, low=0.0,
                                            low_open=True)
        if self.max_lr <= self.min_lr:
            raise ValueError(
                f"Argument `max_lr` must be > min_lr ({self.min_lr:g}). "
                f"Received: max_lr={self.max_lr:g}"
            )
        self.num_steps = validation.check_int("num_steps", num_steps, low=2)
        self.smoothing = validation.check_real(
            "smoothing", smoothing, low=0.0, high=1.0, high_open=True)
        if divergence_threshold is not None:
            divergence_threshold = validation.check_real(
                "divergence_threshold", divergence_threshold, low=1.0,
                low_open=True)
        self.divergence_threshold = divergence_threshold
        self.restore = validation.check_bool("restore", restore)
        self._reset_records()

    def get_config(self):
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "num_steps": self.num_steps,
            "smoothing": self.smoothing,
            "divergence_threshold": self.divergence_threshold,
            "restore": self.restore,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------ the test
    def lr_at(self, step):
        """The learning rate of batch ``step`` (0-based) of the test."""
        fraction = step / (self.num_steps - 1)
        return self.min_lr * (self.max_lr / self.min_lr) ** fraction

    def _reset_records(self):
        self.history = {"lr": [], "loss": [], "smoothed_loss": []}
        self.diverged = False
        self._avg = 0.0
        self._best = math.inf
        self._prev_batch = -1
        self._prev_mean = 0.0

    def on_train_begin(self, logs=None):
        self._reset_records()
        model = self.model
        optimizer = model.optimizer
        owner = _unwrap(optimizer)
        if not isinstance(owner._learning_rate, keras.Variable):
            raise ValueError(
                "LRFinder sets the learning rate batch by batch, so it needs "
                f"a float learning rate; {type(owner).__name__} has a "
                f"{type(owner._learning_rate).__name__}. Compile the model "
                "with a float learning rate for the range test."
            )
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self._saved_lr = _as_float(owner._learning_rate)
        if self.restore:
            self._saved_weights = [np.array(ops.convert_to_numpy(v))
                                   for v in model.weights]
            self._saved_optimizer = [np.array(ops.convert_to_numpy(v))
                                     for v in optimizer.variables]
        if isinstance(owner, ZooOptimizer):
            self._saved_scale = _as_float(owner.learning_rate_scale)
            owner.learning_rate_scale.assign(1.0)

    def on_epoch_begin(self, epoch, logs=None):
        self._prev_batch = -1
        self._prev_mean = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        step = len(self.history["lr"])
        if step >= self.num_steps:
            return
        # Through self.model every time: on JAX this syncs the trainer's
        # state, and the next step then reads the new value.
        _unwrap(self.model.optimizer).learning_rate = self.lr_at(step)

    def on_train_batch_end(self, batch, logs=None):
        if len(self.history["lr"]) >= self.num_steps:
            self.model.stop_training = True
            return
        logs = logs or {}
        if "loss" not in logs:
            raise ValueError("LRFinder needs the training loss in the batch "
                             f"logs; got only {sorted(logs)}.")
        mean = _as_float(logs["loss"])
        count = batch - self._prev_batch
        loss = ((batch + 1) * mean - (self._prev_batch + 1)
                * self._prev_mean) / max(count, 1)
        self._prev_batch, self._prev_mean = batch, mean
        lr = _as_float(_unwrap(self.model.optimizer).learning_rate)

        step = len(self.history["lr"])
        beta = self.smoothing
        self._avg = beta * self._avg + (1.0 - beta) * loss
        smoothed = self._avg / (1.0 - beta ** (step + 1))
        self.history["lr"].append(lr)
        self.history["loss"].append(loss)
        self.history["smoothed_loss"].append(smoothed)

        if not math.isfinite(smoothed):
            self.diverged = True
        else:
            self._best = min(self._best, smoothed)
            if (self.divergence_threshold is not None
                    and smoothed > self.divergence_threshold * self._best):
                self.diverged = True
        if self.diverged or step + 1 >= self.num_steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        model = self.model
        optimizer = model.optimizer
        owner = _unwrap(optimizer)
        if self.restore:
            for variable, value in zip(model.weights, self._saved_weights):
                variable.assign(value)
            for variable, value in zip(optimizer.variables,
                                       self._saved_optimizer):
                variable.assign(value)
            self._saved_weights = self._saved_optimizer = None
        owner.learning_rate = self._saved_lr
        if isinstance(owner, ZooOptimizer):
            owner.learning_rate_scale.assign(self._saved_scale)

    # ------------------------------------------------------------- results
    def _trimmed(self, skip_begin, skip_end, stop=None):
        lrs = np.asarray(self.history["lr"], dtype="float64")
        smoothed = np.asarray(self.history["smoothed_loss"], dtype="float64")
        if stop is not None:  # from the divergence on: ignored
            lrs, smoothed = lrs[:stop], smoothed[:stop]
            skip_end = 0
        n = len(lrs)
        if n < 3:
            raise ValueError(
                f"LRFinder recorded {n} batches; a suggestion needs at least "
                "3. Run the test for more batches (`num_steps`, epochs).")
        # Too few points for the requested margins: keep at least 3.
        while n - skip_begin - skip_end < 3:
            if skip_begin >= skip_end and skip_begin > 0:
                skip_begin -= 1
            elif skip_end > 0:
                skip_end -= 1
        keep = slice(skip_begin, n - skip_end)
        return lrs[keep], smoothed[keep]

    def suggestion(self, skip_begin=10, skip_end=5):
        """A learning rate to train with: the steepest descent of the loss.

        The smoothed loss is differentiated with respect to ``log10(lr)``
        (central differences, ``np.gradient``) and the learning rate where
        that slope is most negative is returned: there the loss falls
        fastest per decade of learning rate, which is far enough below the
        divergence point to be safe and high enough to train quickly. Only
        the batches before the loss diverged (:meth:`divergence_index`)
        and up to the smoothed loss's minimum among them are considered,
        so the suggestion always comes from before the divergence. The
        first ``skip_begin`` points (where the bias-corrected average still
        moves a lot) are ignored, and so are the last ``skip_end`` when the
        loss did not diverge (they are often the start of a blow-up); both
        margins shrink when fewer points were recorded.

        Returns:
            A float within ``[min_lr, max_lr]``.
        """
        lrs, smoothed = self._trimmed(skip_begin, skip_end,
                                      self.divergence_index())
        finite = np.isfinite(smoothed)
        lrs, smoothed = lrs[finite], smoothed[finite]
        if len(lrs) < 3:
            raise ValueError("LRFinder: fewer than 3 finite losses recorded "
                             "before the loss diverged.")
        # Only up to the smoothed loss's minimum: past it the loss rises,
        # and a descent there is the smoothed average coming down from a
        # spike (a sign of divergence), not training.
        end = int(np.argmin(smoothed)) + 1
        if end >= 3:
            lrs, smoothed = lrs[:end], smoothed[:end]
        slope = np.gradient(smoothed, np.log10(lrs))
        return float(lrs[int(np.argmin(slope))])

    def divergence_index(self):
        """The index of the first recorded batch at which the loss
        diverged, or None.

        That is the first batch whose loss (the batch's own, or the
        smoothed one) is not finite or exceeds ``divergence_threshold``
        (4 when that is None) times the best smoothed loss before it. The
        raw loss catches a blow-up that the smoothed average, which lags
        by about ``1 / (1 - smoothing)`` batches, does not reach the
        threshold for before the loss falls back (a network whose units
        died trains on at the loss of chance, say).
        """
        factor = self.divergence_threshold or 4.0
        best = math.inf
        for i, (loss, smoothed) in enumerate(zip(
                self.history["loss"], self.history["smoothed_loss"])):
            if not (math.isfinite(loss) and math.isfinite(smoothed)):
                return i
            if best < math.inf and max(loss, smoothed) > factor * best:
                return i
            best = min(best, smoothed)
        return None

    def plot(self, ax=None, skip_begin=10, skip_end=5):
        """Draws the smoothed loss (and the raw batch losses, faint) against
        the learning rate on a log axis, and marks :meth:`suggestion`.

        Args:
            ax: Matplotlib ``Axes``. Defaults to ``None`` (the current axes,
                ``matplotlib.pyplot.gca()``).
            skip_begin, skip_end: passed to :meth:`suggestion`.

        Returns:
            The ``Axes`` drawn on. matplotlib is imported only here.
        """
        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.gca()
        lrs = np.asarray(self.history["lr"])
        loss = np.asarray(self.history["loss"])
        smoothed = np.asarray(self.history["smoothed_loss"])
        ax.plot(lrs, loss, color="0.7", lw=0.8, label="batch loss")
        ax.plot(lrs, smoothed, color="C0", lw=1.8, label="smoothed loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        finite = smoothed[np.isfinite(smoothed)]
        if finite.size > 1 and finite[0] > finite.min():
            # Keep the blow-up from flattening the interesting part.
            low, start = finite.min(), finite[0]
            span = start - low
            ax.set_ylim(low - 0.15 * span, start + 0.35 * span)
        if len(lrs) >= 3:
            lr = self.suggestion(skip_begin, skip_end)
            y = smoothed[int(np.argmin(np.abs(lrs - lr)))]
            ax.axvline(lr, color="C3", ls="--", lw=1)
            ax.plot([lr], [y], "o", color="C3",
                    label=f"suggestion: {lr:.2g}")
        ax.legend()
        return ax

    # --------------------------------------------------------- convenience
    @classmethod
    def run(cls, model, x, y=None, batch_size=32, verbose=0, **kwargs):
        """Runs the range test on a compiled model and returns the finder.

        Fits on full batches of ``(x, y)`` (a last smaller batch is dropped,
        see the class docstring) for as many epochs as ``num_steps``
        batches need; ``kwargs`` go to the constructor.

        Args:
            model: A compiled Keras model with a float learning rate.
            x, y: NumPy arrays (or anything with ``len`` and slicing).
            batch_size: Int. Defaults to ``32``.
            verbose: ``fit``'s verbosity. Defaults to ``0``.
        """
        finder = cls(**kwargs)
        steps_per_epoch = len(x) // batch_size
        if steps_per_epoch < 1:
            raise ValueError(
                f"Argument `batch_size` must be <= the number of samples "
                f"({len(x)}). Received: batch_size={batch_size}")
        keep = steps_per_epoch * batch_size
        x = x[:keep]
        y = None if y is None else y[:keep]
        epochs = -(-finder.num_steps // steps_per_epoch)
        model.fit(x, y, batch_size=batch_size, epochs=epochs,
                  verbose=verbose, callbacks=[finder])
        return finder
