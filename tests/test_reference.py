"""The NumPy reference optimizers against torch.optim itself, both in float64.

Plain pytest: no keras, no keras_optzoo. 60-step trajectories on three params of shapes (3, 4), (5,)
and () with fixed random gradients, a learning-rate change before step 31, and per-step hyperparameter
callables mirrored into torch's param groups.
"""

import math

import numpy as np
import pytest
import torch

try:
    from tests.reference.numpy_optimizers import REFERENCES, NumpyAdam, NumpySGD
except ImportError:  # tests/ itself on sys.path (pytest rootdir-less "prepend" import mode)
    from reference.numpy_optimizers import REFERENCES, NumpyAdam, NumpySGD

SHAPES = [(3, 4), (5,), ()]
STEPS = 60
LR_CHANGE_AT = 30  # 0-based index of the first step that runs at the new learning rate
LR_FACTOR = 0.3

TORCH_CLASSES = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "nadam": torch.optim.NAdam,
}
BETA_2_DEFAULT = 0.999


def _ramp(lo, hi, n):
    return lambda i: lo + (hi - lo) * min(i, n) / n


EXCLUDE_MIDDLE = [True, False, True]

CONFIGS = [
    ("sgd", {}, 1.0),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}, 1.0),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}, 1.0),
    ("sgd", {"learning_rate": 0.02, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05}, 1.0),
    ("sgd", {"learning_rate": 0.02, "momentum": 0.5, "maximize": True, "weight_decay": 0.1}, 1.0),
    ("sgd", {"learning_rate": 0.02, "momentum": lambda i: 0.0 if i < 5 else 0.9}, 1.0),
    ("sgd", {"learning_rate": 0.02, "momentum": _ramp(0.95, 0.85, 40), "nesterov": True}, 1.0),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.2,
             "weight_decay_mask": EXCLUDE_MIDDLE}, 1.0),
    ("adagrad", {}, 1.0),
    ("adagrad", {"learning_rate": 0.1, "lr_decay": 0.05}, 1.0),
    ("adagrad", {"initial_accumulator_value": 0.1, "weight_decay": 0.02}, 1.0),
    ("adagrad", {"epsilon": 1e-3, "maximize": True}, 1e-3),
    ("adagrad", {"weight_decay": 0.5, "weight_decay_mask": EXCLUDE_MIDDLE}, 1.0),
    ("rmsprop", {}, 1.0),
    ("rmsprop", {"centered": True}, 1.0),
    ("rmsprop", {"learning_rate": 1e-3, "centered": True, "momentum": 0.9}, 1.0),
    ("rmsprop", {"rho": 0.9, "momentum": 0.5, "weight_decay": 0.01}, 1.0),
    ("rmsprop", {"maximize": True, "centered": True, "weight_decay": 0.1}, 1.0),
    ("rmsprop", {"learning_rate": 1e-3, "momentum": _ramp(0.5, 0.95, 20)}, 1.0),
    ("rmsprop", {"epsilon": 1e-6}, 1e-6),
    ("rmsprop", {"weight_decay": 0.3, "momentum": 0.9, "weight_decay_mask": EXCLUDE_MIDDLE}, 1.0),
    ("adadelta", {}, 1.0),
    ("adadelta", {"rho": 0.95, "weight_decay": 0.1}, 1.0),
    ("adadelta", {"learning_rate": 0.5, "epsilon": 1e-4, "maximize": True}, 1e-3),
    ("adadelta", {"weight_decay": 0.3, "weight_decay_mask": EXCLUDE_MIDDLE}, 1.0),
    ("adam", {}, 1.0),
    ("adam", {"amsgrad": True}, 1.0),
    ("adam", {"learning_rate": 1e-2, "weight_decay": 0.1}, 1.0),
    ("adam", {"learning_rate": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}, 1.0),
    ("adam", {"maximize": True, "amsgrad": True, "beta_2": 0.99}, 1.0),
    ("adam", {}, 1e-6),  # tiny gradients: epsilon placement matters
    ("adam", {"beta_1": _ramp(0.95, 0.85, 30), "epsilon": 1e-6}, 1.0),
    ("adam", {"learning_rate": 1e-2, "weight_decay": 0.5, "decoupled_weight_decay": True,
              "weight_decay_mask": EXCLUDE_MIDDLE}, 1.0),
    ("adamw", {}, 1.0),
    ("adamw", {"learning_rate": 1e-2, "weight_decay": 0.1, "amsgrad": True}, 1.0),
    ("adamw", {"maximize": True, "beta_1": 0.8}, 1e-6),
    ("adamw", {"beta_1": _ramp(0.85, 0.95, 30)}, 1.0),
    ("adamw", {"learning_rate": 1e-2, "weight_decay": 0.5, "weight_decay_mask": EXCLUDE_MIDDLE}, 1.0),
    ("nadam", {}, 1.0),
    ("nadam", {"momentum_decay": 0.05, "beta_2": 0.99}, 1.0),
    ("nadam", {"learning_rate": 1e-2, "weight_decay": 0.1}, 1.0),
    ("nadam", {"learning_rate": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}, 1.0),
    ("nadam", {"maximize": True}, 1e-6),
    ("nadam", {"beta_1": _ramp(0.95, 0.85, 30)}, 1.0),
    ("nadam", {"learning_rate": 1e-2, "weight_decay": 0.5, "weight_decay_mask": EXCLUDE_MIDDLE}, 1.0),
]


def _config_id(config):
    name, kwargs, scale = config
    parts = [name] + [k if callable(v) or v is True else f"{k}={v}" for k, v in kwargs.items()]
    parts = [p.replace("weight_decay_mask=" + str(EXCLUDE_MIDDLE), "wd_mask") for p in parts]
    if scale != 1.0:
        parts.append(f"g*{scale:g}")
    return "-".join(parts)


def _torch_kwargs(name, kwargs):
    """Keras spelling -> torch spelling; callables are replaced by their value at step index 0."""
    out = {}
    for key, value in kwargs.items():
        value = value(0) if callable(value) else value
        if key in ("weight_decay_mask", "beta_1", "beta_2"):
            continue
        elif key == "learning_rate":
            out["lr"] = value
        elif key == "epsilon":
            out["eps"] = value
        elif key == "rho" and name == "rmsprop":
            out["alpha"] = value
        else:
            out[key] = value
    if name in ("adam", "adamw", "nadam"):
        beta_1 = kwargs.get("beta_1", 0.9)
        out["betas"] = (beta_1(0) if callable(beta_1) else beta_1, kwargs.get("beta_2", BETA_2_DEFAULT))
    return out


@pytest.fixture(autouse=True)
def _float64_default_dtype():
    # Torch keeps scalar state (step, NAdam's mu_product) in float32 unless the default dtype is
    # float64; the comparison at 1e-10 needs it in float64.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _data(scale, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s) for s in SHAPES]
    grads = [[scale * rng.normal(size=s) for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def _run_torch(name, kwargs, params, grads):
    tensors = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    mask = kwargs.get("weight_decay_mask")
    if mask is None:
        groups = [{"params": tensors}]
    else:
        groups = [{"params": [t for t, m in zip(tensors, mask) if m]},
                  {"params": [t for t, m in zip(tensors, mask) if not m], "weight_decay": 0.0}]
    opt = TORCH_CLASSES[name](groups, **_torch_kwargs(name, kwargs))
    for i, step_grads in enumerate(grads):
        for group in opt.param_groups:
            if i == LR_CHANGE_AT:
                group["lr"] = group["lr"] * LR_FACTOR
            if callable(kwargs.get("momentum")):
                group["momentum"] = kwargs["momentum"](i)
            if callable(kwargs.get("beta_1")):
                group["betas"] = (kwargs["beta_1"](i), group["betas"][1])
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return [t.detach().numpy().copy() for t in tensors]


def _run_reference(name, kwargs, params, grads):
    opt = REFERENCES[name](params, **kwargs)
    for i, step_grads in enumerate(grads):
        if i == LR_CHANGE_AT:
            opt.learning_rate = opt.learning_rate * LR_FACTOR
        out = opt.step(step_grads)
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=[_config_id(c) for c in CONFIGS])
def test_matches_torch(config):
    name, kwargs, scale = config
    params, grads = _data(scale)
    expected = _run_torch(name, kwargs, params, grads)
    got = _run_reference(name, kwargs, params, grads)
    moved = max(float(np.max(np.abs(e - p0))) for e, p0 in zip(expected, params))
    diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected))
    assert all(g.shape == p.shape and g.dtype == np.float64 for g, p in zip(got, params))
    assert moved > 0.0
    assert diff <= 1e-10 * moved + 1e-14, (diff, moved)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_defaults_match_torch(name):
    # Reference defaults (incl. AdamW's weight_decay=1e-2) reproduce torch's defaults.
    params, grads = _data(1.0, seed=1)
    params, grads = params, grads[:10]
    assert np.allclose(
        np.concatenate([p.ravel() for p in _run_reference(name, {}, params, grads)]),
        np.concatenate([p.ravel() for p in _run_torch(name, {}, params, grads)]),
        rtol=0, atol=1e-13)


def test_inputs_untouched_and_outputs_are_copies():
    params, grads = _data(1.0)
    before = [p.copy() for p in params]
    opt = NumpyAdam(params)
    out = opt.step(grads[0])
    assert all(np.array_equal(p, b) for p, b in zip(params, before))
    out[0][...] = 123.0
    assert not np.any(opt.params[0] == 123.0)
    assert isinstance(opt.params[2], np.ndarray) and opt.params[2].shape == ()


def test_hand_computed_steps():
    # SGD momentum 0.9, lr 0.1, g = 1 twice: b1 = 1, b2 = 1.9 -> theta = -0.1 - 0.19.
    opt = NumpySGD([np.zeros(())], learning_rate=0.1, momentum=0.9)
    opt.step([np.ones(())])
    assert math.isclose(float(opt.step([np.ones(())])[0]), -0.29, rel_tol=1e-15)
    # Adam's first step is lr * g / (|g| + eps) for any beta_1 / beta_2.
    opt = NumpyAdam([np.zeros(2)], learning_rate=0.01, beta_1=0.5, beta_2=0.7)
    got = opt.step([np.array([3.0, -1e-8])])[0]
    np.testing.assert_allclose(got, [-0.01 * 3 / (3 + 1e-8), 0.01 * 1e-8 / 2e-8], rtol=1e-14)


def test_nesterov_validation():
    with pytest.raises(ValueError):
        NumpySGD([np.zeros(3)], momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError):
        NumpySGD([np.zeros(3)], nesterov=True)
