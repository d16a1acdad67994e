"""SAM / ASAM (keras_optzoo.sam.SAMModel) against pytorch_optimizer.SAM."""

import numpy as np
import pytest
import torch

import keras

import keras_optzoo as oz
from keras_optzoo.sam import SAMModel
import harness

STEPS = 10
BATCH = 16


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS * BATCH, 5)).astype("float32")
    y = rng.normal(size=(STEPS * BATCH, 3)).astype("float32")
    return x, y


def _keras_mlp():
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(3),
    ])


def _torch_mlp(weights):
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 3))
    with torch.no_grad():
        for layer, (k, b) in zip([net[0], net[2]],
                                 [weights[:2], weights[2:]]):
            layer.weight.copy_(torch.from_numpy(k.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    return net


def _torch_weights(net):
    return [net[0].weight.detach().numpy().T, net[0].bias.detach().numpy(),
            net[2].weight.detach().numpy().T, net[2].bias.detach().numpy()]


def _reference(init, x, y, rho, adaptive, torch_cls, **kwargs):
    from pytorch_optimizer import SAM

    net = _torch_mlp(init)
    opt = SAM(net.parameters(), torch_cls, rho=rho, adaptive=adaptive,
              **kwargs)
    loss_fn = torch.nn.MSELoss()
    for i in range(STEPS):
        xb = torch.from_numpy(x[i * BATCH:(i + 1) * BATCH])
        yb = torch.from_numpy(y[i * BATCH:(i + 1) * BATCH])

        def closure():
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            return loss

        closure()
        opt.step(closure)
    return _torch_weights(net)


def _jit():
    return harness.backend() in ("jax", "tensorflow")


CASES = [
    # (id, rho, adaptive, keras optimizer, torch class, torch kwargs)
    ("sam-oz-sgd-momentum", 0.05, False,
     lambda: oz.SGD(learning_rate=0.1, momentum=0.9), torch.optim.SGD,
     {"lr": 0.1, "momentum": 0.9}),
    ("asam-oz-adamw", 0.5, True,
     lambda: oz.AdamW(learning_rate=0.01, weight_decay=0.01),
     torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.01}),
    ("sam-keras-sgd", 0.1, False,
     lambda: keras.optimizers.SGD(learning_rate=0.1), torch.optim.SGD,
     {"lr": 0.1}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_equals_pytorch_optimizer_sam(case):
    _, rho, adaptive, make_opt, torch_cls, torch_kwargs = case
    x, y = _data()
    inner = _keras_mlp()
    init = [w.copy() for w in inner.get_weights()]
    model = SAMModel(inner, rho=rho, adaptive=adaptive)
    model.compile(optimizer=make_opt(), loss="mse", jit_compile=_jit())
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    ref = _reference(init, x, y, rho, adaptive, torch_cls, **torch_kwargs)
    dev = harness.assert_trajectory_close(model.get_weights(), ref, init,
                                          what="pytorch_optimizer.SAM")
    print(f"SAM {case[0]}: relative deviation from pytorch_optimizer.SAM "
          f"{dev:.2e}")
    if case is not CASES[0]:
        return
    # SAM is not the plain optimizer: the plain step lands elsewhere
    plain = _keras_mlp()
    plain.compile(optimizer=make_opt(), loss="mse", jit_compile=_jit())
    plain.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    gap = max(np.max(np.abs(a - b)) for a, b in
              zip(plain.get_weights(), ref))
    assert gap > 1e-4


def test_reported_loss_is_first_pass():
    x, y = _data()
    inner = _keras_mlp()
    model = SAMModel(inner, rho=0.05)
    model.compile(optimizer=oz.SGD(learning_rate=0.0), loss="mse",
                  jit_compile=_jit())
    history = model.fit(x, y, batch_size=STEPS * BATCH, epochs=1,
                        shuffle=False, verbose=0)
    expected = float(np.mean((inner.predict(x, verbose=0) - y) ** 2))
    np.testing.assert_allclose(history.history["loss"][0], expected,
                               rtol=1e-5)


def test_batchnorm_statistics_from_first_pass_only():
    x, y = _data()
    keras.utils.set_random_seed(2)
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(momentum=0.5),
                              keras.layers.Dense(3)])
    model = SAMModel(inner, rho=0.5)
    model.compile(optimizer=oz.SGD(learning_rate=0.1), loss="mse",
                  jit_compile=_jit())
    kernel, bias = [w.copy() for w in inner.layers[0].get_weights()]
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1,
              shuffle=False, verbose=0)
    h = x[:BATCH] @ kernel + bias  # the first pass's BN input
    bn = inner.layers[1]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean), 0.5 * h.mean(0),
        rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_variance),
        0.5 + 0.5 * h.var(0), rtol=1e-5)


def test_save_load_resume_exact(tmp_path):
    x, y = _data()

    def fresh():
        model = SAMModel(_keras_mlp(), rho=0.3, adaptive=True)
        model.compile(optimizer=oz.Adam(learning_rate=0.01), loss="mse",
                      jit_compile=_jit())
        return model

    straight = fresh()
    straight.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)

    model = fresh()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "sam.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, SAMModel)
    assert (loaded.rho, loaded.adaptive) == (0.3, True)
    np.testing.assert_array_equal(loaded.predict(x[:4], verbose=0),
                                  model.predict(x[:4], verbose=0))
    loaded.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_config_round_trip_and_bad_input():
    model = SAMModel(_keras_mlp(), rho=0.2, adaptive=True, epsilon=1e-10)
    config = model.get_config()
    again = SAMModel.from_config(config)
    assert (again.rho, again.adaptive, again.epsilon) == (0.2, True, 1e-10)
    with pytest.raises(ValueError, match=r"`rho` must be >= 0.*rho=-1"):
        SAMModel(_keras_mlp(), rho=-1)
    with pytest.raises(TypeError, match="`model` must be a Keras model"):
        SAMModel("mlp")


_REPLICA_SCRIPT = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras.src.losses import loss as keras_loss
from keras_optzoo.sam import _unscale_for_replicas

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

def step():
    value = tf.constant(1.5)
    return (_unscale_for_replicas(tf, value),
            keras_loss.unscale_loss_for_distribution(value))

ours, theirs = strategy.run(step)
ours = [float(v) for v in strategy.experimental_local_results(ours)]
theirs = [float(v) for v in strategy.experimental_local_results(theirs)]
print("RESULT " + json.dumps({"ours": ours, "theirs": theirs,
                              "single": float(_unscale_for_replicas(
                                  tf, tf.constant(1.5)))}))
"""


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="tf.distribute replicas exist on TensorFlow only; "
                    "the other backends' train steps do not rescale the "
                    "tracked loss")
def test_loss_tracker_unscaling_equals_keras_under_mirrored_strategy():
    """SAMModel's TF step scales the tracked loss by the replica count as
    Keras's own train step does (its private
    ``unscale_loss_for_distribution`` is the oracle here), with 2 replicas
    on virtual CPU devices, and leaves it alone with one."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _REPLICA_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines()
            if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    assert result["ours"] == result["theirs"] == [3.0, 3.0]
    assert result["single"] == 1.5
