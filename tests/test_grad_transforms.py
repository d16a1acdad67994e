"""Gradient transforms on every optimizer: adaptive gradient clipping,
gradient centralization, scheduled weight decay, and their order.

Oracles: timm 1.0's ``adaptive_clip_grad`` (timm/utils/agc.py, loaded by
path: importing the ``timm`` package would import torchvision),
pytorch-optimizer's ``centralize_gradient``, and each spec's reference
optimizer fed the transformed gradients (AGC reads the *current*
parameters, so it is applied to the reference's own parameters before each
of its steps). The references put a layer's output units on the first axis
of the torch tensor. The generic tests' variables are plain arrays, which
the layout rule (keras_optzoo/layout.py) reads as stored, so the references
run on the same arrays; test_units_follow_the_layout_rule checks Keras
layers' kernels against the torch layout of the same layer.
"""

import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

import keras
from keras import ops

import harness
import specs
import keras_optzoo as oz

STEPS = 20
AGC = {"agc_clip_factor": 0.8, "agc_eps": 1e-3}
#: Muon's Newton-Schulz iteration amplifies the last-ulp differences of the
#: transforms' reductions (norms, means summed in another order than
#: torch's): perturbing the reference's own transformed gradients by one
#: ulp moves its 20-step trajectory by 1.2e-5 (measured), so 1e-5 would
#: test the summation order, not the rule.
RTOL = {"muon": 5e-5}


# ------------------------------------------------------------- references
def _timm_agc_module():
    loaded = sys.modules.get("timm")  # tests/reference/external.py's bare one
    if loaded is not None and getattr(loaded, "__path__", None):
        root = list(loaded.__path__)[0]
    else:
        spec = importlib.util.find_spec("timm")  # finds, does not import
        root = list(spec.submodule_search_locations)[0]
    loader = importlib.util.spec_from_file_location(
        "_timm_utils_agc", os.path.join(root, "utils", "agc.py"))
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


TIMM_AGC = _timm_agc_module()


def _centralize_gradient():
    from pytorch_optimizer.optimizer.gradient_centralization import (
        centralize_gradient)
    return centralize_gradient


def timm_agc(params, clip_factor, eps):
    """timm's ``adaptive_clip_grad``."""
    TIMM_AGC.adaptive_clip_grad(list(params), clip_factor=clip_factor,
                                eps=eps)


def pto_gc(params, conv_only=False):
    """pytorch-optimizer's ``centralize_gradient``."""
    centralize = _centralize_gradient()
    for p in params:
        centralize(p.grad, gc_conv_only=conv_only)


def _plain(shape):
    from keras_optzoo import layout

    return layout.Layout("identity", shape)


def _set_weight_decay(ref, value):
    """Sets the reference's weight decay for the next step."""
    # Muon's adapter also holds AdamW groups, whose decay is
    # `adamw_weight_decay` (not scheduled)
    groups = ref.muon.param_groups if hasattr(ref, "muon") \
        else ref.param_groups
    for group in groups:
        group["weight_decay"] = value
    for state in getattr(ref, "_states", ()):  # the optax adapter
        if "weight_decay" in state.hyperparams:
            state.hyperparams["weight_decay"] = np.asarray(
                value, state.hyperparams["weight_decay"].dtype)


def run_reference(spec, kwargs, init, grads, before_step=None, wd=None):
    params = [torch.tensor(p, requires_grad=True) for p in init]
    ref = specs.make_torch(spec, params, kwargs)
    for t, g in enumerate(grads):
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        if before_step is not None:
            before_step(params)
        if wd is not None:
            _set_weight_decay(ref, wd[t])
        ref.step()
    return [p.detach().numpy().copy() for p in params]


def _schedule_values(schedule, steps):
    return [float(ops.convert_to_numpy(schedule(t))) for t in range(steps)]


# ------------------------------------------------- the transforms themselves
SHAPES = [(), (5,), (4, 3), (3, 2, 6), (3, 3, 4, 5), (2, 2, 2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("clip_factor", [0.01, 0.5, 2.0])
def test_agc_equals_timm(shape, clip_factor):
    from keras_optzoo.optimizers import _transforms

    rng = np.random.default_rng(1)
    p = rng.normal(size=shape).astype("float32")
    g = rng.normal(size=shape).astype("float32")
    if len(shape) >= 2:
        p[0] *= 1e-5  # a unit whose norm is below eps
    ours = ops.convert_to_numpy(_transforms.adaptive_clip(
        ops.convert_to_tensor(g), ops.convert_to_tensor(p), clip_factor,
        1e-3, _plain(shape)))
    tp = torch.tensor(p, requires_grad=True)
    tp.grad = torch.tensor(g)
    timm_agc([tp], clip_factor, 1e-3)
    np.testing.assert_allclose(ours, tp.grad.numpy(), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("conv_only", [False, True])
def test_gc_equals_pytorch_optimizer(shape, conv_only):
    from keras_optzoo.optimizers import _transforms

    g = np.random.default_rng(2).normal(size=shape).astype("float32") + 0.3
    ours = ops.convert_to_numpy(_transforms.centralize(
        ops.convert_to_tensor(g), conv_only, _plain(shape)))
    tp = torch.zeros(shape, requires_grad=True)
    tp.grad = torch.tensor(g)
    pto_gc([tp], conv_only)
    np.testing.assert_allclose(ours, tp.grad.numpy(), rtol=1e-6, atol=1e-6)
    changed = not np.array_equal(ours, g)
    assert changed == (len(shape) > (3 if conv_only else 1))


def _layer_kernels():
    """(Keras layer, input shape, torch permutation/reshape of its kernel)."""
    layers = keras.layers
    return [
        (layers.Dense(4), (2, 6), lambda k: k.T),
        (layers.Conv2D(5, 3), (1, 6, 6, 2), lambda k: k.permute(3, 2, 0, 1)),
        (layers.Conv2DTranspose(5, 3), (1, 6, 6, 2),
         lambda k: k.permute(3, 2, 0, 1)),
        (layers.DepthwiseConv2D(3, depth_multiplier=2), (1, 6, 6, 3),
         lambda k: k.permute(2, 3, 0, 1).reshape(6, 1, 3, 3)),
        (layers.Embedding(7, 4), (2, 3), lambda k: k),
    ]


@pytest.mark.parametrize("index", range(5), ids=[
    "dense", "conv2d", "conv2d_transpose", "depthwise", "embedding"])
def test_units_follow_the_layout_rule(index):
    """On real layers: the transforms of a Keras layer's kernel gradient
    equal the references' on the torch layer's weight (nn.Linear (out, in),
    nn.Conv2d (out, in, kh, kw), nn.ConvTranspose2d (in, out, kh, kw), a
    depthwise nn.Conv2d (in*mult, 1, kh, kw), nn.Embedding (vocab, dim))."""
    from keras_optzoo import layout
    from keras_optzoo.optimizers import _transforms

    layer, input_shape, to_torch = _layer_kernels()[index]
    layer.build(input_shape)
    kernel = layer.trainable_variables[0]
    rule = layout.resolve(kernel)
    rng = np.random.default_rng(3)
    p = rng.normal(size=kernel.shape).astype("float32")
    g = rng.normal(size=kernel.shape).astype("float32")
    tp = to_torch(torch.tensor(p)).contiguous().requires_grad_(True)
    tp.grad = to_torch(torch.tensor(g)).contiguous()
    TIMM_AGC.adaptive_clip_grad([tp], clip_factor=0.5, eps=1e-3)
    _centralize_gradient()(tp.grad, gc_conv_only=False)
    ours = _transforms.centralize(_transforms.adaptive_clip(
        ops.convert_to_tensor(g), ops.convert_to_tensor(p), 0.5, 1e-3, rule),
        False, rule)
    np.testing.assert_allclose(
        ops.convert_to_numpy(rule.to_torch(ours)), tp.grad.numpy(),
        rtol=2e-6, atol=1e-6)


# --------------------------------------- every optimizer against its reference
def _cases():
    # every optimizer on torch, one per mechanism on JAX/TF: the
    # transforms run in the base class before any optimizer's own code
    # (why the matrix is thinned: specs.base_feature_specs)
    return [pytest.param(spec, id=spec.name)
            for spec in specs.base_feature_specs()]


def _agc_then_gc(params):
    timm_agc(params, AGC["agc_clip_factor"], AGC["agc_eps"])
    pto_gc(params)


@pytest.mark.parametrize("spec", _cases())
def test_agc_and_gc_trajectory(spec):
    """AGC and GC on (both: the transforms run in the base class before any
    optimizer's own code, so each optimizer needs one trajectory; the
    transforms alone are checked above, and AGC alone with LAMB below)."""
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=STEPS)
    # SOAP: AGC only. A centralized (3, 4) gradient has every row summing
    # to 0, so the ones vector is an exact eigenvector of its Gram matrix
    # with eigenvalue 0; the gradient's component along it is float32
    # rounding noise, which Adam in the eigenbasis normalises to steps of
    # size lr: the reference's trajectory is then set by its rounding
    # (25% apart from ours, AGC alone 1.2e-6).
    gc = spec.name != "soap"
    ours = harness.run_ours(
        spec.cls(**config.kwargs, **AGC, gradient_centralization=gc),
        init, grads)
    theirs = run_reference(
        spec, config.kwargs, init, grads,
        before_step=_agc_then_gc if gc else (
            lambda ps: timm_agc(ps, AGC["agc_clip_factor"],
                                AGC["agc_eps"])))
    harness.assert_trajectory_close(
        ours, theirs, init, rtol=RTOL.get(spec.name, 1e-5),
        what=f"{spec.reference_name} + timm AGC + pto GC")


def _decay_cases():
    cases = []
    for spec in specs.base_feature_specs():
        config = next((c for c in spec.configs
                       if c.kwargs.get("weight_decay")), None)
        if config is None and spec.name == "adamw":
            config = spec.configs[0]
        if config is not None:
            cases.append(pytest.param(spec, config,
                                      id=f"{spec.name}-{config.id}"))
    return cases


def _wd_schedule(kwargs):
    wd = kwargs.get("weight_decay", 1e-2)
    # from 2·wd down to 0.2·wd, cosine: differs from the constant at once
    return oz.schedules.CosineAnnealingLR(2.0 * wd, T_max=STEPS,
                                          eta_min=0.2 * wd)


@pytest.mark.parametrize("spec,config", _decay_cases())
def test_scheduled_weight_decay_trajectory(spec, config):
    init, grads = harness.problem(config, steps=STEPS)
    schedule = _wd_schedule(config.kwargs)
    kwargs = {**config.kwargs, "weight_decay": schedule}
    opt = spec.cls(**kwargs)
    ours = harness.run_ours(opt, init, grads)
    theirs = run_reference(spec, config.kwargs, init, grads,
                           wd=_schedule_values(schedule, STEPS))
    harness.assert_trajectory_close(
        ours, theirs, init, rtol=RTOL.get(spec.name, 1e-5),
        what=f"{spec.reference_name}, wd set each step")
    if keras.backend.backend() == "torch":
        assert opt.update_path != "fused"  # the kernels take a float


COMPILED = ["adam", "lamb", "sgd"]


@pytest.mark.parametrize("mode", harness.modes())
@pytest.mark.parametrize("name", COMPILED)
def test_all_transforms_compiled(name, mode):
    """AGC, GC and a scheduled decay together, eager and compiled (jit on
    JAX, tf.function(jit_compile=True) on TF)."""
    spec = specs.SPECS_BY_NAME[name]
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=STEPS)
    schedule = _wd_schedule({"weight_decay": 0.05})
    opt = spec.cls(**config.kwargs, **AGC, gradient_centralization=True,
                   weight_decay=schedule)
    ours = harness.run_ours(opt, init, grads, mode=mode)

    theirs = run_reference(spec, {**config.kwargs, "weight_decay": 0.05},
                           init, grads, before_step=_agc_then_gc,
                           wd=_schedule_values(schedule, STEPS))
    harness.assert_trajectory_close(ours, theirs, init,
                                    what=f"{spec.reference_name} + AGC + GC")


# ------------------------------------------------------------------- order
def _chain(init, grads, clipnorm, make, transforms_first=True):
    """Keras clipnorm (per tensor, numpy), then timm AGC and pto GC, then the
    torch optimizer (which negates for maximize, then adds L2 decay)."""
    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = make(params)
    for g in grads:
        for p, gi in zip(params, g):
            gi = gi * clipnorm / max(float(np.sqrt(np.sum(gi * gi))),
                                     clipnorm)
            p.grad = torch.tensor(gi.astype("float32"))
        if transforms_first:
            timm_agc(params, AGC["agc_clip_factor"], AGC["agc_eps"])
            pto_gc(params)
        else:  # the other order: decay into the gradient, then transform
            with torch.no_grad():
                for p in params:
                    p.grad = p.grad + 0.1 * p
            timm_agc(params, AGC["agc_clip_factor"], AGC["agc_eps"])
            pto_gc(params)
        opt.step()
    return [p.detach().numpy().copy() for p in params]


@pytest.mark.parametrize("decoupled", [False, True])
def test_order_clip_agc_gc_maximize_decay(decoupled):
    """Keras clipping -> AGC -> GC -> maximize -> weight decay -> update."""
    init, grads = harness.problem(specs.Config("x", {}), steps=STEPS)
    grads = [[3.0 * g for g in step] for step in grads]
    opt = oz.Adam(learning_rate=0.01, weight_decay=0.1, maximize=True,
                  decoupled_weight_decay=decoupled, clipnorm=1.0, **AGC,
                  gradient_centralization=True)
    ours = harness.run_ours(opt, init, grads)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam

    def make(ps, wd=0.1):
        return cls(ps, lr=0.01, weight_decay=wd, maximize=True)

    theirs = _chain(init, grads, 1.0, make)
    harness.assert_trajectory_close(ours, theirs, init,
                                    what="clipnorm, timm AGC, pto GC, torch")
    if not decoupled:
        # the test tells the orders apart: decay before the transforms
        other = _chain(init, grads, 1.0, lambda ps: make(ps, wd=0.0),
                       transforms_first=False)
        with pytest.raises(AssertionError):
            harness.assert_trajectory_close(ours, other, init)


def test_lamb_statistics_see_transformed_gradients():
    """timm's Lamb computes its global gradient norm (max_grad_norm) from
    ``p.grad`` after the training loop's AGC: here from the transformed
    gradients too."""
    spec = specs.SPECS_BY_NAME["lamb"]
    kwargs = {"learning_rate": 0.01, "max_grad_norm": 0.5}
    init, grads = harness.problem(specs.Config("x", {}), steps=STEPS)
    ours = harness.run_ours(spec.cls(**kwargs, **AGC), init, grads)
    theirs = run_reference(
        spec, kwargs, init, grads,
        before_step=lambda ps: timm_agc(ps, AGC["agc_clip_factor"],
                                        AGC["agc_eps"]))
    harness.assert_trajectory_close(ours, theirs, init, what="timm Lamb")


# -------------------------------------------------------- config and saving
def test_get_config_round_trip():
    schedule = oz.schedules.CosineAnnealingLR(0.05, T_max=100)
    for cls in (oz.AdamW, oz.SGD, oz.Lamb):
        opt = cls(learning_rate=0.01, weight_decay=schedule,
                  agc_clip_factor=0.02, agc_eps=1e-4,
                  gradient_centralization=True, gc_conv_only=True)
        config = opt.get_config()
        assert config["agc_clip_factor"] == 0.02
        assert config["agc_eps"] == 1e-4
        assert config["gradient_centralization"] is True
        assert config["gc_conv_only"] is True
        assert isinstance(config["weight_decay"], dict)
        again = cls.from_config(config)
        assert isinstance(again.weight_decay, oz.schedules.CosineAnnealingLR)
        assert again.weight_decay.get_config() == schedule.get_config()
        assert again.get_config() == config
        plain = cls().get_config()
        assert plain["agc_clip_factor"] is None
        assert plain["gradient_centralization"] is False


def test_fit_save_load_resume_exact(tmp_path):
    x, y = harness.digits(128)
    schedule = oz.schedules.CosineAnnealingLR(0.05, T_max=20)

    def optimizer():
        return oz.AdamW(learning_rate=0.01, weight_decay=schedule,
                        agc_clip_factor=0.05, gradient_centralization=True)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10)])
    # eager: the compiled step is tested above; this checks the file
    model.compile(optimizer=optimizer(), run_eagerly=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.run_eagerly
    assert loaded.optimizer.agc_clip_factor == 0.05
    assert isinstance(loaded.optimizer.weight_decay,
                      oz.schedules.CosineAnnealingLR)
    for m in (model, loaded):
        m.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("kwargs,error,match", [
    ({"agc_clip_factor": 0.0}, ValueError,
     r"Argument `agc_clip_factor` must be > 0\. Received: agc_clip_factor=0"),
    ({"agc_clip_factor": -1}, ValueError,
     r"Argument `agc_clip_factor` must be > 0\. "
     r"Received: agc_clip_factor=-1"),
    ({"agc_clip_factor": "big"}, TypeError,
     r"Argument `agc_clip_factor` must be a real number"),
    ({"agc_clip_factor": 0.01, "agc_eps": -1e-3}, ValueError,
     r"Argument `agc_eps` must be >= 0\. Received: agc_eps=-0\.001"),
    ({"gradient_centralization": 1}, TypeError,
     r"Argument `gradient_centralization` must be True or False"),
    ({"gc_conv_only": True}, ValueError,
     r"Argument `gc_conv_only=True` needs `gradient_centralization=True`"),
    ({"weight_decay": "0.1"}, TypeError,
     r"Argument `weight_decay` must be a real number or a "
     r"keras\.optimizers\.schedules\.LearningRateSchedule"),
    ({"weight_decay": -0.1}, ValueError,
     r"Argument `weight_decay` must be >= 0\. Received: weight_decay=-0\.1"),
])
@pytest.mark.parametrize("cls", [oz.Adam, oz.Lamb, oz.Muon],
                         ids=lambda c: c.__name__)
def test_bad_inputs(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)
