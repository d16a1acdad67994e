"""ASGD's averaged weights: swapping them into the model and back is exact,
they equal torch.optim.ASGD's ``ax`` state, survive .keras save/load
bit-exactly, and the SwapAveragedWeights callback evaluates with them during
``fit`` without changing the training run.

Oracles: torch.optim.ASGD's ``state[p]["ax"]`` and the NumPy reference's
averages (tests/reference/np_asgd.py); for the swaps, the values before.
"""

import numpy as np
import pytest
import torch

import keras
from keras import ops

import harness
import specs
import keras_optzoo as oz
from keras_optzoo.optimizers.asgd import SwapAveragedWeights

SPEC = specs.SPECS_BY_NAME["asgd"]
#: averaging from step 11 on (mu < 1), so ax differs from the params
CONFIG = SPEC.config("averaging")
STEPS = 15


def _numpy(variables):
    return [np.array(ops.convert_to_numpy(v)) for v in variables]


def _torch_ax(init, grads, kwargs):
    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = specs.make_torch(SPEC, params, kwargs)
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        opt.step()
    return ([p.detach().numpy().copy() for p in params],
            [opt.state[p]["ax"].numpy().copy() for p in params])


@pytest.mark.parametrize("mode", harness.modes())
def test_swapped_weights_equal_torch_ax(mode):
    init, grads = harness.problem(CONFIG, steps=STEPS)
    opt = oz.ASGD(**CONFIG.kwargs)
    stepper = harness.Stepper(opt, init, mode)
    for g in grads:
        stepper.step(g)
    stepper.sync()
    params, ax = _torch_ax(init, grads, CONFIG.kwargs)
    reference = SPEC.reference(init, **CONFIG.kwargs)
    harness.run_numpy(reference, init, grads)
    harness.assert_trajectory_close(_numpy(stepper.vars), params, init,
                                    what="torch params")
    # the average really differs from the parameters here
    assert max(float(np.max(np.abs(a - p))) for a, p in zip(ax, params)) \
        > 1e-3
    opt.swap_average_weights(stepper.vars)
    swapped = _numpy(stepper.vars)
    harness.assert_trajectory_close(swapped, ax, init, what="torch ax")
    harness.assert_trajectory_close(swapped, reference.averages(), init,
                                    what="NumPy ref ax")
    # and the raw parameters now sit in the ax slots
    harness.assert_trajectory_close(_numpy(opt._slots["ax"]), params, init,
                                    what="torch params (in ax)")


def test_swap_twice_is_identity_and_context_manager():
    init, grads = harness.problem(CONFIG, steps=12)
    opt = oz.ASGD(**CONFIG.kwargs)
    variables = [keras.Variable(p) for p in init]
    for g in grads:
        opt.apply([ops.convert_to_tensor(x) for x in g], variables)
    weights, state = _numpy(variables), _numpy(opt.variables)
    ax = _numpy(opt._slots["ax"])
    with opt.averaged_weights(variables):
        for a, b in zip(_numpy(variables), ax):
            np.testing.assert_array_equal(a, b)
    opt.swap_average_weights()  # default: the variables it was built with
    opt.swap_average_weights(variables)
    for a, b in zip(_numpy(variables), weights):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_numpy(opt.variables), state):
        np.testing.assert_array_equal(a, b)


def test_swap_needs_a_built_optimizer():
    with pytest.raises(ValueError, match="needs a built optimizer"):
        oz.ASGD().swap_average_weights([keras.Variable(np.zeros(2))])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    return x, y


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3),
                              keras.layers.Dense(1)])
    model.compile(optimizer=oz.ASGD(learning_rate=0.05, t0=1, **kwargs),
                  loss="mse", jit_compile=harness.backend() == "jax")
    return model


def test_save_load_keeps_ax_exactly(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "asgd.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is oz.ASGD
    for a, b in zip(_numpy(model.optimizer.variables),
                    _numpy(loaded.optimizer.variables)):
        np.testing.assert_array_equal(a, b)
    averages = _numpy(model.optimizer._slots["ax"])
    assert not all(np.array_equal(a, w) for a, w in
                   zip(averages, _numpy(model.trainable_variables)))
    loaded.optimizer.swap_average_weights(loaded.trainable_variables)
    for a, b in zip(_numpy(loaded.trainable_variables), averages):
        np.testing.assert_array_equal(a, b)


def test_callback_evaluates_with_averages_and_leaves_training_alone():
    x, y = _data()
    plain = _model()
    plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    model = _model()
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False,
                        verbose=0, validation_data=(x, y),
                        callbacks=[SwapAveragedWeights()])
    # the swaps around validation changed nothing in the training run
    for a, b in zip(_numpy(model.weights), _numpy(plain.weights)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_numpy(model.optimizer.variables),
                    _numpy(plain.optimizer.variables)):
        np.testing.assert_array_equal(a, b)
    # the last validation ran on the averaged weights
    with plain.optimizer.averaged_weights(plain.trainable_variables):
        averaged_loss = plain.evaluate(x, y, verbose=0)
    raw_loss = plain.evaluate(x, y, verbose=0)
    assert averaged_loss != pytest.approx(raw_loss, rel=1e-4)
    assert history.history["val_loss"][-1] == pytest.approx(averaged_loss,
                                                            rel=1e-5)
    # evaluate() with the callback also swaps in and back
    assert model.evaluate(x, y, verbose=0,
                          callbacks=[SwapAveragedWeights()]) == \
        pytest.approx(averaged_loss, rel=1e-5)
    for a, b in zip(_numpy(model.weights), _numpy(plain.weights)):
        np.testing.assert_array_equal(a, b)


def test_callback_refuses_other_optimizers():
    x, y = _data()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(optimizer=oz.SGD(), loss="mse")
    with pytest.raises(ValueError, match="SwapAveragedWeights needs"):
        model.evaluate(x, y, verbose=0, callbacks=[SwapAveragedWeights()])
