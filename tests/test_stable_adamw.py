"""StableAdamW in low precision, against torch-optimi 0.3.3's own bfloat16
and float16 runs; and the arguments optimi fixes at construction.

The generic tests (tests/specs.py, tests/spec_db/stable_adamw.py) compare
float32 trajectories, where Kahan summation does nothing, and run the
float16/bfloat16 variables against float32 optimi at the half type's
resolution (tests/test_mixed_precision.py). Here the oracle is optimi itself
on half-precision torch parameters (its for-loop path: torch computes each
half-precision CPU operation in float32 and rounds the result), and a
learning rate of 1e-3 on parameters of size 0.5-1 makes the updates smaller
than half a bfloat16 spacing (1e-4 in float16): without Kahan summation
they are lost.
"""

import numpy as np
import pytest
import torch

import keras
from keras import ops

import harness
import keras_optzoo as oz

STEPS = 60
SHAPES = [(16, 8), (8,), ()]
#: bits of the significand stored (float16: 10, bfloat16: 7)
MANTISSA = {"float16": 10, "bfloat16": 7}


def _problem():
    """Parameters of magnitude 0.5-1 (bfloat16 spacing 2^-8, float16
    2^-11) and gradients with a positive mean, so that the parameters
    move by about the learning rate every step."""
    rng = np.random.default_rng(0)
    init = [(rng.uniform(0.5, 1.0, size=s) * rng.choice([-1.0, 1.0], size=s)
             ).astype("float32") for s in SHAPES]
    grads = [[(0.5 + 0.5 * rng.normal(size=s)).astype("float32")
              for s in SHAPES] for _ in range(STEPS)]
    return init, grads


#: below half the spacing of the parameters: without Kahan summation most
#: updates round away
LEARNING_RATE = {"bfloat16": 1e-3, "float16": 1e-4}


def _optimi(init, grads, dtype, float32=False, **kwargs):
    """optimi on parameters and gradients of ``dtype`` (``float32``: those
    values, rounded to ``dtype``, held in float32)."""
    from optimi import StableAdamW

    def half(x):
        x = torch.tensor(x).to(getattr(torch, dtype))
        return x.float() if float32 else x

    params = [half(x).requires_grad_(True) for x in init]
    opt = StableAdamW(params, foreach=False, triton=False, **kwargs)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = half(g)
        opt.step()
    return [p.detach().float().numpy() for p in params]


def _ours(init, grads, dtype, mode, **kwargs):
    stepper = harness.Stepper(
        oz.StableAdamW(**kwargs),
        [ops.convert_to_tensor(x, dtype) for x in init], mode)
    assert all(keras.backend.standardize_dtype(v.dtype) == dtype
               for v in stepper.vars)
    for step in grads:
        stepper.step([ops.convert_to_tensor(g, dtype) for g in step])
    return [np.asarray(ops.convert_to_numpy(ops.cast(p, "float32")),
                       np.float32) for p in stepper.params()]


def _ulps(a, b, dtype):
    """|a − b| in units of the half type's spacing at |b| (a, b: float32
    arrays holding values of that type)."""
    exponent = np.floor(np.log2(np.maximum(np.abs(b), np.finfo(
        np.float32).tiny)))
    return np.abs(a - b) / np.exp2(exponent - MANTISSA[dtype])


#: the mode ``fit`` runs the optimizer in: eager on torch, compiled on JAX
#: and TF (eager JAX spends ~30 s a case dispatching the casts; the eager
#: math is the keras.ops code the torch backend runs eagerly)
MODE = harness.modes()[-1]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_equals_optimi_with_and_without_kahan(dtype):
    mode = MODE
    init, grads = _problem()
    lr = LEARNING_RATE[dtype]
    f32 = _optimi(init, grads, dtype, float32=True, lr=lr)
    start = [ops.convert_to_numpy(ops.cast(ops.convert_to_tensor(x, dtype),
                                           "float32")) for x in init]
    results = {}
    for kahan in (None, False):
        ours = _ours(init, grads, dtype, mode, learning_rate=lr,
                     kahan_sum=kahan)
        theirs = _optimi(init, grads, dtype, lr=lr, kahan_sum=kahan)
        # each element within one spacing of optimi's value (measured:
        # equal on CPU, every backend and mode); the rounding points are
        # optimi's
        worst = max(float(np.max(_ulps(o, t, dtype)))
                    for o, t in zip(ours, theirs))
        assert worst <= 1.0, f"kahan_sum={kahan}: {worst} spacings off"
        print(f"{dtype} {mode} kahan_sum={kahan}: {worst} spacings from "
              "optimi's run")
        results[kahan] = max(float(np.max(np.abs(o - r)))
                             for o, r in zip(ours, f32))
    # Kahan summation keeps the parameters within about one spacing of
    # the float32 run; without it the updates round away. Measured,
    # relative to the float32 run's largest movement: bfloat16 0.087 with
    # Kahan, 1.0 without (the parameters do not move); float16 0.058, 1.0.
    moved = max(float(np.max(np.abs(r - s))) for r, s in zip(f32, start))
    relative = {k: v / moved for k, v in results.items()}
    print(f"deviation from float32 optimi / its movement: {relative}")
    assert relative[None] <= 0.15, relative
    assert relative[False] >= 0.5, relative


def test_kahan_slot_only_for_half_variables():
    variables = [keras.Variable(np.zeros((2, 3), "float32")),
                 keras.Variable(ops.zeros((4,), dtype="bfloat16")),
                 keras.Variable(ops.zeros((), dtype="float16"))]

    def kahan_slots(kahan_sum):
        opt = oz.StableAdamW(kahan_sum=kahan_sum)
        opt.build(variables)
        return [(tuple(v.shape), keras.backend.standardize_dtype(v.dtype))
                for v in opt.variables if v.path.endswith("kahan_comp")]

    expected = [((4,), "bfloat16"), ((), "float16")]
    assert kahan_slots(None) == kahan_slots(True) == expected
    assert kahan_slots(False) == []


def test_kahan_sum_does_nothing_on_float32():
    init, grads = harness.problem(_FloatConfig(), steps=10)
    runs = [harness.run_ours(oz.StableAdamW(learning_rate=0.01,
                                            kahan_sum=kahan), init, grads,
                             mode=MODE)
            for kahan in (None, True, False)]
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b)


class _FloatConfig:
    grad_scale = 1.0
    param_scale = 1.0


def test_max_lr_is_the_constructor_rate_and_survives_a_rate_change():
    """optimi sets ``max_lr = lr`` once, at construction; a later rate
    (a scheduler's, or ours set between steps) leaves it. The resolved
    value is saved, so a restored optimizer keeps it too."""
    opt = oz.StableAdamW(learning_rate=0.02, decouple_lr=True)
    assert opt.max_lr == 0.02
    opt.learning_rate = 0.005
    config = opt.get_config()
    assert config["max_lr"] == 0.02 and config["learning_rate"] == 0.005
    assert oz.StableAdamW.from_config(config).max_lr == 0.02
    assert oz.StableAdamW(learning_rate=0.02).max_lr is None
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert oz.StableAdamW(learning_rate=schedule, decouple_lr=True,
                          max_lr=0.1).max_lr == 0.1


def test_maximize_is_the_step_on_the_negated_gradient():
    """optimi has no ``maximize``: ours negates the gradient first, so it
    must equal optimi on -g."""
    from optimi import StableAdamW

    init, grads = harness.problem(_FloatConfig(), steps=30)
    ours = harness.run_ours(oz.StableAdamW(learning_rate=0.03,
                                           maximize=True), init, grads,
                            mode=MODE)
    theirs = harness.run_torch(
        lambda ps: StableAdamW(ps, lr=0.03, foreach=False, triton=False),
        init, [[-g for g in step] for step in grads])
    harness.assert_trajectory_close(ours, theirs, init,
                                    what="optimi StableAdamW on -g")
