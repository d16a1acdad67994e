"""Cases and oracles for the Hugging Face schedules.

Used by tests/test_hf_schedules.py and benchmarks/hf_schedule_deviation.py.

The oracle of each case is transformers' own scheduler: the function of the
same name builds a ``LambdaLR`` on a torch optimizer with the base rate, and
the expected learning rate of optimizer update ``s`` is ``base *
scheduler.lr_lambdas[0](s)``, transformers' multiplier (float64 Python)
evaluated at every step of a grid; ``test_lambda_is_the_stepped_scheduler``
checks that this is what stepping the scheduler gives. Noam's oracle is its
closed form in float64 NumPy.

Our values are computed for the whole grid in ONE compiled call on the active
backend (``evaluate_grid``): a vector of steps, int32 under ``jax.jit``,
int64 under ``tf.function(jit_compile=True)``, int64 on torch (eager).
"""

import collections
import warnings

import numpy as np
import torch
from transformers import optimization as hf

import keras

from keras_optzoo import schedules as S

HUGE_STEP = 2**31 - 1
# Steps far past every schedule's end (step 2**31 - 1 included).
FAR_STEPS = [10_007, 123_457, 1_000_003, 2**24 + 1, 2**30 + 3, 2**31 - 2,
             HUGE_STEP]
# Differences below the smallest normal float32 are underflow, not error.
ATOL = float(np.finfo(np.float32).tiny)
RTOL = 1e-6


def grid(*boundaries, dense=None):
    """Every step up to ``dense`` (default: 3 x the largest boundary + 5),
    each boundary +- 2, and ``FAR_STEPS``; sorted, unique."""
    top = max(boundaries) if boundaries else 10
    dense = 3 * top + 5 if dense is None else dense
    steps = set(range(dense + 1))
    for b in boundaries:
        steps.update(s for s in range(b - 2, b + 3) if s >= 0)
    steps.update(FAR_STEPS)
    return np.array(sorted(steps), dtype=np.int64)


def evaluate_grid(schedule, steps):
    """``schedule(steps)`` for a vector of steps in one compiled call;
    checks float32 and the shape, returns float64 numpy."""
    steps = np.asarray(steps, dtype=np.int64)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        out = jax.jit(schedule)(steps.astype(np.int32))
    elif backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(schedule, jit_compile=True)
        out = fn(tf.constant(steps, tf.int64))
    else:
        out = schedule(torch.tensor(steps, dtype=torch.int64))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert tuple(out.shape) == steps.shape
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)


def torch_optimizer(lr):
    param = torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([param], lr=lr)


def hf_scheduler(make, lr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(torch_optimizer(lr))


def hf_expected(make, lr, steps):
    """``lr * lr_lambda(s)`` of transformers' scheduler at each step."""
    lam = hf_scheduler(make, lr).lr_lambdas[0]
    return np.array([lr * lam(int(s)) for s in steps], dtype=np.float64)


def noam_expected(d_model, warmup_steps, scale, steps):
    t = np.asarray(steps, dtype=np.float64) + 1.0
    return scale * d_model**-0.5 * np.minimum(t**-0.5, t * warmup_steps**-1.5)


# atol: ATOL, except for a cosine whose 2 * num_cycles is not an integer:
# its phase is then a float32 number (not an exact integer ratio), which
# bounds the deviation to a few 1e-7 of the peak rate in absolute terms,
# however close to 0 the value is (see keras_optzoo/schedules/hf.py).
Case = collections.namedtuple("Case", "id ours oracle steps atol")


def hf_case(id, ours, make, lr, steps, atol=ATOL):
    """``ours()`` against ``transformers`` ``make(optimizer)``."""
    return Case(id, ours, lambda st: hf_expected(make, lr, st), steps, atol)


LR = 0.1
CASES = [
    # ConstantWithWarmup
    hf_case("constant-warmup", lambda: S.ConstantWithWarmup(LR, 10),
            lambda o: hf.get_constant_schedule_with_warmup(o, 10), LR,
            grid(10)),
    hf_case("constant-no-warmup", lambda: S.ConstantWithWarmup(0.3, 0),
            lambda o: hf.get_constant_schedule_with_warmup(o, 0), 0.3,
            grid(0)),
    # LinearWithWarmup
    hf_case("linear", lambda: S.LinearWithWarmup(LR, 10, 100),
            lambda o: hf.get_linear_schedule_with_warmup(o, 10, 100), LR,
            grid(10, 100)),
    hf_case("linear-no-warmup", lambda: S.LinearWithWarmup(2e-5, 0, 50),
            lambda o: hf.get_linear_schedule_with_warmup(o, 0, 50), 2e-5,
            grid(0, 50)),
    hf_case("linear-training-shorter", lambda: S.LinearWithWarmup(LR, 20, 10),
            lambda o: hf.get_linear_schedule_with_warmup(o, 20, 10), LR,
            grid(10, 20)),
    hf_case("linear-equal", lambda: S.LinearWithWarmup(LR, 5, 5),
            lambda o: hf.get_linear_schedule_with_warmup(o, 5, 5), LR,
            grid(5)),
    # CosineWithWarmup
    hf_case("cosine", lambda: S.CosineWithWarmup(LR, 10, 100),
            lambda o: hf.get_cosine_schedule_with_warmup(o, 10, 100), LR,
            grid(10, 100, 190)),
    hf_case("cosine-1.5-cycles", lambda: S.CosineWithWarmup(LR, 7, 60, 1.5),
            lambda o: hf.get_cosine_schedule_with_warmup(o, 7, 60, 1.5), LR,
            grid(7, 60)),
    hf_case("cosine-0.3-cycles", lambda: S.CosineWithWarmup(LR, 0, 40, 0.3),
            lambda o: hf.get_cosine_schedule_with_warmup(o, 0, 40, 0.3), LR,
            grid(40), atol=3e-7 * LR),
    hf_case("cosine-long", lambda: S.CosineWithWarmup(3e-4, 500, 20_000),
            lambda o: hf.get_cosine_schedule_with_warmup(o, 500, 20_000),
            3e-4, grid(500, 20_000, 39_500, dense=1000)),
    # CosineWithHardRestartsWithWarmup
    hf_case("restarts",
            lambda: S.CosineWithHardRestartsWithWarmup(LR, 10, 100),
            lambda o: hf.get_cosine_with_hard_restarts_schedule_with_warmup(
                o, 10, 100), LR, grid(10, 100)),
    hf_case("restarts-3",
            lambda: S.CosineWithHardRestartsWithWarmup(LR, 5, 65, 3),
            lambda o: hf.get_cosine_with_hard_restarts_schedule_with_warmup(
                o, 5, 65, 3), LR, grid(5, 25, 45, 65)),
    hf_case("restarts-2.5",
            lambda: S.CosineWithHardRestartsWithWarmup(LR, 3, 43, 2.5),
            lambda o: hf.get_cosine_with_hard_restarts_schedule_with_warmup(
                o, 3, 43, 2.5), LR, grid(3, 19, 35, 43)),
    # PolynomialWithWarmup
    hf_case("polynomial", lambda: S.PolynomialWithWarmup(LR, 10, 100),
            lambda o: hf.get_polynomial_decay_schedule_with_warmup(
                o, 10, 100), LR, grid(10, 100)),
    hf_case("polynomial-power2",
            lambda: S.PolynomialWithWarmup(LR, 5, 50, lr_end=0.01, power=2.0),
            lambda o: hf.get_polynomial_decay_schedule_with_warmup(
                o, 5, 50, lr_end=0.01, power=2.0), LR, grid(5, 50)),
    hf_case("polynomial-sqrt-no-warmup",
            lambda: S.PolynomialWithWarmup(LR, 0, 30, lr_end=0.0, power=0.5),
            lambda o: hf.get_polynomial_decay_schedule_with_warmup(
                o, 0, 30, lr_end=0.0, power=0.5), LR, grid(30)),
    hf_case("polynomial-power0",
            lambda: S.PolynomialWithWarmup(LR, 10, 40, lr_end=1e-3, power=0),
            lambda o: hf.get_polynomial_decay_schedule_with_warmup(
                o, 10, 40, lr_end=1e-3, power=0), LR, grid(10, 40)),
    hf_case("polynomial-training-shorter",
            lambda: S.PolynomialWithWarmup(LR, 20, 10, lr_end=1e-4),
            lambda o: hf.get_polynomial_decay_schedule_with_warmup(
                o, 20, 10, lr_end=1e-4), LR, grid(10, 20)),
    # InverseSqrt
    hf_case("inverse-sqrt", lambda: S.InverseSqrt(LR, 10),
            lambda o: hf.get_inverse_sqrt_schedule(o, 10), LR, grid(10)),
    hf_case("inverse-sqrt-no-warmup", lambda: S.InverseSqrt(LR, 0),
            lambda o: hf.get_inverse_sqrt_schedule(o, 0), LR, grid(10)),
    hf_case("inverse-sqrt-timescale", lambda: S.InverseSqrt(LR, 100, 30),
            lambda o: hf.get_inverse_sqrt_schedule(o, 100, 30), LR,
            grid(100)),
    # CosineWithMinLRWithWarmup
    hf_case("cosine-min-lr",
            lambda: S.CosineWithMinLRWithWarmup(LR, 10, 100, min_lr=1e-3),
            lambda o: hf.get_cosine_with_min_lr_schedule_with_warmup(
                o, 10, 100, min_lr=1e-3), LR, grid(10, 100, 190)),
    hf_case("cosine-min-lr-rate",
            lambda: S.CosineWithMinLRWithWarmup(LR, 5, 60, 1.0,
                                                min_lr_rate=0.1),
            lambda o: hf.get_cosine_with_min_lr_schedule_with_warmup(
                o, 5, 60, 1.0, min_lr_rate=0.1), LR, grid(5, 60)),
    hf_case("cosine-min-lr-0.7-cycles",
            lambda: S.CosineWithMinLRWithWarmup(LR, 0, 50, 0.7,
                                                min_lr_rate=0.05),
            lambda o: hf.get_cosine_with_min_lr_schedule_with_warmup(
                o, 0, 50, 0.7, min_lr_rate=0.05), LR, grid(50),
            atol=3e-7 * LR),
    # WarmupStableDecay
    hf_case("wsd", lambda: S.WarmupStableDecay(LR, 10, 20,
                                               num_training_steps=100),
            lambda o: hf.get_wsd_schedule(o, 10, 20, num_training_steps=100),
            LR, grid(10, 80, 100)),
    hf_case("wsd-cosine-linear-min",
            lambda: S.WarmupStableDecay(LR, 5, 10, num_stable_steps=30,
                                        warmup_type="cosine",
                                        decay_type="linear",
                                        min_lr_ratio=0.1),
            lambda o: hf.get_wsd_schedule(o, 5, 10, num_stable_steps=30,
                                          warmup_type="cosine",
                                          decay_type="linear",
                                          min_lr_ratio=0.1),
            LR, grid(5, 35, 45)),
    hf_case("wsd-1-sqrt",
            lambda: S.WarmupStableDecay(LR, 8, 16, num_training_steps=60,
                                        warmup_type="1-sqrt",
                                        decay_type="1-sqrt",
                                        min_lr_ratio=0.05),
            lambda o: hf.get_wsd_schedule(o, 8, 16, num_training_steps=60,
                                          warmup_type="1-sqrt",
                                          decay_type="1-sqrt",
                                          min_lr_ratio=0.05),
            LR, grid(8, 44, 60)),
    hf_case("wsd-1.5-cycles-no-warmup",
            lambda: S.WarmupStableDecay(LR, 0, 10, num_stable_steps=5,
                                        num_cycles=1.5),
            lambda o: hf.get_wsd_schedule(o, 0, 10, num_stable_steps=5,
                                          num_cycles=1.5),
            LR, grid(5, 15)),
    hf_case("wsd-negative-stable",
            lambda: S.WarmupStableDecay(LR, 10, 20, num_training_steps=25),
            lambda o: hf.get_wsd_schedule(o, 10, 20, num_training_steps=25),
            LR, grid(5, 10, 25)),
    hf_case("wsd-no-decay",
            lambda: S.WarmupStableDecay(LR, 10, 0, num_stable_steps=10,
                                        min_lr_ratio=0.2),
            lambda o: hf.get_wsd_schedule(o, 10, 0, num_stable_steps=10,
                                          min_lr_ratio=0.2),
            LR, grid(10, 20)),
    # Noam (closed form; t = step + 1)
    Case("noam", lambda: S.Noam(512, 4000),
         lambda st: noam_expected(512, 4000, 1.0, st),
         grid(3999, 4000, dense=300), ATOL),
    Case("noam-scale", lambda: S.Noam(64, 10, scale=2.0),
         lambda st: noam_expected(64, 10, 2.0, st), grid(9, 10), ATOL),
]


def run_case(case):
    """``(steps, ours, expected)`` on the active backend."""
    expected = case.oracle(case.steps)
    ours = evaluate_grid(case.ours(), case.steps)
    return case.steps, ours, expected


def relative_deviation(ours, expected):
    """max |ours - expected| / |expected|, ignoring differences <= ATOL."""
    diff = np.abs(ours - expected)
    diff = np.where(diff <= ATOL, 0.0, diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(expected))
    return float(rel.max()) if rel.size else 0.0
