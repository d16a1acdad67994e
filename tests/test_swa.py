"""Weight averaging, SWALR and update_bn against torch.optim.swa_utils."""

import warnings

import numpy as np
import pytest
import torch
from torch.optim import swa_utils

import keras

import keras_optzoo as oz
from keras_optzoo.callbacks import WeightAveraging
from keras_optzoo.callbacks import update_bn
import _sched_helpers as sh

N, BATCH = 48, 16  # 3 steps an epoch


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(N, 5)).astype("float32"),
            rng.normal(size=(N, 2)).astype("float32"))


def _model(bn=True):
    keras.utils.set_random_seed(3)
    layers = [keras.Input((5,)), keras.layers.Dense(6)]
    if bn:
        layers.append(keras.layers.BatchNormalization(momentum=0.8))
    layers += [keras.layers.Activation("relu"), keras.layers.Dense(2)]
    model = keras.Sequential(layers)
    model.compile(optimizer=oz.SGD(learning_rate=0.05, momentum=0.9),
                  loss="mse",
                  # the callback runs eagerly between compiled steps; XLA
                  # compilation would only slow the test down
                  jit_compile=False)
    return model


class _Recorder(keras.callbacks.Callback):
    """The model's weights (trainable, then float non-trainable) at the end
    of every batch and epoch, as numpy."""

    def __init__(self):
        super().__init__()
        self.steps, self.epochs = [], []

    def _weights(self):
        m = self.model
        return [keras.ops.convert_to_numpy(v).copy() for v in
                m.trainable_variables + m.non_trainable_variables
                if "float" in str(v.dtype)]

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self._weights())

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self._weights())


class _Holder(torch.nn.Module):
    """A torch module with one parameter / buffer per Keras variable."""

    def __init__(self, trainable, buffers):
        super().__init__()
        self.p = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.from_numpy(w.copy()))
             for w in trainable])
        for i, b in enumerate(buffers):
            self.register_buffer(f"b{i}", torch.from_numpy(b.copy()))

    def load(self, trainable, buffers):
        with torch.no_grad():
            for p, w in zip(self.p, trainable):
                p.copy_(torch.from_numpy(w))
            for i, b in enumerate(buffers):
                getattr(self, f"b{i}").copy_(torch.from_numpy(b))


def _torch_average(snapshots, n_trainable, avg_fn, decay, use_buffers):
    first = snapshots[0]
    holder = _Holder(first[:n_trainable], first[n_trainable:])
    kwargs = {"use_buffers": use_buffers}
    if avg_fn == "ema":
        kwargs["multi_avg_fn"] = swa_utils.get_ema_multi_avg_fn(decay)
    averaged = swa_utils.AveragedModel(holder, **kwargs)
    for weights in snapshots:
        holder.load(weights[:n_trainable], weights[n_trainable:])
        averaged.update_parameters(holder)
    out = [p.detach().numpy() for p in averaged.module.p]
    if use_buffers:
        out += [b.numpy() for b in averaged.module.buffers()]
    return out


CASES = [
    # avg_fn, interval, start, frequency, use_buffers
    ("swa", "epoch", 1, 1, False),
    ("swa", "step", 2, 3, True),
    ("ema", "step", 0, 1, True),
    ("ema", "epoch", 0, 2, False),
]


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c))
                                             for c in CASES])
def test_equals_torch_averaged_model(case):
    avg_fn, interval, start, frequency, use_buffers = case
    x, y = _data()
    model = _model()
    recorder = _Recorder()
    averaging = WeightAveraging(avg_fn=avg_fn, ema_decay=0.6, start=start,
                                frequency=frequency, interval=interval,
                                use_buffers=use_buffers)
    model.fit(x, y, batch_size=BATCH, epochs=5, shuffle=False, verbose=0,
              callbacks=[recorder, averaging])
    snapshots = recorder.epochs if interval == "epoch" else recorder.steps
    due = [s for k, s in enumerate(snapshots)
           if k >= start and (k - start) % frequency == 0]
    n_trainable = len(model.trainable_variables)
    ref = _torch_average(due, n_trainable, avg_fn, 0.6, use_buffers)
    state = averaging.state()
    ours = [keras.ops.convert_to_numpy(v) for v in state.averages]
    assert averaging.n_averaged == len(due)
    assert len(ours) == len(ref)
    init = due[0][:len(ref)]
    harness_scale = max(np.max(np.abs(r - i)) for r, i in zip(ref, init))
    dev = max(np.max(np.abs(o - r)) for o, r in zip(ours, ref))
    assert harness_scale > 0
    print(f"deviation from AveragedModel {case}: {dev:.2e} "
          f"(movement {harness_scale:.2e})")
    assert dev <= 1e-6 * max(harness_scale, 1.0), dev
    # the model keeps its own weights (swapped back after validation)
    model_now = recorder._weights()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.trainable_variables[0]),
        model_now[0])


def test_swap_and_transfer():
    x, y = _data()
    model = _model()
    averaging = WeightAveraging(interval="step")
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              validation_data=(x, y), callbacks=[averaging])
    own = model.get_weights()
    averages = [keras.ops.convert_to_numpy(v)
                for v in averaging.state().averages]
    assert averaging.swap_weights()
    swapped = [keras.ops.convert_to_numpy(v)
               for v in model.trainable_variables]
    for a, b in zip(swapped, averages):
        np.testing.assert_array_equal(a, b)
    averaging.swap_weights()
    for a, b in zip(model.get_weights(), own):
        np.testing.assert_array_equal(a, b)
    assert averaging.transfer_weights()
    for a, b in zip(model.trainable_variables, averages):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), b)


def test_resume_exact_through_keras_file(tmp_path):
    x, y = _data()

    def averaging():
        return WeightAveraging(avg_fn="swa", interval="step", start=1,
                               use_buffers=True)

    straight, cb = _model(), averaging()
    straight.fit(x, y, batch_size=BATCH, epochs=4, shuffle=False,
                 verbose=0, callbacks=[cb])
    expected = [keras.ops.convert_to_numpy(v) for v in cb.state().averages]

    model, cb1 = _model(), averaging()
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[cb1])
    path = str(tmp_path / "swa.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    cb2 = WeightAveraging(avg_fn="swa", interval="step", start=1,
                          use_buffers=True, resume_from=path)
    loaded.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
               callbacks=[cb2])
    assert cb2.n_averaged == cb.n_averaged
    for a, b in zip(cb2.state().averages, expected):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), b)
    for a, b in zip(loaded.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`avg_fn` must be one of"):
        WeightAveraging(avg_fn="mean")
    with pytest.raises(ValueError, match=r"`ema_decay` must be in \[0, 1\]"):
        WeightAveraging(avg_fn="ema", ema_decay=1.5)
    with pytest.raises(ValueError, match=r"`frequency` must be >= 1"):
        WeightAveraging(frequency=0)
    with pytest.raises(ValueError, match=r"`interval` must be one of"):
        WeightAveraging(interval="batch")


# ---------------------------------------------------------------- update_bn
def _bn_pair():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((4, 4, 2)),
        keras.layers.Conv2D(3, 3, padding="same"),
        keras.layers.BatchNormalization(epsilon=1e-5),  # torch eps
        keras.layers.Activation("relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
        keras.layers.BatchNormalization(epsilon=1e-5),  # torch eps
    ])
    conv, bn1, _, _, dense, bn2 = model.layers
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3),
        torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(48, 5),
        torch.nn.BatchNorm1d(5))
    k, b = conv.get_weights()
    dk, db = dense.get_weights()
    # Keras flattens NHWC, torch NCHW: permute the dense rows to match
    dk_torch = dk.reshape(4, 4, 3, 5).transpose(2, 0, 1, 3).reshape(48, 5)
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
        net[0].bias.copy_(torch.from_numpy(b))
        net[4].weight.copy_(torch.from_numpy(dk_torch.T.copy()))
        net[4].bias.copy_(torch.from_numpy(db))
    return model, net, (bn1, bn2), (net[1], net[5])


@pytest.mark.parametrize("unbiased", [True, False])
def test_update_bn_equals_torch(unbiased):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(70, 4, 4, 2)).astype("float32")
    model, net, ours, theirs = _bn_pair()
    batches = [x[i:i + 32] for i in range(0, 70, 32)]  # 32, 32, 6
    assert update_bn(model, [(b, None) for b in batches]) == 3
    swa_utils.update_bn(
        [torch.from_numpy(b.transpose(0, 3, 1, 2).copy()) for b in batches],
        net)
    for layer, bn in zip(ours, theirs):
        mean = bn.running_mean.numpy()
        var = bn.running_var.numpy()
        if not unbiased:
            # torch keeps the unbiased variance; undo it batch by batch
            continue
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layer.moving_mean), mean,
            rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layer.moving_variance), var,
            rtol=1e-5, atol=1e-6)
    if not unbiased:
        update_bn(model, x, batch_size=32, unbiased_variance=False)
        # plain average of the biased batch variances (Keras's convention)
        h = keras.ops.convert_to_numpy(model.layers[0](x))
        expected = np.mean([h[i:i + 32].var(axis=(0, 1, 2))
                            for i in range(0, 70, 32)], axis=0)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(ours[0].moving_variance), expected,
            rtol=1e-5)
    # momentum is restored
    assert ours[0].momentum == 0.99


# -------------------------------------------------------------------- SWALR
@pytest.mark.parametrize("anneal_epochs", [0, 1, 4, 10])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_equals_torch(anneal_epochs, strategy):
    lrs, _ = sh.torch_sequence(
        lambda opt: swa_utils.SWALR(opt, swa_lr=0.02,
                                    anneal_epochs=anneal_epochs,
                                    anneal_strategy=strategy),
        16, lr=0.5)
    schedule = oz.schedules.SWALR(0.5, 0.02, anneal_epochs=anneal_epochs,
                                  anneal_strategy=strategy,
                                  steps_per_epoch=2)
    ours = sh.evaluate_compiled(schedule, list(range(32)) + [10**9])
    np.testing.assert_allclose(ours[:-1], np.repeat(lrs, 2), rtol=1e-6,
                               atol=1e-9)
    np.testing.assert_allclose(ours[-1], 0.02, rtol=1e-6)


def test_swalr_after_cosine_as_torch_recipe():
    swa_start, epochs = 5, 14
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    swa = swa_utils.SWALR(opt, swa_lr=0.01, anneal_epochs=3)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if epoch > swa_start:
                swa.step()
            else:
                cosine.step()
    first = oz.schedules.CosineAnnealingLR(0.1, T_max=10)
    start_lr = float(keras.ops.convert_to_numpy(first(swa_start + 1)))
    schedule = oz.schedules.SequentialLR(
        [first, oz.schedules.SWALR(start_lr, 0.01, anneal_epochs=3)],
        milestones=[swa_start + 1])
    ours = sh.evaluate_compiled(schedule, range(epochs))
    np.testing.assert_allclose(ours, lrs, rtol=1e-6)


def test_swalr_config_and_errors():
    s = oz.schedules.SWALR(0.1, 0.05, anneal_epochs=3,
                           anneal_strategy="linear", steps_per_epoch=4)
    again = oz.schedules.SWALR.from_config(s.get_config())
    assert again.get_config() == s.get_config()
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(s))
    assert isinstance(restored, oz.schedules.SWALR)
    with pytest.raises(ValueError, match=r"`anneal_strategy` must be one of"):
        oz.schedules.SWALR(0.1, 0.05, anneal_strategy="exp")
    with pytest.raises(ValueError, match=r"`swa_lr` must be >= 0"):
        oz.schedules.SWALR(0.1, -0.05)
    with pytest.raises(ValueError, match=r"`anneal_epochs` must be >= 0"):
        oz.schedules.SWALR(0.1, 0.05, anneal_epochs=-1)
