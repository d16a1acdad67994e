"""Weight averaging (SWA / EMA) and `update_bn`, as torch.optim.swa_utils.

* :class:`WeightAveraging`, a callback computing `AveragedModel`'s running
  average of the model's weights (SWA: equal weights; EMA: exponential),
  swapping the average in for evaluation and copying it in at the end.
* :class:`AveragedWeights`, the Keras object holding the average (and the
  number of models averaged); it is saved inside the model's `.keras` file.
* :func:`update_bn`, torch's `update_bn`: BatchNormalization moving
  statistics recomputed with one pass over data.
"""

import io
import warnings
import zipfile

import numpy as np

import keras
from keras import ops

from keras_optzoo import _loading
from keras_optzoo.optimizers import validation

PACKAGE = "keras_optzoo"
#: The model attribute holding the :class:`AveragedWeights` (not a tracked
#: layer: it is no part of the model's weights, but `.keras` files and
#: `save_weights` store it, under this name).
STATE_ATTR = "oz_averaged_weights"
_AVG_FNS = ("swa", "ema")
_INTERVALS = ("epoch", "step")


def _is_float(variable):
    return "float" in keras.backend.standardize_dtype(variable.dtype)


def _averaged_variables(model, use_buffers):
    """The model variables that are averaged, in a fixed order: the
    trainable ones, then (with `use_buffers`) the floating-point
    non-trainable ones (BatchNormalization moving statistics; integer
    states such as random seeds are never averaged)."""
    out = list(model.trainable_variables)
    if use_buffers:
        out += [v for v in model.non_trainable_variables if _is_float(v)]
    return out


@keras.saving.register_keras_serializable(package=PACKAGE)
class AveragedWeights(keras.layers.Layer):
    """The averaged copies of a model's variables and `n_averaged`.

    Made by :class:`WeightAveraging`; its variables are created by
    :meth:`build_for` in the order of the averaged model variables, so a
    file written by one backend loads on another.
    """

    def __init__(self, use_buffers=False, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.use_buffers = bool(use_buffers)
        self.averages = []
        self.n_averaged = None

    def build_for(self, model):
        if self.built:
            return
        self.n_averaged = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False,
            name="n_averaged")
        self.averages = [
            self.add_weight(shape=tuple(v.shape), dtype=v.dtype,
                            initializer="zeros", trainable=False,
                            name=f"average_{i}")
            for i, v in enumerate(_averaged_variables(model, self.use_buffers))
        ]
        self.built = True

    def get_config(self):
        return {**super().get_config(), "use_buffers": self.use_buffers}


class WeightAveraging(keras.callbacks.Callback):
    r"""Stochastic weight averaging or an EMA of the weights, as
    `torch.optim.swa_utils.AveragedModel`.

    At every update the average $\bar w$ of each model weight $w$ becomes

    $$\bar w \leftarrow \bar w + \frac{w - \bar w}{n + 1}\ \text{(swa)}
      \qquad\text{or}\qquad
      \bar w \leftarrow \bar w + (1 - d)(w - \bar w)\ \text{(ema)}$$

    where $n$ is the number of models already averaged and $d$ =
    `ema_decay`; the first update ($n = 0$) copies the weights, as
    `AveragedModel.update_parameters` does (`swa` is `AveragedModel(model)`,
    `ema` is `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d))`).
    Updates happen at the end of an epoch (`interval="epoch"`, the SWA
    paper's and torch's recipe) or of a batch (`interval="step"`, the
    usual EMA): at the end of epoch (or optimizer step) $k$, counted from
    0, when $k \ge$ `start` and $(k - $ `start`$) \bmod$ `frequency`
    $= 0$. torch's `if epoch > swa_start: swa_model.update_parameters(model)`
    is `start=swa_start + 1`.

    **Where the average lives.** In an :class:`AveragedWeights` object that
    the callback attaches to the model as `model.oz_averaged_weights` (not
    a layer of the model: `model.weights` and the model's outputs do not
    change). Keras saves it with the model: `model.save("x.keras")`,
    `ModelCheckpoint` and `save_weights` write it, and
    `BackupAndRestore` restores it. A model loaded with
    `keras.models.load_model` is built from its config, which does not
    know the callback: pass the same file as `resume_from` (or call
    :meth:`load_state`) and the average continues exactly where it was.

    **Evaluation and saving.** With `swap_on_evaluate=True` (the default)
    the averaged weights are swapped in for every evaluation during `fit`
    (validation included) and swapped back after, as
    `keras.callbacks.SwapEMAWeights` does. Keras validates before the
    callbacks' `on_epoch_end`, so an epoch that is due is added to the
    average when validation starts: epoch `e`'s validation loss is that of
    the average including epoch `e` (list this callback before others that
    swap weights for evaluation). :meth:`swap_weights` swaps by
    hand (call it again to swap back), and :meth:`transfer_weights` copies
    the average into the model for good (then call :func:`update_bn` when
    the model has BatchNormalization and `use_buffers=False`, as torch's
    recipe does).

    Args:
        avg_fn: `"swa"` (equal running mean) or `"ema"`. Defaults to
            `"swa"`.
        ema_decay: Float in [0, 1], the EMA's decay $d$ (torch's `decay`).
            Defaults to `0.999`.
        start: Int >= 0. The first epoch (or step) after which the weights
            are averaged. Defaults to `0`.
        frequency: Int >= 1. Average every `frequency` epochs (or steps).
            Defaults to `1`.
        interval: `"epoch"` or `"step"`. Defaults to `"epoch"`.
        use_buffers: Bool. Also average the floating-point non-trainable
            weights (BatchNormalization's moving mean and variance), as
            torch's `use_buffers=True`; when False they are not averaged
            and evaluation uses the model's own. Defaults to `False`.
        swap_on_evaluate: Bool. Evaluate with the averaged weights during
            `fit`. Defaults to `True`.
        resume_from: Optional path of a `.keras` file (or `.weights.h5`)
            written while training with this callback: the average is read
            from it when training starts. Defaults to `None`.

    Differs from `keras.optimizers.Optimizer(use_ema=True)`, which keeps an
    EMA in the optimizer with Keras's own first steps and no SWA, and from
    TF Addons' `tfa.optimizers.SWA`, an optimizer wrapper averaging every
    `average_period` steps.

    References:
        - Izmailov et al., 2018, "Averaging Weights Leads to Wider Optima
          and Better Generalization".
        - `torch.optim.swa_utils` (torch 2.13).
    """

    def __init__(self, avg_fn="swa", ema_decay=0.999, start=0, frequency=1,
                 interval="epoch", use_buffers=False, swap_on_evaluate=True,
                 resume_from=None):
        super().__init__()
        if avg_fn not in _AVG_FNS:
            raise ValueError(
                "Argument `avg_fn` must be one of {'swa', 'ema'}. "
                f"Received: avg_fn={avg_fn!r}")
        if interval not in _INTERVALS:
            raise ValueError(
                "Argument `interval` must be one of {'epoch', 'step'}. "
                f"Received: interval={interval!r}")
        self.avg_fn = avg_fn
        self.ema_decay = validation.check_real("ema_decay", ema_decay,
                                               low=0.0, high=1.0)
        self.start = validation.check_int("start", start, 0)
        self.frequency = validation.check_int("frequency", frequency, 1)
        self.interval = interval
        self.use_buffers = validation.check_bool("use_buffers", use_buffers)
        self.swap_on_evaluate = validation.check_bool("swap_on_evaluate",
                                                      swap_on_evaluate)
        self.resume_from = resume_from
        self._swapped = False
        self._epoch = 0
        self._in_fit = False
        #: the last epoch whose weights are in the average (None: none yet
        #: in this fit)
        self._averaged_epoch = None

    # ------------------------------------------------------------- state
    def state(self, model=None):
        """The :class:`AveragedWeights` of `model` (made on first use)."""
        model = model if model is not None else self.model
        state = getattr(model, STATE_ATTR, None)
        if state is None:
            state = AveragedWeights(use_buffers=self.use_buffers,
                                    name=STATE_ATTR)
            # Not through Layer.__setattr__: that would make it a tracked
            # layer, and its variables the model's.
            object.__setattr__(model, STATE_ATTR, state)
        elif state.use_buffers != self.use_buffers:
            raise ValueError(
                "The model's averaged weights were made with "
                f"use_buffers={state.use_buffers}. Received: "
                f"use_buffers={self.use_buffers}")
        state.build_for(model)
        return state

    @property
    def n_averaged(self):
        """How many models have been averaged (an int)."""
        return int(ops.convert_to_numpy(self.state().n_averaged))

    def load_state(self, filepath, model=None):
        """Reads the average from a `.keras` or `.weights.h5` file written
        while training with this callback."""
        import h5py

        state = self.state(model)
        if str(filepath).endswith(".keras"):
            with zipfile.ZipFile(filepath) as archive:
                raw = archive.read("model.weights.h5")
            f = h5py.File(io.BytesIO(raw), "r")
        else:
            f = h5py.File(filepath, "r")
        with f:
            group = f.get(f"{STATE_ATTR}/vars")
            if group is None:
                raise ValueError(
                    f"{filepath} holds no averaged weights (it was not "
                    "written by a model trained with WeightAveraging). "
                    f"Received: filepath={filepath!r}")
            variables = [state.n_averaged] + state.averages
            if len(group) != len(variables):
                raise ValueError(
                    f"{filepath} holds {len(group)} averaging variables; "
                    f"this model needs {len(variables)}.")
            for i, v in enumerate(variables):
                v.assign(np.asarray(group[str(i)]))

    # ---------------------------------------------------------- averaging
    def update_average(self):
        """One `AveragedModel.update_parameters(model)`."""
        state = self.state()
        model_vars = _averaged_variables(self.model, self.use_buffers)
        first = int(ops.convert_to_numpy(state.n_averaged)) == 0
        n = ops.cast(state.n_averaged, "float32")
        for average, variable in zip(state.averages, model_vars):
            value = variable.value
            if first:
                # a copy: JAX donates the model's buffers to the next step
                average.assign(ops.copy(value))
                continue
            if self.avg_fn == "swa":
                # torch (CPU, per tensor): avg + (p - avg) / (n + 1)
                new = average.value + (value - average.value) / ops.cast(
                    n + 1.0, value.dtype)
            else:
                # torch._foreach_lerp_(ema, p, 1 - decay)
                new = _lerp(average.value, value, 1.0 - self.ema_decay)
            average.assign(new)
        state.n_averaged.assign(state.n_averaged + 1)

    def _due(self, index):
        return index >= self.start and (index - self.start) % \
            self.frequency == 0

    def on_train_begin(self, logs=None):
        state = self.state()
        if self.resume_from is not None:
            self.load_state(self.resume_from)
            self.resume_from = None
        elif int(ops.convert_to_numpy(state.n_averaged)) == 0:
            saved = getattr(self.model, _loading.SAVED_AVERAGE_ATTR, None)
            if saved is not None:
                warnings.warn(
                    f"WeightAveraging starts a new average, but the model's "
                    f"weights were loaded from {saved!r}, which holds an "
                    "average that the loaded model does not carry (a model "
                    "read with `keras.models.load_model` does not know the "
                    "callback). To continue that average, pass "
                    f"`resume_from={saved!r}` (or call `load_state`).",
                    stacklevel=2)
        self._in_fit = True
        self._averaged_epoch = None

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _average_epoch(self, epoch):
        """Adds the weights at the end of ``epoch`` (once, when due)."""
        if self.interval == "epoch" and self._due(epoch) \
                and self._averaged_epoch != epoch:
            self._averaged_epoch = epoch
            self.update_average()

    def on_train_batch_end(self, batch, logs=None):
        if self.interval == "step":
            # the number of this optimizer step, counted from 0
            step = int(ops.convert_to_numpy(
                self.model.optimizer.iterations)) - 1
            if self._due(step):
                self.update_average()

    def on_epoch_end(self, epoch, logs=None):
        self._average_epoch(epoch)

    # ------------------------------------------------------------ swapping
    def _pairs(self):
        state = self.state()
        return list(zip(state.averages,
                        _averaged_variables(self.model, self.use_buffers)))

    def swap_weights(self):
        """Exchanges the model's weights and the averaged ones (call again
        to swap back). Nothing happens before the first average."""
        if int(ops.convert_to_numpy(self.state().n_averaged)) == 0:
            return False
        for average, variable in self._pairs():
            held = ops.copy(variable.value)
            variable.assign(ops.copy(average.value))
            average.assign(held)
        self._swapped = not self._swapped
        return True

    def transfer_weights(self):
        """Copies the averaged weights into the model for good (the model's
        own are lost). Returns False (and does nothing) before the first
        average."""
        if int(ops.convert_to_numpy(self.state().n_averaged)) == 0:
            return False
        if self._swapped:
            self.swap_weights()
        for average, variable in self._pairs():
            variable.assign(ops.copy(average.value))
        return True

    def on_test_begin(self, logs=None):
        if self._in_fit:
            # Keras validates after the epoch's last batch and before
            # `on_epoch_end`: the epoch's weights join the average first, so
            # that the logged validation is that of the average including
            # this epoch (what the weights saved at its end hold).
            self._average_epoch(self._epoch)
        if self.swap_on_evaluate and not self._swapped:
            self.swap_weights()

    def on_test_end(self, logs=None):
        if self.swap_on_evaluate and self._swapped:
            self.swap_weights()


def _lerp(start, end, weight):
    """`torch.lerp(start, end, weight)` for a Python float weight (its CPU
    kernel: `start + w (end - start)` for w < 0.5, else
    `end - (end - start)(1 - w)`)."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


# ---------------------------------------------------------------- update_bn
def _bn_layers(layer, out):
    for child in getattr(layer, "layers", None) or []:
        if isinstance(child, keras.layers.BatchNormalization):
            if child not in out:
                out.append(child)
        _bn_layers(child, out)
    return out


def _elements_per_channel(layer, batch_size):
    """The number of values each BN channel's batch statistics reduce
    over: the batch size times the non-channel, non-batch dimensions."""
    shape = None
    try:
        shape = tuple(layer.input.shape)
    except Exception:
        shapes = getattr(layer, "_build_shapes_dict", None) or {}
        if shapes:
            shape = tuple(next(iter(shapes.values())))
    if shape is None:
        raise ValueError(
            f"update_bn cannot tell the input shape of {layer.name}: build "
            "the model first.")
    axis = layer.axis if layer.axis >= 0 else len(shape) + layer.axis
    count = batch_size
    for i, d in enumerate(shape):
        if i not in (0, axis):
            count *= d
    return count


def _is_array(value):
    return hasattr(value, "shape") and not isinstance(value,
                                                      (list, tuple, dict))


def _batches(data, batch_size, steps):
    if isinstance(data, tuple) and 2 <= len(data) <= 3 and all(
            d is None or _is_array(d) for d in data) and _is_array(data[0]):
        # `(x, y)` or `(x, y, sample_weight)`, as Keras's `validation_data`:
        # the inputs are x (a tuple of batches is no tuple of arrays)
        data = data[0]
    if _is_array(data):
        n = data.shape[0]
        size = batch_size or 32
        for i, begin in enumerate(range(0, n, size)):
            if steps is not None and i >= steps:
                return
            yield data[begin:begin + size]
        return
    for i, batch in enumerate(data):
        if steps is not None and i >= steps:
            return
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        yield batch


def update_bn(model, data, batch_size=None, steps=None,
              unbiased_variance=True):
    r"""Recomputes every BatchNormalization layer's moving statistics with
    one pass over `data`, as `torch.optim.swa_utils.update_bn(loader,
    model)` does.

    The statistics are reset, the model is run in training mode on every
    batch, and each layer's moving mean and variance become the plain
    average over the batches of the batch means and variances (torch's
    cumulative average, `momentum=None`: every batch weighs the same,
    whatever its size). Call it after copying averaged weights into the
    model (:meth:`WeightAveraging.transfer_weights`).

    Variance: torch's `running_var` averages the *unbiased* batch variances
    ($\frac{m}{m-1}$ times the biased one, $m$ the values per channel),
    Keras's `moving_variance` the *biased* ones. With
    `unbiased_variance=True` (the default) the result equals torch's, so a
    model ported from torch predicts the same; `False` gives what Keras's
    own moving average would hold.

    Args:
        model: A built Keras model.
        data: The inputs: an array (or tensor) of samples, split in batches
            of `batch_size`; a tuple `(x, y)` or `(x, y, sample_weight)` of
            arrays, as Keras's `validation_data` (`x` is used, split the
            same way); or an iterable of batches (a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a torch `DataLoader`, a list); a
            batch that is a tuple or list gives its first element, as in
            torch. (A tuple of two or three arrays is always read as
            `(x, y[, sample_weight])`: give several batches as a list.)
        batch_size: Int, for array `data`. Defaults to `32`.
        steps: Optional int: use only the first `steps` batches.
        unbiased_variance: Bool. Defaults to `True`.

    Returns:
        The number of batches used.
    """
    layers = _bn_layers(model, [])
    if isinstance(model, keras.layers.BatchNormalization):
        layers.insert(0, model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    means = [None] * len(layers)
    variances = [None] * len(layers)
    count = 0
    try:
        for layer in layers:
            # moving = moving * 0 + batch * 1: after a training-mode call
            # the moving statistics are the batch's.
            layer.momentum = 0.0
            # torch's reset_running_stats()
            layer.moving_mean.assign(ops.zeros(
                layer.moving_mean.shape, layer.moving_mean.dtype))
            layer.moving_variance.assign(ops.ones(
                layer.moving_variance.shape, layer.moving_variance.dtype))
        for batch in _batches(data, batch_size, steps):
            model(batch, training=True)
            count += 1
            size = int(ops.shape(keras.tree.flatten(batch)[0])[0])
            for i, layer in enumerate(layers):
                mean = ops.convert_to_numpy(layer.moving_mean).astype(
                    "float32")
                var = ops.convert_to_numpy(layer.moving_variance).astype(
                    "float32")
                if unbiased_variance:
                    m = _elements_per_channel(layer, size)
                    var = (var * np.float32(m / max(m - 1, 1))).astype(
                        "float32")
                if count == 1:
                    means[i], variances[i] = mean, var
                else:
                    # torch: running += (batch - running) * (1 / count)
                    factor = np.float32(1.0 / count)
                    means[i] = (means[i] * np.float32(1 - factor)
                                + mean * factor).astype("float32")
                    variances[i] = (variances[i] * np.float32(1 - factor)
                                    + var * factor).astype("float32")
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if count:
        for layer, mean, var in zip(layers, means, variances):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(var)
    return count
