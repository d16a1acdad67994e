"""`ScheduleFreeEval`: evaluation, prediction and checkpoints at a
schedule-free optimizer's evaluation point during `fit`."""

import warnings

import keras

from keras_optzoo.callbacks import _common
from keras_optzoo.callbacks.averaging import _bn_layers
from keras_optzoo.callbacks.averaging import update_bn


class ScheduleFreeEval(keras.callbacks.Callback):
    """Puts a schedule-free optimizer's evaluation point x into the model
    wherever Keras evaluates, predicts or checkpoints during `fit`.

    A schedule-free optimizer (`keras_optzoo.ScheduleFreeAdamW`,
    `ScheduleFreeSGD`, `ScheduleFreeRAdam`, or any optimizer with `eval()`
    and `train()` methods of the same meaning) trains the model at a point
    y and returns a different point x. The optimizer already switches by
    itself where Keras gives it the chance: `fit` ends with x in the model
    (`evaluate`, `predict` and `model.save` after training see x), and the
    next training step moves back to y. This callback covers what happens
    *inside* `fit`:

    * validation (`validation_data`) and any `evaluate`/`predict` it is
      passed to run at x (`on_test_begin`, `on_predict_begin`);
    * at the end of every epoch (after the epoch's last training batch
      when the number of steps is known, and in `on_epoch_end`) the model
      holds x, so `keras.callbacks.ModelCheckpoint` and
      `BackupAndRestore` write x (with the optimizer in eval mode: resuming
      from such a file is exact, see below);
    * the model goes back to y at the first training step after (the
      optimizer's own switch), so training is never at x.

    Each switch is the reference's `optimizer.eval()` (idempotent; the
    optimizer's `train_mode` slots record the mode, so a run resumed from a
    file saved in eval mode switches back exactly as the uninterrupted run
    did).

    **BatchNormalization.** Its moving statistics were gathered at y. With
    `bn_data`, every switch to x after training steps recomputes them at x
    with `keras_optzoo.callbacks.update_bn` (one pass over `bn_data`,
    torch's cumulative average), as the schedulefree package recommends;
    at the end of training too. Without `bn_data` a model with
    BatchNormalization warns once.

    Args:
        bn_data: None, or the inputs to recompute BatchNormalization
            statistics from: an array (split in batches of
            `bn_batch_size`) or an iterable of batches (a
            `tf.data.Dataset`, a `keras.utils.PyDataset`, a list). Defaults
            to `None`.
        bn_steps: Optional int: use only the first `bn_steps` batches of
            `bn_data` (the schedulefree README uses about 50). Defaults to
            `None` (all).
        bn_batch_size: Int, the batch size for array `bn_data`. Defaults to
            `None` (32).
    """

    def __init__(self, bn_data=None, bn_steps=None, bn_batch_size=None):
        super().__init__()
        self.bn_data = bn_data
        self.bn_steps = bn_steps
        self.bn_batch_size = bn_batch_size
        # whether the model trained since the BN statistics were computed
        self._stale = False
        self._warned = False

    def _optimizer(self):
        optimizer = _common.unwrap(self.model.optimizer)
        if not (callable(getattr(optimizer, "eval", None))
                and callable(getattr(optimizer, "train", None))):
            raise ValueError(
                "ScheduleFreeEval needs a model compiled with a schedule-free "
                "optimizer (one with `train()` and `eval()` methods, such as "
                "keras_optzoo.ScheduleFreeAdamW). Received: optimizer="
                f"{type(optimizer).__name__}")
        return optimizer

    def _to_eval(self):
        optimizer = self._optimizer()  # (on JAX: syncs the trainer's state)
        optimizer.eval()
        if self._stale and self.bn_data is not None:
            update_bn(self.model, self.bn_data,
                      batch_size=self.bn_batch_size, steps=self.bn_steps)
        self._stale = False

    def on_train_begin(self, logs=None):
        self._optimizer()
        if self.bn_data is None and not self._warned and \
                _bn_layers(self.model, []):
            self._warned = True
            warnings.warn(
                "ScheduleFreeEval: the model has BatchNormalization layers; "
                "their moving statistics are gathered at the training point "
                "y, not at the evaluation point x. Pass `bn_data` (training "
                "inputs) to recompute them at x.", stacklevel=2)

    def on_train_batch_end(self, batch, logs=None):
        self._stale = True
        steps = self.params.get("steps") if self.params else None
        if steps and batch + 1 >= steps:
            self._to_eval()  # the epoch's last batch: before any callback
            # placed after this one sees the model at on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        self._to_eval()

    def on_train_end(self, logs=None):
        self._to_eval()

    def on_test_begin(self, logs=None):
        self._to_eval()

    def on_predict_begin(self, logs=None):
        self._to_eval()
