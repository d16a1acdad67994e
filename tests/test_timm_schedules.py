"""timm's schedulers (keras_optzoo/schedules/timm.py) against timm 1.0.31.

Oracle: timm's own scheduler classes on a torch optimizer, asked for the
rate of each ``t`` the way timm's training loop asks (``step(t)`` /
``step_update(t)``, the constructor's value at ``t = 0``; see
``tests/_timm_sched_cases.py``), at every step of grids through several
cycles, their boundaries and far steps up to 2**31 - 1, each grid evaluated
in one compiled call (jax.jit / tf.function(jit_compile=True) / torch). The
noise numbers against timm's own ``_calculate_noise`` (a seeded torch
generator) for thousands of seeds; ``create_scheduler_v2`` against the
README's mapping; timm's ``lr_scale`` param groups, with_warmup and
ReduceLROnPlateau composed with them; config and ``.keras`` round trips.
"""

import json
import warnings

import numpy as np
import pytest
import torch

import keras
from keras import ops

import _sched_helpers as H
import _timm_sched_cases as C
import harness
import keras_optzoo as oz
from keras_optzoo import schedules as S
from keras_optzoo.callbacks import ReduceLROnPlateau
from keras_optzoo.schedules import _torch_noise
from test_schedule_composition import BATCH, N, _data, _replay

try:
    from reference.external import timm_scheduler
except ImportError:  # run from the repository root
    from tests.reference.external import timm_scheduler

RTOL = 1e-6


# --------------------------------------------------------------------------
# Against timm
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", C.CASES, ids=[c.id for c in C.CASES])
def test_matches_timm(case):
    steps, ours, expected = C.run_case(case)
    assert np.all(np.isfinite(ours)), "non-finite value"
    known = ~np.isnan(expected)
    # relative 1e-6 (the issue asks 1e-6 of the peak; this is stronger)
    np.testing.assert_allclose(ours[known], expected[known], rtol=RTOL,
                               atol=C.ATOL, err_msg=f"{case.id}")
    peak_deviation, _ = C.deviations(ours, expected)
    assert peak_deviation <= C.PEAK_TOL
    # Where timm's cycle_mul < 1 formula raises (log of a number <= 0, past
    # t_initial / (1 - cycle_mul)), ours holds lr_min.
    if not known.all():
        np.testing.assert_array_equal(ours[~known],
                                      np.float32(case.ours().lr_min))


# One case per class (and the noise): the scalar step a Keras optimizer
# passes, compiled once and called per step, gives the same.
_SCALAR_IDS = ["cosine-mul1.5", "tanh-warmup-inside", "poly-mul2",
               "step-fractional-effnet", "multistep-early-repeated",
               "cosine-noise"]


@pytest.mark.parametrize("case_id", _SCALAR_IDS)
def test_scalar_step_in_compiled_code(case_id):
    case = next(c for c in C.CASES if c.id == case_id)
    steps = [0, 1, 2, 9, 10, 11, 30, 47, 100, C.HUGE_STEP]
    expected = C.expected(case, steps)
    ours = H.evaluate_compiled(case.ours(), steps)
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=C.ATOL)


def test_keras_optimizer_applies_the_rate_of_each_update():
    # Update k uses timm's rate after step_update(k) (the constructor's
    # for k = 0): the warm-up, then noise from t = 3 on.
    case = C.case(
        "updates",
        lambda: S.CosineLRScheduler(1.0, 6, warmup_t=2, warmup_lr_init=0.1,
                                    t_in_epochs=False, cycle_limit=2,
                                    noise_range_t=(3, 9)),
        lambda o: C.C(o, 6, warmup_t=2, warmup_lr_init=0.1,
                      t_in_epochs=False, cycle_limit=2,
                      noise_range_t=(3, 9)),
        np.arange(10))
    expected = C.expected(case)
    optimizer = keras.optimizers.SGD(learning_rate=case.ours())
    variable = keras.Variable(np.zeros((), "float32"))
    optimizer.build([variable])
    before = 0.0
    for k in range(10):
        optimizer.apply([ops.ones(())], [variable])
        after = float(ops.convert_to_numpy(variable))
        assert before - after == pytest.approx(expected[k], rel=1e-6)
        before = after


def test_timm_loop_convention():
    # What the oracle assumes: timm's train.py sets the rate of epoch e + 1
    # with step(e + 1) after epoch e, and makes no call before epoch 0.
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = C.T(opt, t_initial=10)
    assert opt.param_groups[0]["lr"] == 0.1  # the constructor's, not
    assert sched._get_lr(0)[0] != 0.1        # the tanh formula's at 0
    ours = C.evaluate_grid(S.TanhLRScheduler(0.1, 10), [0, 1])
    np.testing.assert_allclose(ours[0], 0.1, rtol=RTOL)


def test_get_cycle_length_equals_timm():
    for kwargs in [dict(t_initial=10), dict(t_initial=10, cycle_limit=3),
                   dict(t_initial=7, cycle_mul=1.5, cycle_limit=4,
                        warmup_t=3, warmup_prefix=True),
                   dict(t_initial=64, cycle_mul=0.5, cycle_limit=5)]:
        for ours_cls, timm_cls in [(S.CosineLRScheduler, C.C),
                                   (S.TanhLRScheduler, C.T),
                                   (S.PolyLRScheduler, C.P)]:
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                  lr=0.1)
            theirs = timm_cls(opt, **kwargs)
            ours = ours_cls(0.1, **kwargs)
            for cycles in (0, 1, 2):
                assert (ours.get_cycle_length(cycles)
                        == theirs.get_cycle_length(cycles))


# --------------------------------------------------------------------------
# The noise: a reproduction of torch's CPU generator
# --------------------------------------------------------------------------


@pytest.mark.parametrize("pct,std", [(0.67, 1.0), (0.1, 1.0), (0.3, 0.2),
                                     (5.0, 1.0)],
                         ids=["defaults", "mostly-rejected", "small-std",
                              "never-rejected"])
def test_noise_equals_timm_generator(pct, std):
    # timm's Scheduler._calculate_noise(t) seeds torch.Generator with
    # noise_seed + t and redraws torch.randn(1) * std until below pct.
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = C.C(opt, t_initial=10, noise_pct=pct, noise_std=std,
                noise_seed=0)
    seeds = list(range(1500)) + [2**31 - 1, 2**32 - 1, 2**32 + 5,
                                 2**40 + 3, -5]
    theirs = [sched._calculate_noise(s) for s in seeds]
    ours = _torch_noise.timm_normal_noise(seeds, pct, std)
    np.testing.assert_array_equal(ours, theirs)


def test_noise_table_is_the_schedules_and_cached():
    schedule = S.PolyLRScheduler(0.1, 50, noise_range_t=(4.5, 20),
                                 noise_seed=11, noise_std=0.4)
    table = schedule.noise_table()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = C.P(opt, 50, noise_range_t=(4.5, 20), noise_seed=11,
                noise_std=0.4)
    # t in [4.5, 20): 5 ... 19
    assert table.shape == (15,)
    np.testing.assert_array_equal(
        table, np.float32([sched._calculate_noise(t) for t in range(5, 20)]))
    rebuilt = S.PolyLRScheduler.from_config(schedule.get_config())
    assert rebuilt.noise_table() is table


# --------------------------------------------------------------------------
# From timm: create_scheduler_v2 -> these classes (the README's table)
# --------------------------------------------------------------------------


def from_create_scheduler_v2(lr, sched="cosine", num_epochs=300,
                             decay_epochs=90, decay_milestones=(90, 180, 270),
                             decay_rate=0.1, min_lr=0.0, warmup_lr=1e-5,
                             warmup_epochs=0, warmup_prefix=False, noise=None,
                             noise_pct=0.67, noise_std=1.0, noise_seed=42,
                             cycle_mul=1.0, cycle_decay=0.1, cycle_limit=1,
                             k_decay=1.0, step_on_epochs=True,
                             updates_per_epoch=0, end=None):
    """The README's "From timm" mapping, written out. ``end``: the t past
    which a one-number ``noise`` is dropped (ours needs a finite range)."""
    upe = 1 if step_on_epochs else updates_per_epoch
    t_initial = num_epochs * upe
    common = dict(
        warmup_t=warmup_epochs * upe, warmup_lr_init=warmup_lr,
        warmup_prefix=warmup_prefix, t_in_epochs=step_on_epochs,
        noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed,
        steps_per_epoch=updates_per_epoch if step_on_epochs
        and updates_per_epoch else 1)
    if noise is not None:
        noise = noise if isinstance(noise, (list, tuple)) else [noise]
        start = noise[0] * t_initial
        common["noise_range_t"] = (start, noise[1] * t_initial
                                   if len(noise) > 1 else end)
    cycles = dict(t_initial=t_initial, lr_min=min_lr, cycle_mul=cycle_mul,
                  cycle_decay=cycle_decay, cycle_limit=cycle_limit)
    if sched == "cosine":
        return S.CosineLRScheduler(lr, k_decay=k_decay, **cycles, **common)
    if sched == "tanh":
        return S.TanhLRScheduler(lr, **cycles, **common)
    if sched == "poly":
        return S.PolyLRScheduler(lr, power=decay_rate, k_decay=k_decay,
                                 **cycles, **common)
    if sched == "step":
        return S.StepLRScheduler(lr, decay_t=decay_epochs * upe,
                                 decay_rate=decay_rate, **common)
    if sched == "constant":
        return S.StepLRScheduler(lr, decay_t=1, decay_rate=1.0, **common)
    if sched == "multistep":
        return S.MultiStepLRScheduler(
            lr, decay_t=[m * upe for m in decay_milestones],
            decay_rate=decay_rate, **common)
    raise ValueError(sched)


FACTORY_CASES = [
    dict(sched="cosine", num_epochs=30, warmup_epochs=3, min_lr=1e-5,
         cycle_limit=2, noise=[0.2, 0.8]),
    dict(sched="cosine", num_epochs=12, warmup_epochs=2, k_decay=1.5,
         step_on_epochs=False, updates_per_epoch=5, noise=0.5),
    dict(sched="tanh", num_epochs=20, warmup_epochs=4, warmup_prefix=True,
         cycle_mul=1.5, cycle_limit=3, cycle_decay=0.5),
    dict(sched="poly", num_epochs=25, decay_rate=2.0, warmup_epochs=2,
         min_lr=1e-4),
    dict(sched="step", decay_epochs=2.4, decay_rate=0.97, warmup_epochs=3,
         warmup_lr=1e-6),
    dict(sched="constant", warmup_epochs=5, step_on_epochs=False,
         updates_per_epoch=4),
    dict(sched="multistep", decay_milestones=(5, 9), decay_rate=0.5,
         warmup_epochs=2, updates_per_epoch=3),
]


@pytest.mark.parametrize("kwargs", FACTORY_CASES,
                         ids=[f"{k['sched']}-{i}"
                              for i, k in enumerate(FACTORY_CASES)])
def test_create_scheduler_v2_mapping(kwargs):
    factory = timm_scheduler("scheduler_factory")
    lr, steps = 0.05, np.arange(200)
    ours = from_create_scheduler_v2(lr, end=len(steps), **kwargs)
    case = C.case("factory", lambda: ours,
                  lambda o: factory.create_scheduler_v2(o, **kwargs)[0],
                  steps)
    np.testing.assert_allclose(C.evaluate_grid(ours, steps),
                               C.expected(case), rtol=RTOL, atol=C.ATOL)


# --------------------------------------------------------------------------
# Composition: lr_scale groups, with_warmup, ReduceLROnPlateau
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", harness.modes())
def test_lr_scale_param_groups_equal_timm(mode):
    # timm multiplies a group's rate by its "lr_scale" (its layer-decay
    # groups); keras_optzoo's "lr_scale" group key does the same with
    # schedule(step) / base_learning_rate.
    steps = 20
    config = type("C", (), {"param_scale": 1.0, "grad_scale": 1.0})
    init, grads = harness.problem(config, steps=steps)
    kwargs = dict(t_initial=8, warmup_t=3, warmup_lr_init=0.01, lr_min=0.002,
                  cycle_limit=3, t_in_epochs=False, noise_range_t=(5, 15))
    schedule = S.CosineLRScheduler(0.1, **kwargs)
    assert schedule.base_learning_rate == 0.1
    scales = [1.0, 0.5, 0.25, 1.0]
    ours = harness.run_ours(
        oz.SGD(learning_rate=schedule, momentum=0.9, param_groups=[
            {"params": f"^group{i}$", "lr_scale": k}
            for i, k in enumerate(scales) if k != 1.0]),
        init, grads, mode=mode,
        names=[f"group{i}" for i in range(len(scales))])
    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = torch.optim.SGD([{"params": [p], "lr_scale": k}
                           for p, k in zip(params, scales)],
                          lr=0.1, momentum=0.9)
    sched = C.C(opt, **kwargs)
    for k, g in enumerate(grads):
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        opt.step()
        sched.step_update(k + 1)
    harness.assert_trajectory_close(
        ours, [p.detach().numpy() for p in params], init, what="timm")


def test_with_warmup_in_front_of_a_timm_scheduler():
    inner_case = next(c for c in C.CASES if c.id == "tanh-updates-noise")
    warmup, factor = 25, 0.2
    schedule = S.with_warmup(inner_case.ours(), warmup, start_factor=factor,
                             mode="cosine")
    steps = np.arange(1200)
    inner = C.expected(inner_case, np.maximum(steps - warmup, 0))
    ramp = factor + (1 - factor) * (1 - np.cos(np.pi * steps / warmup)) / 2
    expected = np.where(steps < warmup, inner[0] * ramp, inner)
    np.testing.assert_allclose(C.evaluate_grid(schedule, steps), expected,
                               rtol=RTOL)
    assert schedule.base_learning_rate == inner_case.ours().base_learning_rate


def test_plateau_composes_with_a_timm_scheduler_in_fit():
    epochs, steps_per_epoch = 8, N // BATCH
    kwargs = dict(t_initial=6, warmup_t=1, warmup_lr_init=0.01,
                  lr_min=0.005, noise_range_t=(2, 6), noise_std=0.2)
    schedule = S.CosineLRScheduler(0.05, steps_per_epoch=steps_per_epoch,
                                   **kwargs)
    plateau_kwargs = {"patience": 0, "factor": 0.5, "threshold": 0.2}
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=oz.SGD(learning_rate=schedule), loss="mse",
                  jit_compile=harness.backend() != "torch")
    w0, b0 = (ops.convert_to_numpy(v) for v in model.weights)
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False,
              verbose=0, callbacks=[ReduceLROnPlateau(monitor="loss",
                                                      **plateau_kwargs)])
    case = C.case("plateau", lambda: schedule, lambda o: C.C(o, **kwargs),
                  np.arange(epochs * steps_per_epoch))
    lrs = C.expected(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w, b, effective = _replay(x, y, w0, b0, lrs, epochs, plateau_kwargs)
    assert len(set(np.round(effective / lrs, 6))) > 1, \
        "the plateau never reduced: the composition was not exercised"
    np.testing.assert_allclose(ops.convert_to_numpy(model.weights[0]), w,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(model.weights[1]), b,
                               rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------
# Serialization and resume
# --------------------------------------------------------------------------


def _values(schedule, steps=(0, 1, 5, 17, 40, 333)):
    """Eager values at ``steps`` (one vectorised call: cheap on every
    backend)."""
    return ops.convert_to_numpy(schedule(np.asarray(steps, "int32")))


@pytest.mark.parametrize("case", C.CASES, ids=[c.id for c in C.CASES])
def test_config_round_trip(case):
    schedule = case.ours()
    expected = _values(schedule)
    config = schedule.get_config()
    rebuilt = type(schedule).from_config(config)
    assert rebuilt.get_config() == config
    np.testing.assert_array_equal(_values(rebuilt), expected)
    saved = json.dumps(keras.optimizers.schedules.serialize(schedule))
    restored = keras.optimizers.schedules.deserialize(json.loads(saved))
    assert type(restored) is type(schedule)
    np.testing.assert_array_equal(_values(restored), expected)


@pytest.mark.parametrize("make", [
    lambda: S.CosineLRScheduler(0.1, 3, warmup_t=1, cycle_limit=3,
                                cycle_mul=1.5, noise_range_t=(1, 9),
                                steps_per_epoch=2),
    lambda: S.MultiStepLRScheduler(0.1, [3, 6], decay_rate=0.5, warmup_t=2,
                                   t_in_epochs=False),
], ids=["cosine-noise", "multistep"])
def test_model_save_and_load_resumes_the_schedule(make, tmp_path):
    schedule = make()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=oz.SGD(learning_rate=schedule), loss="mse")
    x, y = np.ones((10, 2), "float32"), np.zeros((10, 1), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects
    assert (loaded.optimizer.get_config()["learning_rate"]
            == keras.optimizers.schedules.serialize(schedule))
    assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == 5
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    loaded.fit(x, y, batch_size=2, epochs=1, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(a),
                                      ops.convert_to_numpy(b))
    np.testing.assert_allclose(
        float(ops.convert_to_numpy(loaded.optimizer.learning_rate)),
        float(ops.convert_to_numpy(schedule(10))), rtol=1e-6)


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------

ARGUMENT_ERRORS = [
    (lambda: S.CosineLRScheduler(0.1, 10, noise_range_t=5),
     ValueError, r"`noise_range_t` as one number means noise at every"),
    (lambda: S.CosineLRScheduler(0.1, 10, noise_range_t=[5]),
     TypeError, r"must be None or a pair"),
    (lambda: S.CosineLRScheduler(0.1, 10, noise_range_t=(0, 2**30)),
     ValueError, r"spans \d+ values of t; at most"),
    (lambda: S.CosineLRScheduler(0.1, 10, noise_range_t=(0, float("inf"))),
     ValueError, r"Argument `noise_range_t\[1\]` must be a finite"),
    (lambda: S.CosineLRScheduler(0.1, 0),
     ValueError, "Argument `t_initial` must be >= 1. Received: t_initial=0"),
    (lambda: S.CosineLRScheduler(0.1, 10.5),
     TypeError, "Argument `t_initial` must be an integer"),
    (lambda: S.CosineLRScheduler(0.1, 10, lr_min=-1e-3),
     ValueError, "Argument `lr_min` must be >= 0"),
    (lambda: S.CosineLRScheduler(0.1, 10, cycle_mul=0.0),
     ValueError, "Argument `cycle_mul` must be > 0"),
    (lambda: S.CosineLRScheduler(0.1, 10, cycle_limit=-1),
     ValueError, "Argument `cycle_limit` must be >= 0"),
    (lambda: S.CosineLRScheduler(0.1, 10, k_decay=0.0),
     ValueError, "Argument `k_decay` must be > 0"),
    (lambda: S.CosineLRScheduler(0.1, 10, noise_pct=0.0),
     ValueError, "Argument `noise_pct` must be > 0"),
    (lambda: S.CosineLRScheduler(0.1, 10, noise_std=-1.0),
     ValueError, "Argument `noise_std` must be >= 0"),
    (lambda: S.CosineLRScheduler(0.1, 10, t_in_epochs=False,
                                 steps_per_epoch=4),
     ValueError, "`steps_per_epoch` applies only with t_in_epochs=True"),
    (lambda: S.CosineLRScheduler(0.1, 10, warmup_prefix=1),
     TypeError, "Argument `warmup_prefix` must be True or False"),
    (lambda: S.CosineLRScheduler(0.1, 10, cycle_mul=1.0001,
                                 cycle_limit=10**9),
     ValueError, "cycles before step 2\\*\\*53; at most"),
    (lambda: S.TanhLRScheduler(0.1, 10, lb=3.0, ub=3.0),
     ValueError, r"Argument `lb` must be < `ub` \(3\). Received: lb=3"),
    (lambda: S.PolyLRScheduler(0.1, 10, power=-0.5),
     ValueError, "Argument `power` must be >= 0"),
    (lambda: S.StepLRScheduler(0.1, decay_t=0),
     ValueError, "Argument `decay_t` must be > 0"),
    (lambda: S.StepLRScheduler(0.1, decay_t=2.5, decay_rate=-0.5),
     ValueError, "Argument `decay_rate` must be >= 0"),
    (lambda: S.StepLRScheduler(0.1, decay_t=0.37, decay_rate=0.9999),
     ValueError, "needs \\d+ decay steps computed; at most"),
    (lambda: S.MultiStepLRScheduler(0.1, decay_t=[30, 10]),
     ValueError, "Argument `decay_t` must be non-decreasing"),
    (lambda: S.MultiStepLRScheduler(0.1, decay_t=30),
     TypeError, "Argument `decay_t` must be a sequence of numbers"),
    (lambda: S.MultiStepLRScheduler(0.1, decay_t=[10, None]),
     ValueError, r"Argument `decay_t\[1\]` must be a real number"),
    (lambda: S.StepLRScheduler(-0.1, decay_t=3),
     ValueError, "Argument `initial_learning_rate` must be >= 0"),
]


@pytest.mark.parametrize("make,error,message", ARGUMENT_ERRORS)
def test_argument_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()
