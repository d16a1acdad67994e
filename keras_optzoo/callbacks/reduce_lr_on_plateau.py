"""ReduceLROnPlateau with torch's rules, composable with any schedule."""

import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_optzoo.callbacks._common import as_float as _as_float
from keras_optzoo.callbacks._common import decode_plateau_state
from keras_optzoo.callbacks._common import encode_plateau_state
from keras_optzoo.callbacks._common import print_msg as _print_msg
from keras_optzoo.callbacks._common import unwrap as _unwrap
from keras_optzoo.optimizers import validation
from keras_optzoo.optimizers.base import ZooOptimizer

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule



@keras.saving.register_keras_serializable(package="keras_optzoo")
class ReduceLROnPlateau(keras.callbacks.Callback):
    """Lowers the learning rate when a metric stops improving (torch rules).

    At the end of each epoch the monitored value ``a`` is compared with the
    best so far: in ``mode="min"`` it is better when ``a < best·(1 − threshold)``
    (``threshold_mode="rel"``) or ``a < best − threshold`` (``"abs"``);
    mirrored for ``"max"``. After more than ``patience`` epochs without
    improvement the learning rate becomes ``max(lr·factor, min_lr)``, applied
    only when it changes by more than ``eps``; then ``cooldown`` epochs pass
    in which bad epochs are not counted. This is `torch.optim.lr_scheduler.
    ReduceLROnPlateau` exactly.

    **Composes with schedules.** With a keras-optzoo optimizer and a float
    learning rate, the learning-rate variable itself is lowered (as Keras and
    torch do: ``old·factor`` computed in double, then stored, so 0.1 becomes
    0.01 exactly). With a ``LearningRateSchedule`` (or a callable) the
    reduction multiplies the optimizer's ``learning_rate_scale`` variable
    instead, which scales the schedule's output: it is seen inside compiled
    JAX/TF train steps and saved with the model. The plateau counters (the
    best metric kept in double precision, as torch compares Python floats)
    live in the optimizer variable ``plateau_state``, so a run resumed from
    a ``.keras`` file (with a new instance of this callback) continues
    exactly. With a schedule, ``min_lr`` bounds the learning rate at the
    moment of each reduction; the schedule may take it lower afterwards.

    With a Keras built-in optimizer and a float learning rate, the learning
    rate variable itself is lowered and the counters stay in this callback.
    A built-in optimizer whose learning rate is a schedule cannot be reduced:
    that raises a ``ValueError`` at ``on_train_begin`` (Keras's own callback
    fails with a ``TypeError`` only when it first reduces).

    Messages (``verbose=1``) go through Keras's ``io_utils.print_msg``: to
    stdout, or to logging after ``keras.config.disable_interactive_logging()``.

    Differs from `keras.callbacks.ReduceLROnPlateau`: Keras reduces after
    ``patience`` bad epochs (torch: more than ``patience``), compares with an
    absolute ``min_delta`` (torch: relative threshold by default) and counts
    cooldown differently.

    Args:
        monitor: Name of the metric in ``logs``. Defaults to ``"val_loss"``.
        mode: ``"min"`` or ``"max"``. Defaults to ``"min"``.
        factor: Float in (0, 1), the multiplier. Defaults to ``0.1``.
        patience: Int >= 0. Defaults to ``10``.
        threshold: Float >= 0. Defaults to ``1e-4``.
        threshold_mode: ``"rel"`` or ``"abs"``. Defaults to ``"rel"``.
        cooldown: Int >= 0. Defaults to ``0``.
        min_lr: Float >= 0. Defaults to ``0.0``.
        eps: Float >= 0, the smallest change worth applying.
            Defaults to ``1e-8``.
        verbose: 0 or 1; 1 prints a line on each reduction. Defaults to ``0``.
    """

    def __init__(
        self,
        monitor="val_loss",
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0.0,
        eps=1e-8,
        verbose=0,
    ):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(
                "Argument `mode` must be one of 'min', 'max'. "
                f"Received: mode={mode!r}"
            )
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                "Argument `threshold_mode` must be one of 'rel', 'abs'. "
                f"Received: threshold_mode={threshold_mode!r}"
            )
        if not isinstance(monitor, str) or not monitor:
            raise (ValueError if isinstance(monitor, str) else TypeError)(
                "Argument `monitor` must be a non-empty str (a key of the "
                f"epoch logs, e.g. 'val_loss'). Received: monitor={monitor!r}"
            )
        if isinstance(verbose, bool):
            verbose = int(verbose)
        elif not (isinstance(verbose, int) and verbose in (0, 1, 2)):
            raise (ValueError if isinstance(verbose, int) else TypeError)(
                "Argument `verbose` must be 0, 1, 2 or a bool. "
                f"Received: verbose={verbose!r}"
            )
        self.monitor = monitor
        self.mode = mode
        self.factor = validation.check_real("factor", factor, low=0.0,
                                            high=1.0, low_open=True,
                                            high_open=True)
        self.patience = validation.check_int("patience", patience, low=0)
        self.threshold = validation.check_real("threshold", threshold,
                                               low=0.0)
        self.threshold_mode = threshold_mode
        self.cooldown = validation.check_int("cooldown", cooldown, low=0)
        self.min_lr = validation.check_real("min_lr", min_lr, low=0.0)
        self.eps = validation.check_real("eps", eps, low=0.0)
        self.verbose = verbose
        # (has_best, best, num_bad_epochs, cooldown_counter, lr) for a Keras
        # built-in optimizer (a zoo optimizer keeps them in plateau_state)
        self._local_state = (False, 0.0, 0, 0, 0.0)

    def get_config(self):
        return {
            "monitor": self.monitor,
            "mode": self.mode,
            "factor": self.factor,
            "patience": self.patience,
            "threshold": self.threshold,
            "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
            "eps": self.eps,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # --------------------------------------------------------------- rules
    def is_better(self, current, best):
        """torch's comparison (``best`` is ±inf before the first epoch)."""
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return current < best * (1.0 - self.threshold)
            return current < best - self.threshold
        if self.threshold_mode == "rel":
            return current > best * (1.0 + self.threshold)
        return current > best + self.threshold

    def step(self, current, state, lr):
        """One epoch of torch's logic on plain numbers (Python floats, so
        metrics are compared in double precision, as torch does).

        Args:
            current: the monitored value.
            state: ``(has_best, best, num_bad_epochs, cooldown_counter)``.
            lr: the learning rate now.

        Returns:
            ``(new_state, new_lr)``; ``new_lr`` is None when nothing changes.
        """
        has_best, best, bad, cooldown_counter = state
        best = float(best)
        bad, cooldown_counter = int(bad), int(cooldown_counter)
        if not has_best:
            best = math.inf if self.mode == "min" else -math.inf
        if self.is_better(current, best):
            best, bad = current, 0
        else:
            bad += 1
        if cooldown_counter > 0:
            cooldown_counter -= 1
            bad = 0
        new_lr = None
        if bad > self.patience:
            candidate = max(lr * self.factor, self.min_lr)
            if lr - candidate > self.eps:
                new_lr = candidate
            cooldown_counter = self.cooldown
            bad = 0
        return (True, best, bad, cooldown_counter), new_lr

    # ----------------------------------------------------------- callbacks
    def on_train_begin(self, logs=None):
        optimizer = _unwrap(self.model.optimizer)
        if isinstance(optimizer, ZooOptimizer):
            return
        if isinstance(optimizer._learning_rate, keras.Variable):
            return
        raise ValueError(
            "ReduceLROnPlateau cannot lower the learning rate of "
            f"{type(optimizer).__name__}: it is a "
            f"{type(optimizer._learning_rate).__name__}, not a float. Use a "
            "keras_optzoo optimizer (it multiplies any schedule), or a float "
            "learning rate."
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        # Always through self.model: on JAX that syncs the trainer's state.
        optimizer = _unwrap(self.model.optimizer)
        zoo = isinstance(optimizer, ZooOptimizer)
        lr_now = _as_float(optimizer.learning_rate)
        float_rate = isinstance(optimizer._learning_rate, keras.Variable)
        state = (decode_plateau_state(
            ops.convert_to_numpy(optimizer._plateau_state)) if zoo
            else self._local_state)
        scale = (_as_float(optimizer.learning_rate_scale)
                 if zoo and float_rate else 1.0)
        if float_rate and scale == 1.0:
            # torch keeps the rate as a Python float; the variable holds it
            # rounded to its dtype. Take the double this callback set last,
            # unless the rate was changed since; else the shortest decimal
            # that rounds to the variable's value (the 0.1 the user wrote,
            # not float32's 0.10000000149).
            stored = ops.convert_to_numpy(optimizer._learning_rate)
            if state[4] and stored.dtype.type(state[4]) == stored:
                lr_now = state[4]
            else:
                lr_now = float(np.format_float_positional(
                    stored[()], unique=True))
        elif scale != 1.0:
            lr_now = lr_now * scale  # the rate the update uses
        logs["learning_rate"] = lr_now
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"ReduceLROnPlateau: metric `{self.monitor}` is not in the "
                f"logs (available: {', '.join(sorted(logs))}); skipping.",
                stacklevel=2,
            )
            return
        counters, new_lr = self.step(float(current), state[:4], lr_now)
        kept_lr = state[4] if new_lr is None else new_lr
        if not float_rate:
            kept_lr = 0.0
        if zoo:
            optimizer._plateau_state.assign(
                encode_plateau_state(*counters, kept_lr))
        else:
            self._local_state = (*counters, kept_lr)
        if new_lr is None:
            return
        if float_rate:
            # Keras's and torch's way: the variable holds the new rate
            # (old * factor in double, then stored). A zoo optimizer's
            # learning_rate_scale (1 unless set by hand) still multiplies.
            optimizer._learning_rate.assign(
                new_lr if scale == 1.0 else new_lr / scale)
        else:
            # a schedule or callable (zoo only): scale its output
            scale = optimizer.learning_rate_scale
            scale.assign(_as_float(scale) * new_lr / lr_now)
        if self.verbose:
            _print_msg(
                f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                f"rate to {new_lr:.6g}.")
