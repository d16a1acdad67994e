"""The Hugging Face schedules, Noam and with_warmup (active backend).

Oracles: transformers' own schedulers (``tests/_hf_sched_cases.py``: the
``LambdaLR`` multiplier of the transformers function of the same name, at
every step of a grid through several times the schedule's length, its phase
boundaries, and far steps up to 2**31 - 1), Noam's float64 closed form,
torch's ``SequentialLR(LinearLR / ConstantLR, X)`` for ``with_warmup``, and
Keras's own schedules as wrapped children. Each grid is evaluated in one
compiled call (jax.jit / tf.function(jit_compile=True) / torch eager).
"""

import json
import warnings

import numpy as np
import pytest
import torch

import keras
from keras import ops

import _hf_sched_cases as C
import _sched_helpers as H
import harness
import keras_optzoo as oz
from keras_optzoo import schedules as S
from keras_optzoo.callbacks import ReduceLROnPlateau
from test_schedule_composition import BATCH, N, _data, _replay

L = torch.optim.lr_scheduler
hf = C.hf


# --------------------------------------------------------------------------
# Against transformers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", C.CASES, ids=[c.id for c in C.CASES])
def test_matches_transformers(case):
    steps, ours, expected = C.run_case(case)
    assert np.all(np.isfinite(ours)), "non-finite value"
    np.testing.assert_allclose(ours, expected, rtol=C.RTOL, atol=case.atol,
                               err_msg=f"{case.id}, steps {steps}")


@pytest.mark.parametrize("make", [
    lambda o: hf.get_cosine_schedule_with_warmup(o, 4, 20),
    lambda o: hf.get_polynomial_decay_schedule_with_warmup(o, 3, 12,
                                                           power=2.0),
    lambda o: hf.get_wsd_schedule(o, 3, 5, num_stable_steps=4,
                                  warmup_type="cosine"),
], ids=["cosine", "polynomial", "wsd"])
def test_lambda_is_the_stepped_scheduler(make):
    # The oracle's multiplier is what stepping transformers' scheduler
    # gives before each optimizer update.
    scheduler = C.hf_scheduler(make, C.LR)
    lam, optimizer = scheduler.lr_lambdas[0], scheduler.optimizer
    for step in range(30):
        assert scheduler.get_last_lr()[0] == pytest.approx(
            C.LR * lam(step), rel=1e-15)
        optimizer.step()
        scheduler.step()


# One case per class: the scalar step a Keras optimizer passes, compiled
# once and called per step (int32 on JAX, int64 on TF), gives the same.
_SCALAR_IDS = ["constant-warmup", "linear", "cosine", "restarts-3",
               "polynomial-power2", "inverse-sqrt", "cosine-min-lr",
               "wsd-1-sqrt", "noam"]


@pytest.mark.parametrize("case_id", _SCALAR_IDS)
def test_scalar_step_in_compiled_code(case_id):
    case = next(c for c in C.CASES if c.id == case_id)
    steps = [0, 1, 9, 10, 11, 44, 100, C.HUGE_STEP]
    expected = case.oracle(np.array(steps))
    ours = H.evaluate_compiled(case.ours(), steps)
    np.testing.assert_allclose(ours, expected, rtol=C.RTOL, atol=case.atol)


def test_keras_optimizer_applies_the_step_of_each_update():
    schedule = S.WarmupStableDecay(1.0, 2, 3, num_stable_steps=1)
    expected = C.hf_expected(
        lambda o: hf.get_wsd_schedule(o, 2, 3, num_stable_steps=1), 1.0,
        range(8))
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    variable = keras.Variable(np.zeros((), "float32"))
    optimizer.build([variable])
    before = 0.0
    for k in range(8):
        optimizer.apply([ops.ones(())], [variable])
        after = float(ops.convert_to_numpy(variable))
        assert before - after == pytest.approx(expected[k], rel=1e-6,
                                               abs=1e-7)
        before = after


def test_noam_counts_from_one():
    # The paper's step_num 1 is the first update (optimizer step 0); the
    # peak, (d_model * warmup)**-0.5, is at optimizer step warmup - 1.
    values = C.evaluate_grid(S.Noam(512, 4000), [0, 3998, 3999, 4000])
    np.testing.assert_allclose(values[0], 512**-0.5 * 4000**-1.5, rtol=1e-6)
    np.testing.assert_allclose(values[2], (512 * 4000) ** -0.5, rtol=1e-6)
    assert values[1] < values[2] and values[3] < values[2]


# --------------------------------------------------------------------------
# with_warmup
# --------------------------------------------------------------------------


def _torch_sequential(first, second, warmup):
    return lambda o: L.SequentialLR(o, [first(o), second(o)], [warmup])


WARMUP_CASES = [
    ("linear-cosine",
     lambda: S.with_warmup(S.CosineAnnealingLR(0.1, T_max=20), 5,
                           start_factor=0.1),
     _torch_sequential(lambda o: L.LinearLR(o, 0.1, total_iters=5),
                       lambda o: L.CosineAnnealingLR(o, T_max=20), 5), 0.1),
    ("linear-exponential",
     lambda: S.with_warmup(S.ExponentialLR(0.2, gamma=0.95), 3,
                           start_factor=0.5),
     _torch_sequential(lambda o: L.LinearLR(o, 0.5, total_iters=3),
                       lambda o: L.ExponentialLR(o, gamma=0.95), 3), 0.2),
    ("constant-step",
     lambda: S.with_warmup(S.StepLR(0.1, step_size=4, gamma=0.5), 6,
                           start_factor=0.25, mode="constant"),
     _torch_sequential(lambda o: L.ConstantLR(o, 0.25, total_iters=6),
                       lambda o: L.StepLR(o, 4, gamma=0.5), 6), 0.1),
]


@pytest.mark.parametrize("make,torch_make,lr", [c[1:] for c in WARMUP_CASES],
                         ids=[c[0] for c in WARMUP_CASES])
def test_with_warmup_equals_torch_sequential(make, torch_make, lr):
    schedule = make()
    expected, _ = H.torch_sequence(torch_make, 60, lr=lr)
    steps = list(range(60)) + C.FAR_STEPS
    ours = C.evaluate_grid(schedule, steps)
    np.testing.assert_allclose(ours[:60], expected, rtol=C.RTOL, atol=C.ATOL)
    # far past the warm-up: the child on its own clock
    far = C.evaluate_grid(schedule.schedule,
                          [s - schedule.warmup_steps for s in C.FAR_STEPS])
    np.testing.assert_allclose(ours[60:], far, rtol=C.RTOL, atol=C.ATOL)


@pytest.mark.parametrize("after", [True, False])
def test_with_warmup_around_a_keras_schedule(after):
    inner = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=30,
                                                   alpha=0.1)
    warmup, factor = 8, 0.2
    schedule = S.with_warmup(inner, warmup, start_factor=factor,
                             start_after_warmup=after)
    steps = np.arange(60)

    def keras_value(step):
        return float(ops.convert_to_numpy(inner(step)))

    target = keras_value(0 if after else warmup)
    expected = [
        target * (factor + (1 - factor) * s / warmup) if s < warmup
        else keras_value(s - warmup if after else s)
        for s in steps
    ]
    np.testing.assert_allclose(C.evaluate_grid(schedule, steps), expected,
                               rtol=C.RTOL)


@pytest.mark.parametrize("mode", ["cosine", "1-sqrt", "linear"])
def test_with_warmup_curves_equal_wsd_warmup(mode):
    # The warm-up curves are transformers' WSD ones, start_factor its
    # min_lr_ratio.
    schedule = S.with_warmup(S.ConstantWithWarmup(C.LR, 0), 12,
                             start_factor=0.05, mode=mode)
    expected = C.hf_expected(
        lambda o: hf.get_wsd_schedule(o, 12, 5, num_stable_steps=100,
                                      warmup_type=mode, min_lr_ratio=0.05),
        C.LR, range(40))
    np.testing.assert_allclose(C.evaluate_grid(schedule, range(40)),
                               expected, rtol=C.RTOL)


def test_with_warmup_zero_steps_is_the_schedule():
    inner = S.CosineWithWarmup(C.LR, 3, 30)
    steps = list(range(40)) + [C.HUGE_STEP]
    np.testing.assert_array_equal(
        C.evaluate_grid(S.with_warmup(inner, 0), steps),
        C.evaluate_grid(inner, steps))


# --------------------------------------------------------------------------
# Serialization
# --------------------------------------------------------------------------


def _values(schedule, steps=(0, 1, 5, 17, 40, 333)):
    return np.array([float(ops.convert_to_numpy(schedule(s))) for s in steps])


SERIALIZED = [(c.id, c.ours) for c in C.CASES] + [
    (f"with-warmup-{c[0]}", c[1]) for c in WARMUP_CASES
] + [
    ("with-warmup-keras-piecewise", lambda: S.with_warmup(
        keras.optimizers.schedules.PiecewiseConstantDecay([10, 20],
                                                          [0.1, 0.05, 0.01]),
        5, mode="cosine", start_after_warmup=False)),
    ("with-warmup-nested", lambda: S.with_warmup(
        S.InverseSqrt(0.1, 0, timescale=50), 10, mode="1-sqrt")),
]


@pytest.mark.parametrize("make", [m for _, m in SERIALIZED],
                         ids=[i for i, _ in SERIALIZED])
def test_config_round_trip(make):
    schedule = make()
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
    lambda: S.with_warmup(
        keras.optimizers.schedules.CosineDecay(0.1, decay_steps=20), 3),
    lambda: S.WarmupStableDecay(0.1, 2, 4, num_training_steps=10,
                                decay_type="1-sqrt"),
], ids=["with-warmup-keras-child", "wsd"])
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
    # resuming: both continue with the same rates and weights
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
    # transformers' own errors
    (lambda: S.PolynomialWithWarmup(0.1, 5, 50, lr_end=0.1),
     ValueError, r"Argument `lr_end` must be smaller than "
                 r"`initial_learning_rate` \(0.1\). Received: lr_end=0.1"),
    (lambda: S.CosineWithMinLRWithWarmup(0.1, 5, 50, min_lr=1e-3,
                                         min_lr_rate=0.1),
     ValueError, "Only one of `min_lr` and `min_lr_rate` may be set"),
    (lambda: S.CosineWithMinLRWithWarmup(0.1, 5, 50),
     ValueError, "One of `min_lr` and `min_lr_rate` must be set"),
    (lambda: S.WarmupStableDecay(0.1, 5, 10),
     ValueError, "One of `num_training_steps` and `num_stable_steps` must "
                 "be set"),
    (lambda: S.WarmupStableDecay(0.1, 5, 10, 50, warmup_type="exp"),
     ValueError, "Argument `warmup_type` must be one of"),
    (lambda: S.WarmupStableDecay(0.1, 5, 10, 50, decay_type="step"),
     ValueError, "Argument `decay_type` must be one of"),
    # where transformers fails later (ZeroDivisionError at some step)
    (lambda: S.PolynomialWithWarmup(0.1, 10, 10),
     ValueError, "`num_training_steps` must differ from `num_warmup_steps`"),
    (lambda: S.PolynomialWithWarmup(0.1, 5, 50, power=-1.0),
     ValueError, "Argument `power` must be >= 0"),
    (lambda: S.InverseSqrt(0.1, 5, timescale=0),
     ValueError, "Argument `timescale` must be >= 1"),
    (lambda: S.CosineWithMinLRWithWarmup(0.0, 5, 50, min_lr=0.0),
     ValueError, "`initial_learning_rate` must be > 0 when `min_lr`"),
    # ours
    (lambda: S.LinearWithWarmup(-0.1, 5, 50),
     ValueError, "Argument `initial_learning_rate` must be >= 0"),
    (lambda: S.CosineWithWarmup(0.1, -1, 50),
     ValueError, "Argument `num_warmup_steps` must be >= 0. "
                 "Received: num_warmup_steps=-1"),
    (lambda: S.ConstantWithWarmup(0.1, 2.5),
     TypeError, "Argument `num_warmup_steps` must be an integer"),
    (lambda: S.CosineWithWarmup(0.1, 5, 50, num_cycles=-0.5),
     ValueError, "Argument `num_cycles` must be >= 0"),
    (lambda: S.WarmupStableDecay(0.1, 5, 10, 50, min_lr_ratio=-0.1),
     ValueError, "Argument `min_lr_ratio` must be >= 0"),
    (lambda: S.Noam(0, 4000),
     ValueError, "Argument `d_model` must be >= 1"),
    (lambda: S.Noam(512, 0),
     ValueError, "Argument `warmup_steps` must be >= 1"),
    (lambda: S.with_warmup(0.1, 5),
     TypeError, "Argument `schedule` must be a"),
    (lambda: S.with_warmup(S.StepLR(0.1, 3), -1),
     ValueError, "Argument `warmup_steps` must be >= 0"),
    (lambda: S.with_warmup(S.StepLR(0.1, 3), 5, start_factor=1.5),
     ValueError, r"Argument `start_factor` must be in \[0, 1\]"),
    (lambda: S.with_warmup(S.StepLR(0.1, 3), 5, mode="exp"),
     ValueError, "Argument `mode` must be one of"),
    (lambda: S.with_warmup(S.StepLR(0.1, 3), 5, start_after_warmup=1),
     TypeError, "Argument `start_after_warmup` must be True or False"),
]


@pytest.mark.parametrize("make,error,message", ARGUMENT_ERRORS)
def test_argument_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_wsd_warns_like_transformers_when_both_lengths_are_given():
    with pytest.warns(UserWarning, match="num_stable_steps will be used"):
        schedule = S.WarmupStableDecay(0.1, 2, 3, num_training_steps=100,
                                       num_stable_steps=4)
    assert schedule.stable_steps == 4


# --------------------------------------------------------------------------
# Composition: hyperparameter schedules and ReduceLROnPlateau
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", harness.modes())
def test_momentum_schedule_with_warmup_equals_torch(mode):
    # SGD whose lr follows CosineWithWarmup and whose momentum warms up
    # from 0.45 to 0.9 (with_warmup); torch's SGD reads both from its param
    # group, set here before every step. (A momentum warm-up from exactly 0
    # is not compared: torch skips the momentum buffer while momentum == 0
    # and starts it at the first nonzero momentum, a step later.)
    steps = 30
    config = type("C", (), {"param_scale": 1.0, "grad_scale": 1.0})
    init, grads = harness.problem(config, steps=steps)
    ours = harness.run_ours(
        oz.SGD(learning_rate=S.CosineWithWarmup(0.1, 5, 25),
               momentum=S.with_warmup(S.ConstantWithWarmup(0.9, 0), 10,
                                      start_factor=0.5),
               nesterov=True),
        init, grads, mode=mode)
    lrs = C.hf_expected(
        lambda o: hf.get_cosine_schedule_with_warmup(o, 5, 25), 0.1,
        range(steps))
    momentums = [0.9 * (0.5 + 0.5 * k / 10) if k < 10 else 0.9
                 for k in range(steps)]
    params = [torch.tensor(p, requires_grad=True) for p in init]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    for k, g in enumerate(grads):
        opt.param_groups[0]["lr"] = float(lrs[k])
        opt.param_groups[0]["momentum"] = float(momentums[k])
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        opt.step()
    harness.assert_trajectory_close(
        ours, [p.detach().numpy() for p in params], init, what="torch")


def test_plateau_composes_with_cosine_with_warmup_in_fit():
    epochs, steps_per_epoch = 8, N // BATCH
    total = epochs * steps_per_epoch
    schedule = S.CosineWithWarmup(0.05, 4, total)
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
    lrs = C.hf_expected(
        lambda o: hf.get_cosine_schedule_with_warmup(o, 4, total), 0.05,
        range(total))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w, b, effective = _replay(x, y, w0, b0, lrs, epochs, plateau_kwargs)
    nonzero = lrs > 0
    assert len(set(np.round(effective[nonzero] / lrs[nonzero], 6))) > 1, \
        "the plateau never reduced: the composition was not exercised"
    np.testing.assert_allclose(ops.convert_to_numpy(model.weights[0]), w,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(model.weights[1]), b,
                               rtol=1e-4, atol=1e-5)
