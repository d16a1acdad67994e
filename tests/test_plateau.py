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
