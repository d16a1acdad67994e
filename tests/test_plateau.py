"""ReduceLROnPlateau against torch.optim.lr_scheduler.ReduceLROnPlateau.

The oracle is torch's scheduler fed the same metric sequence; our callback
runs on real Keras models and optimizers (zoo with a float lr, zoo with a
schedule, a Keras built-in), through `fit` where the test is about `fit`.
"""

import numpy as np
import pytest
import torch

import keras
from keras import ops

import keras_optzoo as oz
from keras_optzoo.callbacks import ReduceLROnPlateau

CONFIGS = {
    "default": {},
    "patience2": {"patience": 2, "factor": 0.5},
    "max_abs": {"mode": "max", "threshold_mode": "abs", "threshold": 0.05,
                "patience": 1, "factor": 0.5},
    "cooldown": {"patience": 1, "cooldown": 2, "factor": 0.5},
    "min_lr": {"patience": 0, "factor": 0.3, "min_lr": 0.02},
    "eps": {"patience": 0, "factor": 0.9, "eps": 0.05},
}


def _metrics(seed=0):
    rng = np.random.default_rng(seed)
    # improving, a long noisy plateau, improving again, another plateau
    base = np.concatenate([np.linspace(1.0, 0.5, 8), np.full(16, 0.5),
                           np.linspace(0.5, 0.3, 6), np.full(20, 0.3)])
    return (base + 0.002 * rng.standard_normal(base.size)).astype("float32")


def _torch_trace(kwargs, metrics, lr):
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    trace = []
    for m in metrics:
        sched.step(float(m))
        trace.append(opt.param_groups[0]["lr"])
    return np.array(trace)


def _model(optimizer):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _our_trace(callback, model, metrics, monitor_key="val_loss"):
    callback.set_model(model)
    callback.on_train_begin()
    trace = []
    for epoch, m in enumerate(metrics):
        callback.on_epoch_end(epoch, {monitor_key: float(m)})
        trace.append(float(ops.convert_to_numpy(model.optimizer.learning_rate)))
    return np.array(trace)


def _optimizers(lr):
    return {
        "zoo_float": lambda: oz.SGD(learning_rate=lr),
        "zoo_schedule": lambda: oz.SGD(
            learning_rate=keras.optimizers.schedules.ExponentialDecay(
                lr, decay_steps=10, decay_rate=1.0)),
        "keras_builtin": lambda: keras.optimizers.SGD(learning_rate=lr),
    }


@pytest.mark.parametrize("which", ["zoo_float", "zoo_schedule",
                                   "keras_builtin"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_lr_trace_equals_torch(name, which):
    kwargs = CONFIGS[name]
    lr = 1.0  # large enough that `eps` lets some reductions through
    metrics = _metrics()
    if kwargs.get("mode") == "max":
        metrics = -metrics
    expected = _torch_trace(kwargs, metrics, lr)
    assert len(set(expected)) > 1, "the sequence must trigger a reduction"
    ours = _our_trace(ReduceLROnPlateau(**kwargs), _model(
        _optimizers(lr)[which]()), metrics)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_keras_builtin_with_schedule_fails_at_train_begin():
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model = _model(keras.optimizers.SGD(learning_rate=sched))
    callback = ReduceLROnPlateau()
    callback.set_model(model)
    with pytest.raises(ValueError, match="cannot lower the learning rate"):
        callback.on_train_begin()


@pytest.mark.parametrize("kwargs,match", [
    ({"factor": 1.0}, r"Argument `factor` must be in \(0, 1\)\. "
                      r"Received: factor=1"),
    ({"mode": "up"}, r"Argument `mode` must be one of 'min', 'max'"),
    ({"threshold_mode": "pct"}, r"Argument `threshold_mode` must be one of"),
    ({"patience": -1}, r"Argument `patience` must be >= 0\. "
                       r"Received: patience=-1"),
    ({"min_lr": -1.0}, r"Argument `min_lr` must be >= 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReduceLROnPlateau(**kwargs)


def test_config_round_trip():
    cb = ReduceLROnPlateau(monitor="loss", patience=3, cooldown=1)
    clone = ReduceLROnPlateau.from_config(cb.get_config())
    assert clone.get_config() == cb.get_config()


def _linear_data(n=96, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype("float32")
    return x, y


def test_resume_mid_plateau_is_exact(tmp_path):
    """Counters and the reduction live in the optimizer: a loaded model with
    a fresh callback continues the plateau exactly as an uninterrupted run."""
    x, y = _linear_data()
    kwargs = {"monitor": "loss", "patience": 1, "factor": 0.5,
              "threshold": 0.5}

    def fresh():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=oz.SGD(learning_rate=0.01), loss="mse")
        return model

    straight = fresh()
    hist = straight.fit(x, y, batch_size=32, epochs=8, shuffle=False,
                        verbose=0, callbacks=[ReduceLROnPlateau(**kwargs)])
    lrs = hist.history["learning_rate"]
    assert len(set(lrs)) > 2, "the run must reduce more than once"

    first = fresh()
    first.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
              callbacks=[ReduceLROnPlateau(**kwargs)])
    first.save(tmp_path / "mid.keras")
    resumed = keras.models.load_model(tmp_path / "mid.keras")
    hist2 = resumed.fit(x, y, batch_size=32, epochs=5, shuffle=False,
                        verbose=0, callbacks=[ReduceLROnPlateau(**kwargs)])
    np.testing.assert_allclose(hist2.history["learning_rate"], lrs[3:],
                               rtol=1e-6)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(ops.convert_to_numpy(a),
                                   ops.convert_to_numpy(b), rtol=1e-5,
                                   atol=1e-6)


# ------------------------------------------------------------ issue 9
ISSUE_METRICS = [1.0, 1 - 1e-9, 1 - 0.6e-9, 1 - 0.5e-9, 1 - 0.4e-9]
ISSUE_KWARGS = {"threshold": 0.0, "threshold_mode": "abs", "patience": 1,
                "factor": 0.5}


@pytest.mark.parametrize("which", ["zoo_float", "zoo_schedule",
                                   "keras_builtin"])
def test_metrics_are_compared_in_double_precision(which, tmp_path):
    """The issue's example: metrics closer than float32 resolution. torch
    compares Python floats and reduces at epoch 3; so must we, also across
    a .keras save/load in the middle (the best metric is saved exactly)."""
    lr = 1.0
    expected = _torch_trace(ISSUE_KWARGS, ISSUE_METRICS, lr)
    assert expected[3] < lr, "torch reduces at epoch 3"
    model = _model(_optimizers(lr)[which]())
    ours = list(_our_trace(ReduceLROnPlateau(**ISSUE_KWARGS), model,
                           ISSUE_METRICS[:2]))
    callback = ReduceLROnPlateau(**ISSUE_KWARGS)
    if which != "keras_builtin":
        # the counters live in the optimizer: save, load, new callback
        model.save(tmp_path / "mid.keras")
        model = keras.models.load_model(tmp_path / "mid.keras")
    else:
        # a built-in optimizer: the counters live in the callback
        callback = callback_before = ReduceLROnPlateau(**ISSUE_KWARGS)
        callback_before.set_model(model)
        callback_before.on_train_begin()
        for epoch, m in enumerate(ISSUE_METRICS[:2]):
            callback_before.on_epoch_end(epoch, {"val_loss": m})
        model.optimizer.learning_rate = lr
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, m in enumerate(ISSUE_METRICS[2:], start=2):
        callback.on_epoch_end(epoch, {"val_loss": m})
        ours.append(float(ops.convert_to_numpy(
            model.optimizer.learning_rate)))
    np.testing.assert_array_equal(ours, expected)


def test_float_rate_reduced_as_torch_and_keras_store_it():
    """A float rate is reduced in the learning-rate variable itself: old
    rate times factor in double, then stored (0.1 -> 0.01, not the float32
    product 0.0100000007), equal to torch's value (its Python float stored
    in float32) after every reduction, and to what Keras's own
    ReduceLROnPlateau stores at the first."""
    kwargs = {"patience": 0, "factor": 0.1, "eps": 0.0}
    metrics = [1.0] * 7
    theirs = np.float32(_torch_trace(kwargs, metrics, 0.1))
    zoo = _model(oz.SGD(learning_rate=0.1))
    ours = _our_trace(ReduceLROnPlateau(**kwargs), zoo, metrics)
    assert zoo.optimizer.learning_rate is zoo.optimizer._learning_rate
    assert float(ops.convert_to_numpy(
        zoo.optimizer.learning_rate_scale)) == 1.0
    np.testing.assert_array_equal(np.float32(ours), theirs)
    assert np.float32(ours[1]) == np.float32(0.01)
    builtin = _model(keras.optimizers.SGD(learning_rate=0.1))
    keras_cb = keras.callbacks.ReduceLROnPlateau(monitor="val_loss",
                                                 factor=0.1, patience=0,
                                                 min_delta=0.0)
    keras_cb.set_model(builtin)
    keras_cb.on_train_begin()
    keras_trace = []
    for epoch, m in enumerate(metrics):
        keras_cb.on_epoch_end(epoch, {"val_loss": m})
        keras_trace.append(float(ops.convert_to_numpy(
            builtin.optimizer.learning_rate)))
    # Keras's first reduction stores the same value; later ones start from
    # the float32 variable (1e-4 becomes 0.00010000000475, 1 ulp off),
    # where torch, and we (the double kept in plateau_state), start from the
    # double set last.
    assert keras_trace[0] == ours[0]
    assert np.float32(keras_trace[1]) == np.float32(ours[1])


@pytest.mark.parametrize("keras_io", ["keras", "moved"])
def test_verbose_message_goes_through_keras_logging(keras_io, capsys, caplog,
                                                    monkeypatch):
    """verbose=1 prints through Keras's io_utils.print_msg: stdout normally,
    logging after keras.config.disable_interactive_logging(). "moved": the
    same with the fallback used when Keras's private io_utils is gone."""
    import logging
    import sys

    if keras_io == "moved":
        monkeypatch.setitem(sys.modules, "keras.src.utils.io_utils", None)

    kwargs = {"patience": 0, "factor": 0.5, "verbose": 1}
    _our_trace(ReduceLROnPlateau(**kwargs), _model(oz.SGD(0.1)), [1.0, 1.0])
    assert "ReduceLROnPlateau reducing learning rate to 0.05" in \
        capsys.readouterr().out
    keras.config.disable_interactive_logging()
    try:
        with caplog.at_level(logging.INFO):
            _our_trace(ReduceLROnPlateau(**kwargs), _model(oz.SGD(0.1)),
                       [1.0, 1.0])
    finally:
        keras.config.enable_interactive_logging()
    assert "reducing learning rate" not in capsys.readouterr().out
    assert "ReduceLROnPlateau reducing learning rate to 0.05" in caplog.text
