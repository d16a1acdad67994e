"""Prodigy, DAdaptAdam and DAdaptSGD beyond the generic tests: a Keras model
trained with ``fit`` against the same model in torch with the reference
(prodigyopt 1.1.2, dadaptation 3.2) at the default ``d0``, step size ``d``
included; a learning rate of 0 (the references' early return); the param
group rules; ``optimizer.d``; the playground; that the generic tests'
tolerance is the rule's value on every config of the specs.

Tolerance (the project's rule): max |θ − θ_ref| <= max(1e-5, 2 g) ·
max |θ_ref − θ_0|, with g the reference's own float32-vs-float64 gap on the
same run (the reference run again in float64 here), and the same rule for
the step size d against the largest d.

At the default d0 = 1e-6 that rule is loose for Prodigy: its numerator
sums <g, x0 - x> over steps of size ~d0 on parameters of size ~0.3, which
float32 resolves to one or two digits, so the reference's own float32 run
ends 25-60% of the movement away from its float64 run (d 0.8-16%). Both
float32 implementations take that difference of the same float32 values
(exact by Sterbenz's lemma), so ours is also compared with the float32
reference: measured at most 7.5e-6 of the movement (Prodigy, TF), 1.3e-5
(DAdaptAdam, torch: the loss's gradient rounds differently from torch's),
d within 1.3e-6; asserted 1e-4 (FLOAT32_RTOL).
"""

import dataclasses

import numpy as np
import pytest
import torch

import keras
from keras import ops

import harness
import specs
import keras_optzoo as oz

NAMES = ["prodigy", "dadaptadam", "dadaptsgd"]
BATCH = 32
EPOCHS = 4          # 8 steps an epoch on 256 digits
STEPS = 256 // BATCH * EPOCHS
FLOAT32_RTOL = 1e-4


def _rule(ref32, ref64, scale):
    """max(1e-5, 2 x the reference's own float32-vs-float64 gap)."""
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(ref32, ref64))
    return max(1e-5, 2.0 * gap / scale), gap / scale


class _RecordD(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.d = []

    def on_train_batch_end(self, batch, logs=None):
        self.d.append(self.model.optimizer.d)


def _torch_run(spec, kwargs, weights, x, y, dtype):
    """The model of harness.digits_model in torch (Dense kernels
    transposed), trained by the reference on the same batches."""
    layers = [torch.nn.Linear(64, 16), torch.nn.ReLU(),
              torch.nn.Linear(16, 10)]
    model = torch.nn.Sequential(*layers).to(dtype)
    with torch.no_grad():
        for layer, (kernel, bias) in zip(layers[::2],
                                         zip(weights[::2], weights[1::2])):
            layer.weight.copy_(torch.tensor(kernel.T, dtype=dtype))
            layer.bias.copy_(torch.tensor(bias, dtype=dtype))
    params = [p for layer in layers[::2] for p in (layer.weight, layer.bias)]
    opt = specs.make_torch(spec, params, kwargs)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs = torch.tensor(x, dtype=dtype)
    ys = torch.tensor(y, dtype=torch.long)
    ds = []
    for _ in range(EPOCHS):
        for start in range(0, len(x), BATCH):
            for p in params:
                p.grad = None
            loss = loss_fn(model(xs[start:start + BATCH]),
                           ys[start:start + BATCH])
            loss.backward()
            opt.step()
            ds.append(float(opt.param_groups[0]["d"]))
    out = []
    for layer in layers[::2]:
        out += [layer.weight.detach().numpy().T.astype(np.float64),
                layer.bias.detach().numpy().astype(np.float64)]
    return out, np.array(ds)


@pytest.mark.parametrize("name", NAMES)
def test_digits_fit_matches_reference_at_default_d0(name):
    """Defaults (learning rate 1, d0 = 1e-6): the estimate grows from 1e-6
    over the run, as in the reference."""
    spec = specs.SPECS_BY_NAME[name]
    kwargs = {"weight_decay": 1e-3} if name != "dadaptsgd" else \
        {"momentum": 0.9}
    x, y = harness.digits()
    model = harness.digits_model(spec.cls(**kwargs),
                                 jit_compile=harness.fit_jit_compile())
    init = [ops.convert_to_numpy(w).astype(np.float64)
            for w in model.get_weights()]
    record = _RecordD()
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
              verbose=0, callbacks=[record])
    ours = [ops.convert_to_numpy(w).astype(np.float64)
            for w in model.get_weights()]
    ref32, d32 = _torch_run(spec, kwargs, init, x, y, torch.float32)
    ref64, d64 = _torch_run(spec, kwargs, init, x, y, torch.float64)
    scale = max(float(np.max(np.abs(r - i))) for r, i in zip(ref64, init))
    tol, gap = _rule(ref32, ref64, scale)
    dev = max(float(np.max(np.abs(o - r))) for o, r in zip(ours, ref64))
    d_ours = np.array(record.d)
    d_scale = float(np.max(d64))
    d_tol, d_gap = _rule([d32], [d64], d_scale)
    d_dev = float(np.max(np.abs(d_ours - d64)))
    dev32 = max(float(np.max(np.abs(o - r))) for o, r in zip(ours, ref32))
    d_dev32 = float(np.max(np.abs(d_ours - d32)))
    print(f"{name}: weights dev {dev / scale:.2e} (ref gap {gap:.2e}, "
          f"moved {scale:.3g}); d dev {d_dev / d_scale:.2e} (ref gap "
          f"{d_gap:.2e}, d {d64[0]:.3g} -> {d64[-1]:.3g}); vs the float32 "
          f"reference: weights {dev32 / scale:.2e}, d {d_dev32 / d_scale:.2e}")
    assert len(d_ours) == STEPS
    assert d64[-1] > 100 * 1e-6, "d did not grow: the check is weak"
    assert dev <= tol * scale, (dev / scale, tol)
    assert d_dev <= d_tol * d_scale, (d_dev / d_scale, d_tol)
    # the sharper check (see the module docstring)
    assert dev32 <= FLOAT32_RTOL * scale, dev32 / scale
    assert d_dev32 <= FLOAT32_RTOL * d_scale, d_dev32 / d_scale


def _lr_zero_start(spec, mode):
    """Learning rate 0 for the first two steps (a warm-up from 0), then
    1 and 0.3: the references return early while it is 0 (their k does
    not count those steps)."""
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=20)
    lrs = [0.0, 0.0] + [1.0] * 9 + [0.3] * 9
    ours = harness.run_ours(spec.cls(**config.kwargs), init, grads, lrs,
                            mode)
    theirs = harness.run_torch(
        lambda ps: specs.make_torch(spec, ps, config.kwargs), init, grads,
        lrs)
    harness.assert_trajectory_close(ours, theirs, init,
                                    what=spec.reference_name)


@pytest.mark.parametrize("mode", harness.modes())
@pytest.mark.parametrize("name", NAMES)
def test_learning_rate_zero_steps_match_reference(name, mode):
    _lr_zero_start(specs.SPECS_BY_NAME[name], mode)


def test_bias_correction_counts_only_steps_that_moved():
    """Prodigy with the bias correction after two steps at rate 0: its k
    (and so the correction) starts when the rate does, as the reference's;
    a correction computed from Keras's ``iterations`` would differ."""
    spec = specs.SPECS_BY_NAME["prodigy"]
    config = spec.config("bias_correction_safeguard")
    _lr_zero_start(dataclasses.replace(spec, configs=[config]), "eager")


def test_d_property():
    opt = oz.Prodigy(d0=1e-3)
    with pytest.raises(ValueError, match="needs the optimizer built"):
        opt.d
    variables = [keras.Variable(np.ones((3,), "float32"))]
    opt.build(variables)
    assert opt.d == pytest.approx(1e-3)
    opt.apply([ops.ones((3,))], variables)
    opt.apply([ops.ones((3,))], variables)
    assert opt.d > 1e-3


def _two_variables():
    return [keras.Variable(np.ones((2,), "float32"), name="body"),
            keras.Variable(np.ones((3,), "float32"), name="head")]


@pytest.mark.parametrize("group,match", [
    ({"params": "head", "learning_rate": 0.5},
     r"every group's learning rate must be the same, or 0"),
    ({"params": "head", "lr_scale": 2.0},
     r"every group's learning rate must be the same, or 0"),
    ({"params": "head", "beta_1": 0.5},
     r"uses one value of \['beta_1'\] for all param groups"),
    ({"params": "head",
      "learning_rate": keras.optimizers.schedules.ExponentialDecay(
          1.0, 10, 0.5)},
     r"takes one learning rate for all param groups"),
])
def test_param_group_rules(group, match):
    opt = oz.Prodigy(param_groups=[group])
    with pytest.raises(ValueError, match=match):
        opt.build(_two_variables())


def test_dadaptsgd_groups_may_only_freeze():
    opt = oz.DAdaptSGD(param_groups=[{"params": "head",
                                      "weight_decay": 0.1}])
    with pytest.raises(ValueError, match=r"\['weight_decay'\]"):
        opt.build(_two_variables())
    # the same rate as the optimizer's, or 0, is accepted
    for rate in (1.0, 0.0):
        oz.DAdaptSGD(param_groups=[{"params": "head",
                                    "learning_rate": rate}]).build(
            _two_variables())


@pytest.mark.parametrize("name", NAMES)
def test_playground_runs_them_by_registry_name(name):
    """The 2-D playground takes them by name with their defaults (learning
    rate 1): on the ill-conditioned quadratic each reaches the minimum."""
    from keras_optzoo import playground as pg

    function = pg.get_function("ill_conditioned")
    summary = pg.run(name, function, steps=300).summary(function)
    assert summary.diverged_at is None
    assert summary.first_within_tol is not None, summary


def _reference_gap(spec, config):
    """The reference's own float32-vs-float64 gap on the trajectory test's
    problem (harness.problem, 60 steps, the learning rate change),
    relative to its float64 movement."""
    init, grads = harness.problem(config)
    lr = config.kwargs.get("learning_rate", 1.0)
    lrs = harness.lr_schedule_for(config.kwargs, lr)

    def run(dtype):
        params = [torch.tensor(p, dtype=dtype, requires_grad=True)
                  for p in init]
        opt = specs.make_torch(spec, params, config.kwargs)
        for t, step in enumerate(grads):
            for group in opt.param_groups:
                group["lr"] = lrs[t]
            for p, g in zip(params, step):
                p.grad = torch.tensor(g, dtype=dtype)
            opt.step()
        return [p.detach().numpy().astype(np.float64) for p in params]

    ref32, ref64 = run(torch.float32), run(torch.float64)
    scale = max(float(np.max(np.abs(r - i))) for r, i in zip(ref64, init))
    return _rule(ref32, ref64, scale)


@pytest.mark.parametrize("name", NAMES)
def test_generic_tolerance_is_the_rule_on_every_config(name):
    """The trajectory tests use 1e-5; the rule is max(1e-5, 2 x the
    reference's own gap): on every config of the spec the two agree."""
    spec = specs.SPECS_BY_NAME[name]
    for config in spec.configs:
        tol, gap = _reference_gap(spec, config)
        print(f"{name}-{config.id}: reference float32-vs-float64 gap "
              f"{gap:.2e}")
        assert tol == 1e-5, (config.id, gap)
