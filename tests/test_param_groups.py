"""Param groups (keras_optzoo/param_groups.py): every optimizer of the spec
database against its reference run with the same param groups and a torch
``LambdaLR`` scheduler; the multi-tensor path; fit, save/load and resume;
errors; the helpers against timm."""

import os
import re

import keras
import numpy as np
import pytest
import torch

import harness
import specs
import keras_optzoo as oz
from keras_optzoo import param_groups as pg

#: torch's LambdaLR multiplier (traceable: our schedule passes a tensor)
LAMBDA = staticmethod(lambda e: 1.0 / (1.0 + 0.05 * e))
STEPS = 30
GROUP_SHAPES = {(5,), (2, 3, 2)}  # harness.SHAPES[1] and [3]: the group


def _in_group(variable):
    return tuple(variable.shape) in GROUP_SHAPES


def _zoo_specs():
    return [pytest.param(spec, id=spec.name) for spec in specs.SPECS
            if issubclass(spec.cls, oz.optimizers.ZooOptimizer)]


def group_overrides(spec):
    """The "groups" variant: one group with another learning rate, weight
    decay (where the optimizer has it) and beta_1 or momentum."""
    kwargs = spec.configs[0].kwargs
    names = pg.allowed_keys(spec.cls(**kwargs))
    base_lr = kwargs.get("learning_rate",
                         spec.cls(**kwargs).get_config()["learning_rate"])
    out = {"learning_rate": 2.0 * base_lr}
    if "weight_decay" in spec.capabilities and "weight_decay" in names:
        out["weight_decay"] = 0.0 if kwargs.get("weight_decay") else 0.05
    if spec.name == "muon":
        # The reference adapter gives a group's weight_decay to both its
        # Muon and its AdamW; ours applies `weight_decay` to the Muon rule
        # and `adamw_weight_decay` to the AdamW rule, as the constructor.
        out.pop("weight_decay", None)
    if "beta_1" in names:
        out["beta_1"] = 0.6
    elif "momentum" in names:
        out["momentum"] = 0.5 if not kwargs.get("momentum") else 0.3
    return out


def _reference_group(spec, kwargs, overrides):
    convert = spec.reference_kwargs or (
        lambda kw: specs.torch_kwargs(spec, kw))
    return convert({**kwargs, **overrides})


def run_reference(spec, config, init, grads, overrides):
    kwargs = dict(config.kwargs)
    params = [torch.tensor(p, requires_grad=True) for p in init]
    default = [p for p, x in zip(params, init) if x.shape not in GROUP_SHAPES]
    group = [p for p, x in zip(params, init) if x.shape in GROUP_SHAPES]
    make = spec.make_reference or spec.torch_cls
    base = _reference_group(spec, kwargs, {})
    opt = make([{"params": default},
                {"params": group, **_reference_group(spec, kwargs,
                                                     overrides)}], **base)
    if isinstance(opt, torch.optim.Optimizer):
        sched = torch.optim.lr_scheduler.LambdaLR(opt, LAMBDA.__func__)
    else:  # an adapter (optax, row-wise SparseAdam): LambdaLR's rule
        sched = None
        base_lrs = [group["lr"] for group in opt.param_groups]
    for t, g in enumerate(grads):
        if sched is None:
            for group, lr in zip(opt.param_groups, base_lrs):
                group["lr"] = lr * LAMBDA.__func__(t)
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach().numpy().copy() for p in params]


def make_ours(spec, config, overrides, **extra):
    kwargs = dict(config.kwargs)
    lr = kwargs.pop("learning_rate",
                    spec.cls(**config.kwargs).get_config()["learning_rate"])
    return spec.cls(
        learning_rate=oz.schedules.LambdaLR(lr, LAMBDA.__func__),
        param_groups=[{"params": _in_group, **overrides}], **kwargs, **extra)


#: compiled mode (JAX jit / TF jit_compile) for a diverse subset only: the
#: group mechanism is the same Python at trace time for every optimizer,
#: and XLA compiles of all ~27 would take minutes (CI budget)
COMPILED = {"sgd", "adam", "rmsprop", "nadam", "adafactor", "muon", "lamb"}


def _cases():
    return [pytest.param(spec.values[0], mode, id=f"{spec.id}-{mode}")
            for spec in _zoo_specs() for mode in harness.modes()
            if mode == "eager" or spec.id in COMPILED]


@pytest.mark.parametrize("spec,mode", _cases())
def test_groups_match_reference(spec, mode):
    config = spec.configs[0]
    overrides = group_overrides(spec)
    init, grads = harness.problem(config, steps=STEPS)
    ref = run_reference(spec, config, init, grads, overrides)
    ours = harness.run_ours(make_ours(spec, config, overrides), init, grads,
                            mode=mode)
    harness.assert_trajectory_close(ours, ref, init,
                                    what=spec.reference_name)
    # the group really differs from the default (the check is not empty)
    plain = harness.run_ours(spec.cls(**config.kwargs), init, grads[:3])
    one = harness.run_ours(make_ours(spec, config, overrides), init,
                           grads[:3])
    assert not np.allclose(plain[1], one[1], rtol=0, atol=0)


@pytest.mark.skipif(harness.backend() != "torch",
                    reason="the multi-tensor path is the torch backend's")
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "nadam"])
def test_multi_tensor_path_per_group(name):
    spec = specs.SPECS_BY_NAME[name]
    config = spec.configs[0]
    overrides = group_overrides(spec)
    init, grads = harness.problem(config, steps=10)
    results = {}
    for mode in (None, "foreach", False):
        opt = make_ours(spec, config, overrides)
        opt.use_multi_tensor = mode
        results[mode] = harness.run_ours(opt, init, grads)
        if mode is not False:
            assert opt.update_path != "per-variable", opt.update_path
    for mode in (None, "foreach"):
        harness.assert_trajectory_close(results[mode], results[False], init,
                                        rtol=1e-6, what="per-variable path")


# ------------------------------------------------------------ lr semantics
def test_group_learning_rates_follow_schedule_plateau_and_assignment():
    var = [keras.Variable(np.zeros((2,), "float32"), name="body"),
           keras.Variable(np.zeros((3,), "float32"), name="head")]
    own = keras.optimizers.schedules.ExponentialDecay(0.5, 1, 0.5)
    opt = oz.SGD(learning_rate=0.1, param_groups=[
        {"params": "head", "learning_rate": 0.3, "lr_scale": 0.5}])
    opt.build(var)
    lr = opt._scaled_learning_rate(opt._learning_rate)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pg.group_learning_rate(opt, lr, 1)),
        0.15, rtol=1e-6)
    opt.learning_rate = 0.05           # assignment scales every group
    opt.learning_rate_scale.assign(0.5)  # as ReduceLROnPlateau does
    lr = opt._scaled_learning_rate(opt._learning_rate)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pg.group_learning_rate(opt, lr, 1)),
        0.3 * 0.5 * 0.5 * 0.5, rtol=1e-6)
    # a group with its own schedule (times learning_rate_scale)
    opt = oz.SGD(learning_rate=0.1, param_groups=[
        {"params": "head", "learning_rate": own}])
    opt.build(var)
    opt.iterations.assign(2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pg.group_learning_rate(opt, 0.1, 1)),
        0.5 * 0.25, rtol=1e-6)


def test_per_group_slots_and_decay_mask():
    var = [keras.Variable(np.zeros((2,), "float32"), name="w"),
           keras.Variable(np.zeros((3,), "float32"), name="bias")]
    opt = oz.Adam(weight_decay=0.1, param_groups=[
        {"params": "bias", "weight_decay": 0.0, "amsgrad": True}])
    opt.build(var)
    assert opt._decay_mask == [True, False]
    assert opt._slots["max_exp_avg_sq"][0] is None
    assert opt._slots["max_exp_avg_sq"][1] is not None


# ------------------------------------------------------ fit, save, resume
def _group_specs(model):
    return oz.param_groups.no_weight_decay(model) + [
        {"params": [model.layers[-1].kernel], "learning_rate": 0.05,
         "beta_1": 0.8}]


def test_fit_save_load_resume_bit_exact(tmp_path):
    x, y = harness.digits(128)
    sched = oz.schedules.CosineAnnealingLR(0.01, T_max=40)
    model = harness.digits_model("sgd")
    # groups built from the model's variables: compile again with them
    opt = oz.AdamW(learning_rate=sched, weight_decay=0.05,
                   param_groups=_group_specs(model))
    model.compile(optimizer=opt, loss=model.loss,
                  jit_compile=harness.backend() != "torch")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    config = model.optimizer.get_config()
    assert config["param_groups"][0]["params"] == [
        v.path for v in model.trainable_variables if len(v.shape) == 1]
    restored = keras.models.load_model(path)
    assert restored.optimizer._group_of == model.optimizer._group_of
    for m in (model, restored):
        m.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))


@keras.saving.register_keras_serializable(package="test_param_groups")
def registered_bias(variable):
    return variable.path.endswith("bias")


def test_callable_selector_serialization():
    opt = oz.SGD(0.1, param_groups=[{"params": registered_bias,
                                     "weight_decay": 0.0}])
    config = opt.get_config()
    again = oz.SGD.from_config(config)
    assert again._param_groups[0]["params"] is registered_bias
    opt = oz.SGD(0.1, param_groups=[{"params": lambda v: True}])
    with pytest.raises(ValueError, match=r"register_keras_serializable"):
        opt.get_config()


# ------------------------------------------------------------------ errors
def _build(opt):
    opt.build([keras.Variable(np.zeros((2,), "float32"), name="w"),
               keras.Variable(np.zeros((3,), "float32"), name="bias")])


@pytest.mark.parametrize("groups,match", [
    ([{"params": "w", "betas": (0.9, 0.99)}],
     r"param_groups\[0\].*unknown key\(s\) \['betas'\]"),
    ([{"params": "w", "clipnorm": 1.0}],
     r"param_groups\[0\].*unknown key\(s\) \['clipnorm'\]"),
    ([{"params": "w"}, {"params": "w|bias"}],
     r"Variable 'w' is matched by two param groups: param_groups\[0\]"
     r".* and param_groups\[1\]"),
    ([{"params": "head/"}], r"param_groups\[0\].*matches no variable"),
    ([{"params": "w", "beta_1": 1.5}],
     r"param_groups\[0\].*Argument `beta_1` must be in \[0, 1\)\. "
     r"Received: beta_1=1\.5"),
    ([{"weight_decay": 0.0}], r"param_groups\[0\].*has no 'params' key"),
    ([{"params": 3}], r"'params' must be a regular expression"),
    ([{"params": "w", "lr_scale": -1}], r"Argument `lr_scale` must be >= 0"),
])
def test_bad_groups_raise_at_build(groups, match):
    opt = oz.Adam(param_groups=groups)
    with pytest.raises(ValueError, match=match):
        _build(opt)


def test_group_lr_needs_a_base_rate():
    opt = oz.Adam(learning_rate=lambda: 0.1,
                  param_groups=[{"params": "w", "learning_rate": 0.2}])
    with pytest.raises(ValueError, match=r"relative to the optimizer's base"):
        _build(opt)


def test_param_groups_must_be_a_list():
    with pytest.raises(ValueError, match=r"`param_groups` must be a list"):
        oz.Adam(param_groups={"params": "w"})


# ----------------------------------------------------------------- helpers
def _block_model():
    """stem (Embedding-like Dense), two blocks of Dense + LayerNorm, head."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    h = keras.layers.Dense(6, name="stem")(inputs)
    for i in range(2):
        block = keras.Sequential([keras.layers.Dense(6),
                                  keras.layers.LayerNormalization()],
                                 name=f"block_{i}")
        h = block(h)
    outputs = keras.layers.Dense(3, name="head")(h)
    return keras.Model(inputs, outputs)


class _TorchBlocks(torch.nn.Module):
    """The same structure; timm numbers layers with its group_matcher."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Linear(4, 6)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.LayerNorm(6))
            for _ in range(2))
        self.head = torch.nn.Linear(6, 3)

    def group_matcher(self, coarse=False):
        return dict(stem=r"^stem", blocks=r"^blocks\.(\d+)")


def _timm_param_groups():
    """timm 1.0.31's ``timm.optim._param_groups``, loaded without running
    ``timm/__init__`` or ``timm/models/__init__`` (they import torchvision,
    which has no build for the pinned torch): bare package objects, and
    ``timm.layers`` (imported by ``_manipulate`` for a checkpointing flag
    ``group_parameters`` does not use) stubbed while loading."""
    import importlib
    import sys
    import types

    from reference.external import timm_optim

    timm_optim("lamb")  # registers the bare timm / timm.optim packages
    if "timm.optim._param_groups" in sys.modules:
        return sys.modules["timm.optim._param_groups"]
    root = sys.modules["timm"].__path__[0]
    saved = {name: sys.modules.get(name)
             for name in ("timm.models", "timm.layers")}
    models = types.ModuleType("timm.models")
    models.__path__ = [os.path.join(root, "models")]
    layers = types.ModuleType("timm.layers")
    layers.use_reentrant_ckpt = False
    sys.modules["timm.models"] = models
    sys.modules["timm.layers"] = layers
    try:
        models.group_parameters = importlib.import_module(
            "timm.models._manipulate").group_parameters
        return importlib.import_module("timm.optim._param_groups")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        sys.modules.pop("timm.models._manipulate", None)


def test_layer_decay_equals_timm():
    timm_groups = _timm_param_groups().param_groups_layer_decay(
        _TorchBlocks(), weight_decay=0.05, layer_decay=0.7)
    model = _block_model()
    ours = oz.param_groups.layer_decay(model, 0.7, weight_decay=0.05)
    shapes = lambda ps: [tuple(p.shape) for p in ps]  # noqa: E731
    # torch Linear weights are (out, in), Keras kernels (in, out)
    torch_shapes = lambda ps: [tuple(p.shape)[::-1] for p in ps]  # noqa
    assert len(ours) == len(timm_groups)
    for a, b in zip(ours, timm_groups):
        assert shapes(a["params"]) == torch_shapes(b["params"])
        assert a["lr_scale"] == pytest.approx(b["lr_scale"], rel=1e-15)
        assert a["weight_decay"] == b["weight_decay"]
    # and it trains: every variable in a group, the head at the full rate
    opt = oz.AdamW(1e-3, param_groups=ours)
    _build_model(model, opt)
    assert 0 not in opt._group_of
    head = [i for i, v in enumerate(model.trainable_variables)
            if v.path.startswith("head")]
    assert all(opt._groups[opt._group_of[i]].lr_factor == 1.0 for i in head)


def test_no_weight_decay_equals_timm_rule():
    timm_groups = _timm_param_groups().param_groups_weight_decay(
        _TorchBlocks(), weight_decay=0.05)
    model = _block_model()
    (group,) = oz.param_groups.no_weight_decay(model)
    assert group["weight_decay"] == 0.0
    assert sorted(tuple(v.shape) for v in group["params"]) == sorted(
        tuple(p.shape) for p in timm_groups[0]["params"])
    emb = keras.Sequential([keras.Input((3,), dtype="int32"),
                            keras.layers.Embedding(10, 4),
                            keras.layers.Dense(2)])
    (group,) = oz.param_groups.no_weight_decay(emb)
    assert [re.sub(".*/", "", v.path) for v in group["params"]] == [
        "embeddings", "bias"]


def _build_model(model, opt):
    opt.build(model.trainable_variables)
