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
#: The tensors of harness.problem's SHAPES that the spec's groups hold: one
#: group holds both; with two groups, the first holds (5,), the second
#: (2, 3, 2). (3, 4) and () stay in the default group.
GROUP_SHAPES = ((5,), (2, 3, 2))


def _owner(shape, n_groups):
    """Index of the spec group holding a tensor of ``shape`` (None: the
    default group)."""
    shape = tuple(shape)
    if shape not in GROUP_SHAPES:
        return None
    return 0 if n_groups == 1 else GROUP_SHAPES.index(shape)


@keras.saving.register_keras_serializable(package="test_param_groups")
class _Selector:
    """Selects the tensors of spec group ``k`` (a registered callable:
    optimizers refuse selectors Keras could not save)."""

    def __init__(self, k, n_groups):
        self.k, self.n_groups = k, n_groups

    def __call__(self, variable):
        return _owner(variable.shape, self.n_groups) == self.k

    def get_config(self):
        return {"k": self.k, "n_groups": self.n_groups}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="test_param_groups")
class _ShapeIs:
    """Selects the tensors of one shape."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def __call__(self, variable):
        return tuple(variable.shape) == self.shape

    def get_config(self):
        return {"shape": list(self.shape)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _selector(k, n_groups):
    return _Selector(k, n_groups)


def _zoo_specs():
    return [pytest.param(spec, id=spec.name) for spec in specs.SPECS
            if issubclass(spec.cls, oz.optimizers.ZooOptimizer)]


def _reference_group(spec, kwargs, overrides):
    convert = spec.reference_kwargs or (
        lambda kw: specs.torch_kwargs(spec, kw))
    return convert({**kwargs, **overrides})


def run_reference(spec, config, init, grads, groups):
    """The spec's reference with the default group and ``groups``, under
    torch's LambdaLR (its rule, for adapters that are not a
    torch.optim.Optimizer)."""
    kwargs = dict(config.kwargs)
    params = [torch.tensor(p, requires_grad=True) for p in init]
    owners = [_owner(x.shape, len(groups)) for x in init]
    make = spec.make_reference or spec.torch_cls
    base = _reference_group(spec, kwargs, {})
    torch_groups = [{"params": [p for p, o in zip(params, owners)
                                if o is None]}]
    torch_groups += [
        {"params": [p for p, o in zip(params, owners) if o == k],
         **_reference_group(spec, kwargs, overrides)}
        for k, overrides in enumerate(groups)]
    opt = make(torch_groups, **base)
    if hasattr(opt, "param_order"):
        # a reference fed the zoo's per-variable random draws (Kron's
        # FedKron) draws in the variables' order, which the groups change
        opt.param_order = params
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


def make_ours(spec, config, groups, **extra):
    kwargs = dict(config.kwargs)
    lr = kwargs.pop("learning_rate",
                    spec.cls(**config.kwargs).get_config()["learning_rate"])
    return spec.cls(
        learning_rate=oz.schedules.LambdaLR(lr, LAMBDA.__func__),
        param_groups=[{"params": _selector(k, len(groups)), **overrides}
                      for k, overrides in enumerate(groups)],
        **kwargs, **extra)


#: compiled mode (JAX jit / TF jit_compile) for a diverse subset only: the
#: group mechanism is the same Python at trace time for every optimizer,
#: and XLA compiles of all ~27 would take minutes (CI budget)
COMPILED = {"sgd", "adam", "rmsprop", "nadam", "adafactor", "muon", "lamb"}


def _cases():
    """Every optimizer eagerly on torch; on JAX and TF the optimizers of
    specs.base_feature_specs() (why: its docstring), compiled for the
    COMPILED subset."""
    here = {s.name for s in specs.base_feature_specs()}
    return [pytest.param(spec.values[0], mode, id=f"{spec.id}-{mode}")
            for spec in _zoo_specs() for mode in harness.modes()
            if spec.id in here and (mode == "eager" or spec.id in COMPILED)]


@pytest.mark.parametrize("spec,mode", _cases())
def test_groups_match_reference(spec, mode):
    config = spec.configs[0]
    groups = spec.group_overrides
    init, grads = harness.problem(config, steps=STEPS)
    ref = run_reference(spec, config, init, grads, groups)
    ours = harness.run_ours(make_ours(spec, config, groups), init, grads,
                            mode=mode)
    harness.assert_trajectory_close(ours, ref, init,
                                    what=spec.reference_name)


@pytest.mark.skipif(harness.backend() != "torch",
                    reason="the multi-tensor path is the torch backend's")
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "nadam"])
def test_multi_tensor_path_per_group(name):
    spec = specs.SPECS_BY_NAME[name]
    config = spec.configs[0]
    groups = spec.group_overrides
    init, grads = harness.problem(config, steps=10)
    results = {}
    for mode in (None, "foreach", False):
        opt = make_ours(spec, config, groups)
        opt.use_multi_tensor = mode
        results[mode] = harness.run_ours(opt, init, grads)
        if mode is not False:
            assert opt.update_path != "per-variable", opt.update_path
    for mode in (None, "foreach"):
        harness.assert_trajectory_close(results[mode], results[False], init,
                                        rtol=1e-6, what="per-variable path")


@pytest.mark.parametrize("spec", _zoo_specs())
def test_spec_groups_config(spec):
    """Every spec's ``groups`` (tests/specs.py): one or two dicts of
    overrides the optimizer accepts, not a copy of the generic default,
    and each group changes its tensors' trajectory (the reference test
    above is not comparing default groups)."""
    groups = spec.group_overrides
    assert isinstance(groups, list) and 1 <= len(groups) <= 2, groups
    allowed = pg.allowed_keys(spec.cls(**spec.configs[0].kwargs))
    for overrides in groups:
        assert isinstance(overrides, dict) and overrides, overrides
        assert "params" not in overrides, "the test assigns the tensors"
        assert set(overrides) <= allowed - {"params"}, (
            sorted(set(overrides) - allowed))
    if spec.groups is not None:
        assert spec.groups != specs.default_groups(spec), (
            f"{spec.name}: `groups` repeats the generic default; drop it")
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=3)
    plain = harness.run_ours(spec.cls(**config.kwargs), init, grads)
    opt = spec.cls(param_groups=[
        {"params": _selector(k, len(groups)), **overrides}
        for k, overrides in enumerate(groups)], **config.kwargs)
    grouped = harness.run_ours(opt, init, grads)
    for k in range(len(groups)):
        held = [i for i, x in enumerate(init)
                if _owner(x.shape, len(groups)) == k]
        assert held
        assert any(not np.array_equal(plain[i], grouped[i]) for i in held), (
            f"{spec.name}: group {k} {groups[k]} moves its tensors as the "
            "default group does")


# ------------------------------------------------------------ lr semantics
def test_group_learning_rates_follow_schedule_plateau_and_assignment():
    var = [keras.Variable(np.zeros((2,), "float32"), name="body"),
           keras.Variable(np.zeros((3,), "float32"), name="head")]
    own = keras.optimizers.schedules.ExponentialDecay(0.5, 1, 0.5)
    opt = oz.SGD(learning_rate=0.1, param_groups=[
        {"params": "head", "learning_rate": 0.3, "lr_scale": 0.5}])
    with pytest.raises(ValueError, match=r"needs the optimizer built"):
        opt.group_learning_rates()
    opt.build(var)
    rates = opt.group_learning_rates()
    assert list(rates) == ["default", "param_groups[0]"]
    np.testing.assert_allclose([rates["default"], rates["param_groups[0]"]],
                               [0.1, 0.15], rtol=1e-6)
    # the rate the update uses is the one reported
    lr = opt._scaled_learning_rate(opt._learning_rate)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pg.group_learning_rate(opt, lr, 1)),
        rates["param_groups[0]"], rtol=1e-7)
    opt.learning_rate = 0.05           # assignment scales every group
    opt.learning_rate_scale.assign(0.5)  # as ReduceLROnPlateau does
    np.testing.assert_allclose(
        opt.group_learning_rates()["param_groups[0]"],
        0.3 * 0.5 * 0.5 * 0.5, rtol=1e-6)
    # a group with its own schedule (times learning_rate_scale)
    opt = oz.SGD(learning_rate=0.1, param_groups=[
        {"params": "head", "learning_rate": own}])
    opt.build(var)
    opt.iterations.assign(2)
    opt.learning_rate_scale.assign(0.5)
    np.testing.assert_allclose(
        list(opt.group_learning_rates().values()),
        [0.1 * 0.5, 0.5 * 0.25 * 0.5], rtol=1e-6)
    # without groups: the optimizer's own rate
    assert list(oz.SGD(0.1).group_learning_rates()) == ["default"]


#: A schedule with no base rate of its own, as a user could write one.
class _Halving(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        return 0.1 * keras.ops.power(0.5, keras.ops.cast(step, "float32"))


#: (our schedule, torch's base lr, torch's schedulers on an optimizer):
#: schedules with no `initial_learning_rate`, each against the torch
#: scheduler it equals, so a group's rate is torch's group rate.
LR_CASES = {
    "sequential": (
        lambda: oz.schedules.SequentialLR(
            [oz.schedules.LinearLR(0.05, start_factor=0.25, total_iters=3),
             oz.schedules.CosineAnnealingLR(0.05, T_max=6)],
            milestones=[3]),
        0.05,
        lambda o: torch.optim.lr_scheduler.SequentialLR(o, [
            torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25,
                                              total_iters=3),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6)],
            milestones=[3])),
    "noam": (
        lambda: oz.schedules.Noam(16, 3, scale=2.0),
        2.0,
        lambda o: torch.optim.lr_scheduler.LambdaLR(
            o, lambda s: 16**-0.5 * min((s + 1)**-0.5, (s + 1) * 3**-1.5))),
    # Keras's own: its base rate is the first of its values
    "keras_piecewise": (
        lambda: keras.optimizers.schedules.PiecewiseConstantDecay(
            [3], [0.05, 0.005]),
        0.05,
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [4], gamma=0.1)),
}
LR_STEPS = 9


def _lr_problem():
    rng = np.random.default_rng(1)
    shapes = {"body": (3,), "head": (2,), "norm": (4,)}
    init = [rng.normal(size=s).astype("float32") for s in shapes.values()]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes.values()]
             for _ in range(LR_STEPS)]
    return init, grads


def _lr_groups(base):
    """Ours (selectors by shape) and torch's rates for the groups: default,
    a number learning_rate, an lr_scale."""
    ours = [{"params": _ShapeIs((2,)), "learning_rate": 0.2},
            {"params": _ShapeIs((4,)), "lr_scale": 0.5}]
    return ours, [base, 0.2, 0.5 * base]


def _torch_run(make_sched, base, init, grads):
    """torch's trajectory and each step's group rates."""
    params = [torch.tensor(p, requires_grad=True) for p in init]
    _, lrs = _lr_groups(base)
    opt = torch.optim.SGD([{"params": [p], "lr": lr}
                           for p, lr in zip(params, lrs)],
                          lr=base, momentum=0.9)
    sched = make_sched(opt)
    seen = []
    for g in grads:
        seen.append([group["lr"] for group in opt.param_groups])
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        opt.step()
        sched.step()
    seen.append([group["lr"] for group in opt.param_groups])
    return [p.detach().numpy() for p in params], np.array(seen)


@pytest.mark.parametrize("case", list(LR_CASES))
def test_group_rates_with_schedules_without_initial_rate_match_torch(case):
    """A number ``learning_rate`` in a group with a schedule that has no
    ``initial_learning_rate``: every group's rate (read with
    ``group_learning_rates()``) and trajectory equal torch's with the same
    param groups and scheduler; learning_rate_scale halves every group."""
    make, base, make_torch_sched = LR_CASES[case]
    init, grads = _lr_problem()
    ref, ref_lrs = _torch_run(make_torch_sched, base, init, grads)
    groups, _ = _lr_groups(base)
    opt = oz.SGD(learning_rate=make(), momentum=0.9, param_groups=groups)
    stepper = harness.Stepper(opt, init)
    seen = []
    for g in grads:
        seen.append(list(opt.group_learning_rates().values()))
        stepper.step(g)
    seen.append(list(opt.group_learning_rates().values()))
    np.testing.assert_allclose(seen, ref_lrs, rtol=2e-6, atol=0)
    harness.assert_trajectory_close(stepper.params(), ref, init,
                                    what="torch.optim.SGD + " + case)
    opt.learning_rate_scale.assign(0.5)  # as ReduceLROnPlateau does
    np.testing.assert_allclose(list(opt.group_learning_rates().values()),
                               0.5 * ref_lrs[-1], rtol=2e-6)


@pytest.mark.skipif(harness.backend() == "torch",
                    reason="the torch backend has no compiled optimizer "
                           "step (harness.modes); it runs the eager test")
def test_group_rates_with_sequential_lr_compiled():
    make, base, make_torch_sched = LR_CASES["sequential"]
    init, grads = _lr_problem()
    ref, _ = _torch_run(make_torch_sched, base, init, grads)
    groups, _ = _lr_groups(base)
    opt = oz.SGD(learning_rate=make(), momentum=0.9, param_groups=groups)
    ours = harness.run_ours(opt, init, grads, mode="compiled")
    harness.assert_trajectory_close(ours, ref, init,
                                    what="torch.optim.SGD + SequentialLR")


def test_schedules_give_their_base_rate():
    """``base_learning_rate`` of every keras-optzoo learning-rate schedule
    is the rate torch's optimizer would hold: the constructor's rate, the
    first child's for the composites, ``scale`` for Noam."""
    s = oz.schedules
    cases = [
        (s.StepLR(0.3, 2), 0.3),
        (s.CyclicLR(0.01, 0.1, 4), 0.01),
        (s.OneCycleLR(0.1, total_steps=10), 0.1 / 25),
        (s.CosineWithWarmup(0.3, 2, 10), 0.3),
        (s.SequentialLR([s.ConstantLR(0.3), s.StepLR(0.1, 2)], [2]), 0.3),
        (s.ChainedScheduler([s.ExponentialLR(0.2, 0.9),
                             s.StepLR(0.1, 2)]), 0.2),
        (s.with_warmup(s.SequentialLR([s.ConstantLR(0.4)], []), 3), 0.4),
        (s.Noam(16, 3, scale=2.5), 2.5),
    ]
    for schedule, expected in cases:
        assert schedule.base_learning_rate == pytest.approx(expected), (
            schedule)


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
    # an instance of a registered class with get_config round-trips too
    opt = oz.SGD(0.1, param_groups=[{"params": _ShapeIs((3,))}])
    again = oz.SGD.from_config(opt.get_config())
    assert again._param_groups[0]["params"].shape == (3,)


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


@pytest.mark.parametrize("learning_rate", [lambda: 0.1, _Halving()],
                         ids=["callable", "schedule_without_base"])
def test_group_lr_needs_a_base_rate(learning_rate):
    opt = oz.Adam(learning_rate=learning_rate,
                  param_groups=[{"params": "w", "learning_rate": 0.2}])
    with pytest.raises(ValueError, match=r"param_groups\[0\].*relative to "
                       r"the optimizer's base rate.*has base rate None\. "
                       r"Give the group its own schedule"):
        _build(opt)
    # an own schedule or an lr_scale needs no base rate
    _build(oz.Adam(learning_rate=learning_rate, param_groups=[
        {"params": "w", "learning_rate": _Halving()},
        {"params": "bias", "lr_scale": 2.0}]))


def test_own_schedule_with_a_base_rate_attribute():
    schedule = _Halving()
    schedule.base_learning_rate = 0.1  # schedule(0)
    opt = oz.SGD(learning_rate=schedule,
                 param_groups=[{"params": "w", "learning_rate": 0.2}])
    _build(opt)
    opt.iterations.assign(2)
    np.testing.assert_allclose(list(opt.group_learning_rates().values()),
                               [0.1 / 4, 0.2 / 4], rtol=1e-6)


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
