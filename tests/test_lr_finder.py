"""LRFinder: the learning-rate range test on a real model (scikit-learn's
digits), with keras-optzoo optimizers and a Keras built-in, on the active
backend."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_optzoo as oz
from keras_optzoo.callbacks import LRFinder

BATCH = 32


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")[:512]
    y = data.target.astype("int32")[:512]
    return x, y


def make_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def snapshot(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def oracle_lrs(min_lr, max_lr, num_steps, count):
    """The exponential sweep, in float64."""
    i = np.arange(count, dtype="float64")
    return min_lr * (max_lr / min_lr) ** (i / (num_steps - 1))


OPTIMIZERS = {
    "oz.SGD": lambda: oz.SGD(learning_rate=0.01, momentum=0.9),
    "oz.Adam": lambda: oz.Adam(learning_rate=1e-3),
    "keras.Adam": lambda: keras.optimizers.Adam(learning_rate=1e-3),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_sweep_restore_and_suggestion(name, digits):
    x, y = digits
    model = make_model(OPTIMIZERS[name]())
    # Some real training first, so the optimizer state (step count, moments,
    # momentum buffers) is not at its initial zeros.
    model.fit(x[:128], y[:128], batch_size=BATCH, epochs=1, verbose=0)
    weights = snapshot(model.weights)
    opt_vars = snapshot(model.optimizer.variables)
    assert int(opt_vars[0]) == 4  # iterations: the state is not fresh
    lr_before = float(ops.convert_to_numpy(model.optimizer.learning_rate))

    min_lr, max_lr, num_steps = 1e-4, 1.0, 40
    finder = LRFinder.run(model, x, y, batch_size=BATCH, min_lr=min_lr,
                          max_lr=max_lr, num_steps=num_steps,
                          divergence_threshold=None)

    # The learning rates the updates used (read back from the optimizer
    # after each batch) are the exponential sweep, across epoch boundaries.
    assert len(finder.history["lr"]) == num_steps
    assert len(finder.history["loss"]) == num_steps
    np.testing.assert_allclose(finder.history["lr"],
                               oracle_lrs(min_lr, max_lr, num_steps,
                                          num_steps), rtol=1e-6)
    assert finder.history["lr"][-1] == pytest.approx(max_lr, rel=1e-6)

    # Everything is back exactly: weights, optimizer state, learning rate.
    for before, after in zip(weights, snapshot(model.weights)):
        np.testing.assert_array_equal(after, before)
    after_vars = snapshot(model.optimizer.variables)
    assert len(after_vars) == len(opt_vars)
    for before, after in zip(opt_vars, after_vars):
        np.testing.assert_array_equal(after, before)
    assert float(ops.convert_to_numpy(model.optimizer.learning_rate)) == \
        lr_before

    lr = finder.suggestion()
    assert min_lr <= lr <= max_lr
    smoothed = finder.history["smoothed_loss"]
    at = finder.history["lr"].index(lr)
    assert smoothed[at] < smoothed[0]
    assert smoothed[at] < finder.history["loss"][0]


def test_training_really_ran_and_restore_false_keeps_it(digits):
    x, y = digits
    model = make_model(oz.SGD(learning_rate=0.05))
    weights = snapshot(model.weights)
    finder = LRFinder.run(model, x, y, batch_size=BATCH, min_lr=1e-3,
                          max_lr=0.5, num_steps=20, restore=False)
    assert len(finder.history["lr"]) == 20
    changed = [not np.array_equal(a, b)
               for a, b in zip(weights, snapshot(model.weights))]
    assert all(changed)
    assert int(ops.convert_to_numpy(model.optimizer.iterations)) == 20
    # the learning rate is put back even without restore
    assert float(ops.convert_to_numpy(model.optimizer.learning_rate)) == \
        pytest.approx(0.05, rel=1e-7)


def test_recorded_losses_are_the_batch_losses(digits):
    # With learning rates ~1e-12 the weights do not move, so batch b's loss
    # is the loss of the initial model on batch b: an oracle for the loss
    # recovered from Keras's running means, over two epochs.
    x, y = digits[0][:256], digits[1][:256]
    model = make_model(oz.SGD(learning_rate=0.1))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = []
    for start in range(0, len(x), BATCH):
        xb, yb = x[start:start + BATCH], y[start:start + BATCH]
        expected.append(float(ops.convert_to_numpy(loss_fn(yb, model(xb)))))
    finder = LRFinder(min_lr=1e-12, max_lr=2e-12, num_steps=16)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[finder])
    np.testing.assert_allclose(finder.history["loss"], expected * 2,
                               rtol=2e-5)


def test_divergence_stops_early(digits):
    x, y = digits
    model = make_model(oz.SGD(learning_rate=0.01, momentum=0.9))
    finder = LRFinder.run(model, x, y, batch_size=BATCH, min_lr=1e-3,
                          max_lr=1e6, num_steps=60)
    count = len(finder.history["lr"])
    assert finder.diverged
    assert 3 <= count < 60
    np.testing.assert_allclose(finder.history["lr"],
                               oracle_lrs(1e-3, 1e6, 60, count), rtol=1e-6)
    last = finder.history["smoothed_loss"][-1]
    assert not np.isfinite(last) or \
        last > 4.0 * min(finder.history["smoothed_loss"][:-1])
    assert 1e-3 <= finder.suggestion() <= 1e6


def test_scale_held_at_one_and_restored(digits):
    x, y = digits
    optimizer = oz.Adam(learning_rate=1e-3)
    model = make_model(optimizer)
    optimizer.learning_rate_scale.assign(0.25)  # as ReduceLROnPlateau leaves it
    finder = LRFinder.run(model, x, y, batch_size=BATCH, min_lr=1e-4,
                          max_lr=1e-2, num_steps=10)
    np.testing.assert_allclose(finder.history["lr"],
                               oracle_lrs(1e-4, 1e-2, 10, 10), rtol=1e-6)
    assert float(ops.convert_to_numpy(optimizer.learning_rate_scale)) == 0.25


@pytest.mark.parametrize("make", [
    lambda: oz.SGD(learning_rate=oz.schedules.StepLR(0.1, step_size=5)),
    lambda: keras.optimizers.SGD(
        learning_rate=keras.optimizers.schedules.ExponentialDecay(
            0.1, 10, 0.9)),
], ids=["zoo", "keras"])
def test_schedule_learning_rate_raises(make, digits):
    x, y = digits
    model = make_model(make())
    with pytest.raises(ValueError, match="needs a float learning rate"):
        LRFinder.run(model, x, y, batch_size=BATCH, num_steps=5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_lr=-1), r"Argument `min_lr` must be > 0\. Received: min_lr=-1"),
    (dict(min_lr=0), r"Argument `min_lr` must be > 0\. Received: min_lr=0"),
    (dict(max_lr=0.0), r"Argument `max_lr` must be > 0"),
    (dict(min_lr=1.0, max_lr=0.5),
     r"Argument `max_lr` must be > min_lr \(1\)\. Received: max_lr=0\.5"),
    (dict(num_steps=1),
     r"Argument `num_steps` must be >= 2\. Received: num_steps=1"),
    (dict(smoothing=1.0),
     r"Argument `smoothing` must be in \[0, 1\)\. Received: smoothing=1"),
    (dict(smoothing=-0.1), r"Argument `smoothing` must be in \[0, 1\)"),
    (dict(divergence_threshold=1.0),
     r"Argument `divergence_threshold` must be > 1\. "
     r"Received: divergence_threshold=1"),
    (dict(max_lr=float("inf")), r"Argument `max_lr` must be a finite"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRFinder(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(num_steps=10.5), dict(restore=1),
                                    dict(min_lr="1e-3")])
def test_bad_argument_types(kwargs):
    with pytest.raises(TypeError):
        LRFinder(**kwargs)


def test_run_needs_a_full_batch(digits):
    x, y = digits
    model = make_model(oz.SGD())
    with pytest.raises(ValueError, match="Argument `batch_size` must be <="):
        LRFinder.run(model, x[:10], y[:10], batch_size=32)


def test_config_round_trip():
    finder = LRFinder(min_lr=1e-5, max_lr=3.0, num_steps=50, smoothing=0.9,
                      divergence_threshold=None, restore=False)
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(finder))
    assert type(again) is LRFinder
    assert again.get_config() == finder.get_config()


def test_suggestion_and_plot(digits):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    finder = LRFinder(num_steps=50)
    with pytest.raises(ValueError, match="at least 3"):
        finder.suggestion()
    # A synthetic curve: flat, a fall steepest at lr = 1e-2, then a rise.
    lrs = np.logspace(-5, 0, 50)
    t = np.log10(lrs)
    smoothed = 2.0 - np.tanh(3.0 * (t + 2.0)) + np.maximum(t + 0.5, 0) * 4
    finder.history = {"lr": list(lrs), "loss": list(smoothed),
                      "smoothed_loss": list(smoothed)}
    assert finder.suggestion() == pytest.approx(1e-2, rel=0.3)
    ax = Figure().subplots()
    assert finder.plot(ax=ax) is ax
    assert ax.get_xscale() == "log"
    assert any("suggestion" in text.get_text()
               for text in ax.get_legend().get_texts())
