"""keras_optzoo.schedules against torch.optim.lr_scheduler (active backend).

Every case of ``_sched_helpers.CASES`` is evaluated inside a compiled
function (jax.jit / tf.function(jit_compile=True) / torch eager) at every
step of several times its length and at step 2**31 - 1, and compared with
the sequence torch's scheduler produces (rtol 1e-6). The rest: config
round trips, the momentum schedules against torch's param groups, the
traceability probe, argument errors, the step convention of a real Keras
optimizer, and the plot helper.
"""

import json
import math
import warnings

import numpy as np
import pytest
import torch

import keras
from keras import ops

import _sched_helpers as H
from keras_optzoo import schedules as S

L = torch.optim.lr_scheduler


def _values(schedule, steps):
    """Eager values (float64 numpy) at the given steps."""
    return np.array(
        [float(ops.convert_to_numpy(schedule(s))) for s in steps]
    )


# --------------------------------------------------------------------------
# Against torch
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", H.CASES, ids=[c.id for c in H.CASES])
def test_matches_torch(case):
    steps, ours, expected = H.run_case(case)
    assert np.all(np.isfinite(ours)), "non-finite value"
    known = ~np.isnan(expected)
    np.testing.assert_allclose(
        ours[known], expected[known], rtol=H.RTOL, atol=H.ATOL,
        err_msg=f"steps {np.asarray(steps)[known]}",
    )


def test_constant_lr_without_constant_phase():
    # torch's recursive ConstantLR keeps `factor` forever when
    # total_iters=0; its closed form (step(epoch)) does not, and neither
    # do we.
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=H.LR)
    scheduler = L.ConstantLR(opt, factor=0.5, total_iters=0)
    expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch) is deprecated
        for epoch in range(5):
            scheduler.step(epoch)
            expected.append(scheduler.get_last_lr()[0])
    ours = H.evaluate_compiled(S.ConstantLR(H.LR, 0.5, 0), range(5))
    np.testing.assert_allclose(ours, expected, rtol=H.RTOL)


def test_sequential_with_keras_child():
    cosine = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=6)
    schedule = S.SequentialLR(
        [S.ConstantLR(0.1, factor=0.5, total_iters=10), cosine], [3]
    )
    steps = list(range(12))
    expected = [0.05] * 3 + list(_values(cosine, range(9)))
    np.testing.assert_allclose(
        H.evaluate_compiled(schedule, steps), expected, rtol=H.RTOL
    )


# --------------------------------------------------------------------------
# Momentum schedules
# --------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "make,torch_make,steps",
    [c[1:] for c in H.MOMENTUM_CASES],
    ids=[c[0] for c in H.MOMENTUM_CASES],
)
def test_momentum_schedule_matches_torch(make, torch_make, steps, optimizer):
    lrs, momentums = H.torch_sequence(torch_make, steps, optimizer=optimizer)
    schedule = make()
    momentum = schedule.momentum_schedule()
    np.testing.assert_allclose(
        H.evaluate_compiled(momentum, range(steps)), momentums, rtol=H.RTOL
    )
    np.testing.assert_allclose(
        H.evaluate_compiled(schedule, range(steps)), lrs, rtol=H.RTOL
    )


def test_momentum_schedule_round_trip_and_errors():
    momentum = S.OneCycleLR(0.1, total_steps=20).momentum_schedule()
    restored = keras.optimizers.schedules.deserialize(
        json.loads(json.dumps(keras.optimizers.schedules.serialize(momentum)))
    )
    assert type(restored) is S.CycleMomentum
    np.testing.assert_array_equal(
        _values(restored, range(0, 25, 4)), _values(momentum, range(0, 25, 4))
    )
    with pytest.raises(ValueError, match="cycle_momentum=True"):
        S.CyclicLR(0.01, 0.1, cycle_momentum=False).momentum_schedule()
    with pytest.raises(TypeError, match="CyclicLR or OneCycleLR"):
        S.CycleMomentum(S.StepLR(0.1, 3))


# --------------------------------------------------------------------------
# Serialization
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", H.CASES, ids=[c.id for c in H.CASES])
def test_config_round_trip(case):
    schedule = case.ours()
    steps = [0, 1, 5, 17, 40]
    expected = _values(schedule, steps)

    config = schedule.get_config()
    rebuilt = type(schedule).from_config(config)
    assert rebuilt.get_config() == config
    np.testing.assert_array_equal(_values(rebuilt, steps), expected)

    saved = json.dumps(keras.optimizers.schedules.serialize(schedule))
    restored = keras.optimizers.schedules.deserialize(json.loads(saved))
    assert type(restored) is type(schedule)
    np.testing.assert_array_equal(_values(restored, steps), expected)


def test_model_save_and_load_resumes_the_schedule(tmp_path):
    schedule = S.SequentialLR(
        [S.LambdaLR(0.1, H.warmup_then_decay),
         S.CosineAnnealingLR(0.1, T_max=4)],
        milestones=[3],
    )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule),
                  loss="mse")
    x = np.ones((8, 2), "float32")
    model.fit(x, np.zeros((8, 1), "float32"), batch_size=2, epochs=1,
              verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects needed

    config = loaded.optimizer.get_config()["learning_rate"]
    assert config == keras.optimizers.schedules.serialize(schedule)
    iterations = int(ops.convert_to_numpy(loaded.optimizer.iterations))
    assert iterations == 4
    np.testing.assert_allclose(
        float(ops.convert_to_numpy(loaded.optimizer.learning_rate)),
        float(ops.convert_to_numpy(schedule(iterations))),
        rtol=H.RTOL,
    )


def test_unregistered_function_cannot_be_saved():
    schedule = S.LambdaLR(0.1, lambda epoch: 0.9**epoch)
    with pytest.raises(ValueError, match="register_keras_serializable"):
        schedule.get_config()
    cyclic = S.CyclicLR(0.01, 0.1, scale_fn=lambda cycle: 0.5**cycle)
    with pytest.raises(ValueError, match="register_keras_serializable"):
        keras.optimizers.schedules.serialize(cyclic)


# --------------------------------------------------------------------------
# Traceability and arguments
# --------------------------------------------------------------------------


def _python_if(epoch):
    return 1.0 if epoch < 5 else 0.1


@pytest.mark.parametrize(
    "make",
    [
        lambda: S.LambdaLR(0.1, _python_if),
        lambda: S.LambdaLR(0.1, lambda epoch: math.cos(epoch)),
        lambda: S.MultiplicativeLR(0.1, _python_if),
        lambda: S.MultiplicativeLR(0.1, lambda epoch: float(epoch) * 0.1),
        lambda: S.CyclicLR(0.01, 0.1, scale_fn=_python_if),
    ],
    ids=["lambda-if", "lambda-math", "multiplicative-if",
         "multiplicative-float", "cyclic-scale-fn-if"],
)
def test_untraceable_function_is_rejected(make):
    with pytest.raises(ValueError, match="must be traceable"):
        make()


def test_non_elementwise_multiplicative_factor_is_rejected():
    with pytest.raises(ValueError, match="elementwise"):
        S.MultiplicativeLR(0.1, lambda epoch: ops.concatenate([epoch, epoch]))


ARGUMENT_ERRORS = [
    (lambda: S.ExponentialLR(0.1, gamma=-1),
     ValueError, "Argument `gamma` must be > 0. Received: gamma=-1"),
    (lambda: S.StepLR(0.1, step_size=0),
     ValueError, "Argument `step_size` must be >= 1. Received: step_size=0"),
    (lambda: S.StepLR(0.1, step_size=2.5),
     TypeError, "Argument `step_size` must be an integer"),
    (lambda: S.StepLR(-0.1, step_size=2),
     ValueError, "Argument `initial_learning_rate` must be >= 0"),
    (lambda: S.MultiStepLR(0.1, milestones=[2, -1]),
     ValueError, r"Argument `milestones\[1\]` must be >= 0"),
    (lambda: S.ConstantLR(0.1, factor=1.5),
     ValueError, r"Argument `factor` must be in \[0, 1\]. Received: "
                 "factor=1.5"),
    (lambda: S.LinearLR(0.1, start_factor=0.0),
     ValueError, r"Argument `start_factor` must be in \(0, 1\]"),
    (lambda: S.LinearLR(0.1, total_iters=0),
     ValueError, "Argument `total_iters` must be >= 1"),
    (lambda: S.PolynomialLR(0.1, power=-1.0),
     ValueError, "Argument `power` must be >= 0"),
    (lambda: S.CosineAnnealingLR(0.1, T_max=0),
     ValueError, "Argument `T_max` must be >= 1"),
    (lambda: S.CosineAnnealingLR(0.1, T_max=5, eta_min=-0.1),
     ValueError, "Argument `eta_min` must be >= 0"),
    (lambda: S.CosineAnnealingWarmRestarts(0.1, T_0=4, T_mult=0),
     ValueError, "Argument `T_mult` must be >= 1"),
    (lambda: S.LambdaLR(0.1, lambda e: e, steps_per_epoch=0),
     ValueError, "Argument `steps_per_epoch` must be >= 1"),
    (lambda: S.LambdaLR(0.1, "not callable"),
     TypeError, "Argument `lr_lambda` must be a callable"),
    (lambda: S.CyclicLR(0.01, 0.1, mode="sawtooth"),
     ValueError, "Argument `mode` must be one of"),
    (lambda: S.CyclicLR(0.01, 0.1, base_momentum=1.5),
     ValueError, r"Argument `base_momentum` must be in \[0, 1\]"),
    (lambda: S.OneCycleLR(0.1),
     ValueError, "needs `total_steps`"),
    (lambda: S.OneCycleLR(0.1, total_steps=10, pct_start=1.2),
     ValueError, r"Argument `pct_start` must be in \[0, 1\]"),
    (lambda: S.OneCycleLR(0.1, total_steps=10, pct_start=0.1),
     ValueError, "must not be 1"),
    (lambda: S.OneCycleLR(0.1, total_steps=10, anneal_strategy="exp"),
     ValueError, "Argument `anneal_strategy` must be one of"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 2)], milestones=[3]),
     ValueError, "one entry fewer than `schedulers`"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 2)] * 3, milestones=[4, 2]),
     ValueError, "must be non-decreasing"),
    (lambda: S.SequentialLR([], milestones=[]),
     ValueError, "at least one schedule"),
    (lambda: S.SequentialLR([S.StepLR(0.1, 2), 0.1], milestones=[2]),
     TypeError, r"Argument `schedulers\[1\]` must be a"),
    (lambda: S.ChainedScheduler(
        [S.StepLR(0.1, 2),
         keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.1, 0.01])]),
     ValueError, r"`schedulers\[1\]` must have an `initial_learning_rate`"),
]


@pytest.mark.parametrize("make,error,message", ARGUMENT_ERRORS)
def test_argument_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


def test_step_types():
    schedule = S.CosineAnnealingLR(0.1, T_max=7, steps_per_epoch=2)
    expected = float(ops.convert_to_numpy(schedule(9)))
    for step in (9, 9.0, 9.7, np.int64(9), np.float32(9.0),
                 ops.convert_to_tensor(9, dtype="int32")):
        value = schedule(step)
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        assert float(ops.convert_to_numpy(value)) == expected
    # A negative step counts as step 0.
    assert float(ops.convert_to_numpy(schedule(-3))) == float(
        ops.convert_to_numpy(schedule(0))
    )


def test_keras_optimizer_step_convention():
    # Update k (0-based) must use the schedule's value at step k.
    schedule = S.StepLR(1.0, step_size=2, gamma=0.5)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    variable = keras.Variable(np.zeros((), "float32"))
    optimizer.build([variable])
    before = 0.0
    for k in range(6):
        optimizer.apply([ops.ones(())], [variable])
        after = float(ops.convert_to_numpy(variable))
        expected = float(ops.convert_to_numpy(schedule(k)))
        assert before - after == pytest.approx(expected, rel=1e-6)
        before = after


def test_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    schedule = S.OneCycleLR(0.1, total_steps=12)
    returned = S.plot(schedule, 12, ax=ax)
    assert returned is ax
    (line,) = ax.get_lines()
    assert line.get_label() == "OneCycleLR"
    np.testing.assert_array_equal(line.get_xdata(), np.arange(12))
    # plot() evaluates all steps in one vectorised call; XLA's vectorised
    # cos can differ from the scalar one by a float32 ulp or two.
    np.testing.assert_allclose(line.get_ydata(), _values(schedule, range(12)),
                               rtol=1e-6)
    S.plot(S.StepLR(0.1, 3), [0, 5, 10], ax=ax, label="step")
    assert ax.get_lines()[1].get_label() == "step"
    plt.close(figure)
