"""Schedules driving optimizers: momentum cycling and ReduceLROnPlateau
composed with a schedule inside `fit`.

Oracles: torch.optim + torch.optim.lr_scheduler (momentum cycling, the lr
sequences and plateau decisions) and a NumPy replay of SGD on a linear model
whose gradient is written out in closed form.
"""

import numpy as np
import pytest
import torch

import keras
from keras import ops

import harness
import keras_optzoo as oz
from keras_optzoo.callbacks import ReduceLROnPlateau

STEPS = 60


def _torch_run(make_opt, make_sched, init, grads):
    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = make_opt(params)
    sched = make_sched(opt)
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        opt.step()
        sched.step()
    return [p.detach().numpy() for p in params]


def _one_cycle(opt):
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1,
                                               total_steps=STEPS)


def _cyclic(opt):
    return torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1,
                                             step_size_up=10)


CASES = {
    "sgd-onecycle": (
        lambda s: oz.SGD(learning_rate=s, momentum=s.momentum_schedule()),
        lambda: oz.schedules.OneCycleLR(max_lr=0.1, total_steps=STEPS),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), _one_cycle),
    "sgd-nesterov-cyclic": (
        lambda s: oz.SGD(learning_rate=s, momentum=s.momentum_schedule(),
                         nesterov=True),
        lambda: oz.schedules.CyclicLR(base_lr=0.01, max_lr=0.1,
                                      step_size_up=10),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        _cyclic),
    "rmsprop-onecycle": (
        lambda s: oz.RMSprop(learning_rate=s, momentum=s.momentum_schedule()),
        lambda: oz.schedules.OneCycleLR(max_lr=0.1, total_steps=STEPS),
        lambda ps: torch.optim.RMSprop(ps, lr=0.1, momentum=0.9), _one_cycle),
    "adam-onecycle": (
        lambda s: oz.Adam(learning_rate=s, beta_1=s.momentum_schedule()),
        lambda: oz.schedules.OneCycleLR(max_lr=0.1, total_steps=STEPS),
        lambda ps: torch.optim.Adam(ps, lr=0.1), _one_cycle),
    "adamw-onecycle": (
        lambda s: oz.AdamW(learning_rate=s, beta_1=s.momentum_schedule(),
                           weight_decay=0.1),
        lambda: oz.schedules.OneCycleLR(max_lr=0.1, total_steps=STEPS),
        lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.1),
        _one_cycle),
    "nadam-cyclic": (
        lambda s: oz.NAdam(learning_rate=s, beta_1=s.momentum_schedule()),
        lambda: oz.schedules.CyclicLR(base_lr=0.01, max_lr=0.1,
                                      step_size_up=10, cycle_momentum=True),
        lambda ps: torch.optim.NAdam(ps, lr=0.1), _cyclic),
}


@pytest.mark.parametrize("mode", harness.modes())
@pytest.mark.parametrize("case", list(CASES))
def test_momentum_cycling_equals_torch(case, mode):
    make_ours, make_sched, make_torch, make_torch_sched = CASES[case]
    config = type("C", (), {"param_scale": 1.0, "grad_scale": 1.0})
    init, grads = harness.problem(config, steps=STEPS)
    ours = harness.run_ours(make_ours(make_sched()), init, grads, mode=mode)
    theirs = _torch_run(make_torch, make_torch_sched, init, grads)
    harness.assert_trajectory_close(ours, theirs, init, what="torch")


# ------------------------------------------- plateau x schedule inside fit
BATCH, N = 16, 64


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1)) + 0.5
         + 0.3 * rng.normal(size=(N, 1))).astype("float32")
    return x, y


def _torch_lrs(kind, epochs, steps_per_epoch):
    """Per-step learning rates of the torch scheduler (before each step)."""
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.05)
    if kind == "steplr":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        per_epoch = []
        for _ in range(epochs):
            per_epoch.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return np.repeat(per_epoch, steps_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.05, total_steps=epochs * steps_per_epoch,
        cycle_momentum=False)
    lrs = []
    for _ in range(epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(lrs)


def _replay(x, y, w, b, lrs, epochs, plateau_kwargs):
    """SGD on mean squared error in NumPy; torch's plateau scheduler decides
    the factor from the replay's own epoch losses."""
    w, b = w.astype(np.float64), b.astype(np.float64)
    param = torch.zeros(1, requires_grad=True)
    plateau_opt = torch.optim.SGD([param], lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(plateau_opt,
                                                         **plateau_kwargs)
    step, effective = 0, []
    for _ in range(epochs):
        factor = plateau_opt.param_groups[0]["lr"]
        losses = []
        for start in range(0, N, BATCH):
            xb, yb = x[start:start + BATCH], y[start:start + BATCH]
            residual = xb @ w + b - yb
            losses.append(np.mean(residual ** 2))
            lr = lrs[step] * factor
            effective.append(lr)
            w = w - lr * 2.0 * xb.T @ residual / len(xb)
            b = b - lr * 2.0 * residual.sum(axis=0) / len(xb)
            step += 1
        plateau.step(float(np.mean(losses)))
    return w, b, np.array(effective)


@pytest.mark.parametrize("kind", ["steplr", "onecycle"])
def test_plateau_composes_with_schedule_in_fit(kind):
    epochs, steps_per_epoch = 8, N // BATCH
    if kind == "steplr":
        schedule = oz.schedules.StepLR(0.05, step_size=2, gamma=0.5,
                                       steps_per_epoch=steps_per_epoch)
    else:
        schedule = oz.schedules.OneCycleLR(
            max_lr=0.05, total_steps=epochs * steps_per_epoch,
            cycle_momentum=False)
    plateau_kwargs = {"patience": 0, "factor": 0.5, "threshold": 0.2}
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=oz.SGD(learning_rate=schedule), loss="mse",
                  jit_compile=harness.backend() != "torch")
    w0, b0 = (ops.convert_to_numpy(v) for v in model.weights)

    seen = []

    class RecordLR(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(ops.convert_to_numpy(
                self.model.optimizer.learning_rate)))

    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False,
              verbose=0, callbacks=[ReduceLROnPlateau(monitor="loss",
                                                      **plateau_kwargs),
                                    RecordLR()])
    lrs = _torch_lrs(kind, epochs, steps_per_epoch)
    w, b, effective = _replay(x, y, w0, b0, lrs, epochs, plateau_kwargs)
    assert len(set(np.round(effective / lrs, 6))) > 1, \
        "the plateau never reduced: the composition was not exercised"
    np.testing.assert_allclose(seen, effective, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(model.weights[0]), w,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(model.weights[1]), b,
                               rtol=1e-4, atol=1e-5)
