"""Schedule test support: torch oracles, the compiled evaluator, the cases.

Used by tests/test_schedules.py and benchmarks/schedule_deviation.py.

A case pairs one of our schedules with the torch scheduler it reproduces.
torch is stepped once per epoch (or per batch for CyclicLR / OneCycleLR) on
a dummy SGD optimizer and ``get_last_lr()[0]`` is recorded before each
``optimizer.step()``: that is the learning rate of update ``e``. Our value
at step ``s`` must equal torch's value at epoch ``s // steps_per_epoch``.

Past the recorded epochs, and at the huge step ``2**31 - 1``, the expected
value comes from the shape of torch's sequence (``Tail``): periodic from
some epoch on (a constant tail is period 1), a known limit, or a closed
form of the epoch; ``Tail.finite()`` only asks for a finite value.
"""

import collections
import math
import warnings

import numpy as np
import torch

import keras
from keras import ops

from keras_optzoo import schedules as S

HUGE_STEP = 2**31 - 1
LR = 0.1


# --------------------------------------------------------------------------
# Registered user functions (serializable, traceable) and their torch twins
# --------------------------------------------------------------------------

TEST_PACKAGE = "optzoo_schedule_tests"


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
def warmup_then_decay(epoch):
    return ops.where(epoch < 3, (epoch + 1.0) / 3.0, 0.8 ** (epoch - 3.0))


def torch_warmup_then_decay(epoch):
    return (epoch + 1) / 3 if epoch < 3 else 0.8 ** (epoch - 3)


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
def inverse_epoch(epoch):
    return 1.0 / (epoch + 1.0)


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
def two_rates(epoch):
    return ops.where(epoch <= 4, 0.9, 0.97)


def torch_two_rates(epoch):
    return 0.9 if epoch <= 4 else 0.97


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
def cycle_decay(cycle):
    return 0.7 ** (cycle - 1.0)


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
def iteration_decay(iteration):
    return 1.0 / (1.0 + 0.05 * iteration)


# --------------------------------------------------------------------------
# torch oracle
# --------------------------------------------------------------------------


def torch_sequence(make, n, optimizer="sgd", lr=LR):
    """``(lrs, momentums)`` recorded before each of ``n`` optimizer steps.

    ``make(opt)`` builds the torch scheduler on ``opt``; momentums are
    ``param_groups[0]['momentum']`` (SGD, momentum 0.9) or ``['betas'][0]``
    (Adam).
    """
    param = torch.nn.Parameter(torch.zeros(1))
    if optimizer == "sgd":
        opt = torch.optim.SGD([param], lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam([param], lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = make(opt)
        lrs, momentums = [], []
        for _ in range(n):
            lrs.append(float(scheduler.get_last_lr()[0]))
            group = opt.param_groups[0]
            momentums.append(
                float(group["momentum"] if optimizer == "sgd"
                      else group["betas"][0])
            )
            opt.step()
            scheduler.step()
    return np.array(lrs), np.array(momentums)


# --------------------------------------------------------------------------
# Compiled evaluation on the active backend
# --------------------------------------------------------------------------


def evaluate_compiled(schedule, steps):
    """``schedule(step)`` for each step, inside one compiled function.

    jax: ``jax.jit`` with an int32 step; tensorflow: ``tf.function(
    jit_compile=True)`` with an int64 step; torch: eager with an int64
    tensor. Checks every value is a float32 scalar; returns float64 numpy.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        fn = jax.jit(lambda s: schedule(s))
        outputs = [fn(np.int32(s)) for s in steps]
    elif backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda s: schedule(s),
            jit_compile=True,
            input_signature=[tf.TensorSpec([], tf.int64)],
        )
        outputs = [fn(tf.constant(s, tf.int64)) for s in steps]
    else:
        outputs = [schedule(torch.tensor(s, dtype=torch.int64)) for s in steps]
    for out in outputs:
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert tuple(out.shape) == ()
    return np.array([float(ops.convert_to_numpy(out)) for out in outputs])


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


class Tail:
    """What torch's sequence does past the recorded epochs."""

    def __init__(self, kind, start=None, period=None, value=None, fn=None):
        self.kind, self.start, self.period = kind, start, period
        self.value, self.fn = value, fn

    @classmethod
    def periodic(cls, start, period):
        return cls("periodic", start=start, period=period)

    @classmethod
    def constant(cls, start):
        return cls("periodic", start=start, period=1)

    @classmethod
    def limit(cls, value):
        return cls("limit", value=value)

    @classmethod
    def closed(cls, fn):
        return cls("closed", fn=fn)

    @classmethod
    def finite(cls):
        return cls("finite")

    def expected(self, torch_lrs, epoch):
        """Expected value at ``epoch`` (None: only finiteness is known)."""
        if epoch < len(torch_lrs):
            return torch_lrs[epoch]
        if self.kind == "periodic":
            index = self.start + (epoch - self.start) % self.period
            assert index < len(torch_lrs), "record a whole period"
            return torch_lrs[index]
        if self.kind == "limit":
            return self.value
        if self.kind == "closed":
            return self.fn(epoch)
        return None


Case = collections.namedtuple(
    "Case", "id ours torch epochs spe tail test_epochs"
)


def case(id, ours, torch_make, epochs, tail, spe=1, test_epochs=None):
    return Case(id, ours, torch_make, epochs, spe, tail,
                test_epochs or epochs)


L = torch.optim.lr_scheduler


def _torch_sequential(children, milestones):
    return lambda o: L.SequentialLR(o, [c(o) for c in children], milestones)


def _torch_chained(children):
    return lambda o: L.ChainedScheduler([c(o) for c in children])


CASES = [
    # LambdaLR
    case("lambda-warmup-decay",
         lambda: S.LambdaLR(LR, warmup_then_decay),
         lambda o: L.LambdaLR(o, torch_warmup_then_decay), 20,
         Tail.limit(0.0)),
    case("lambda-warmup-decay-spe3",
         lambda: S.LambdaLR(LR, warmup_then_decay, steps_per_epoch=3),
         lambda o: L.LambdaLR(o, torch_warmup_then_decay), 10,
         Tail.limit(0.0), spe=3),
    case("lambda-inverse",
         lambda: S.LambdaLR(0.05, inverse_epoch),
         lambda o: L.LambdaLR(o, lambda e: 1.0 / (e + 1)), 12,
         Tail.closed(lambda e: 0.05 / (e + 1)), ),
    # MultiplicativeLR
    case("multiplicative-window",
         lambda: S.MultiplicativeLR(LR, two_rates, max_epochs=20),
         lambda o: L.MultiplicativeLR(o, torch_two_rates), 21,
         Tail.constant(20)),
    case("multiplicative-spe2",
         lambda: S.MultiplicativeLR(LR, two_rates, steps_per_epoch=2),
         lambda o: L.MultiplicativeLR(o, torch_two_rates), 12,
         Tail.limit(LR * 0.9**5 * 0.97**9995), spe=2),
    # StepLR
    case("step-default-gamma",
         lambda: S.StepLR(LR, step_size=3),
         lambda o: L.StepLR(o, step_size=3), 15, Tail.limit(0.0)),
    case("step-spe3",
         lambda: S.StepLR(1.0, step_size=2, gamma=0.5, steps_per_epoch=3),
         lambda o: L.StepLR(o, step_size=2, gamma=0.5), 12,
         Tail.limit(0.0), spe=3),
    # MultiStepLR
    case("multistep-repeated",
         lambda: S.MultiStepLR(LR, milestones=[2, 5, 5, 9]),
         lambda o: L.MultiStepLR(o, milestones=[2, 5, 5, 9]), 16,
         Tail.constant(10), test_epochs=30),
    case("multistep-zero-unsorted-spe2",
         lambda: S.MultiStepLR(LR, [3, 0], gamma=0.5, steps_per_epoch=2),
         lambda o: L.MultiStepLR(o, milestones=[3, 0], gamma=0.5), 8,
         Tail.constant(3), spe=2, test_epochs=12),
    # ConstantLR
    case("constant-default",
         lambda: S.ConstantLR(LR),
         lambda o: L.ConstantLR(o), 15, Tail.constant(5)),
    case("constant-spe4",
         lambda: S.ConstantLR(LR, factor=0.5, total_iters=3,
                              steps_per_epoch=4),
         lambda o: L.ConstantLR(o, factor=0.5, total_iters=3), 9,
         Tail.constant(3), spe=4),
    # LinearLR
    case("linear-default",
         lambda: S.LinearLR(LR),
         lambda o: L.LinearLR(o), 15, Tail.constant(5)),
    case("linear-spe3",
         lambda: S.LinearLR(0.2, start_factor=0.25, end_factor=0.5,
                            total_iters=4, steps_per_epoch=3),
         lambda o: L.LinearLR(o, start_factor=0.25, end_factor=0.5,
                              total_iters=4), 12,
         Tail.constant(4), spe=3),
    case("linear-down",
         lambda: S.LinearLR(LR, start_factor=1.0, end_factor=0.1,
                            total_iters=6),
         lambda o: L.LinearLR(o, start_factor=1.0, end_factor=0.1,
                              total_iters=6), 18, Tail.constant(6)),
    # ExponentialLR
    case("exponential",
         lambda: S.ExponentialLR(LR, gamma=0.9),
         lambda o: L.ExponentialLR(o, gamma=0.9), 40, Tail.limit(0.0)),
    case("exponential-spe3",
         lambda: S.ExponentialLR(0.5, gamma=0.5, steps_per_epoch=3),
         lambda o: L.ExponentialLR(o, gamma=0.5), 15, Tail.limit(0.0),
         spe=3),
    case("exponential-long",
         lambda: S.ExponentialLR(LR, gamma=0.99),
         lambda o: L.ExponentialLR(o, gamma=0.99), 400, Tail.limit(0.0)),
    # PolynomialLR
    case("polynomial-default",
         lambda: S.PolynomialLR(LR),
         lambda o: L.PolynomialLR(o), 15, Tail.constant(5)),
    case("polynomial-power-spe2",
         lambda: S.PolynomialLR(LR, total_iters=6, power=2.5,
                                steps_per_epoch=2),
         lambda o: L.PolynomialLR(o, total_iters=6, power=2.5), 18,
         Tail.constant(6), spe=2),
    case("polynomial-power0",
         lambda: S.PolynomialLR(LR, total_iters=4, power=0.0),
         lambda o: L.PolynomialLR(o, total_iters=4, power=0.0), 12,
         Tail.constant(4)),
    # CosineAnnealingLR
    case("cosine",
         lambda: S.CosineAnnealingLR(LR, T_max=5),
         lambda o: L.CosineAnnealingLR(o, T_max=5), 30,
         Tail.periodic(0, 10)),
    case("cosine-eta-min-spe3",
         lambda: S.CosineAnnealingLR(LR, T_max=4, eta_min=0.01,
                                     steps_per_epoch=3),
         lambda o: L.CosineAnnealingLR(o, T_max=4, eta_min=0.01), 24,
         Tail.periodic(0, 8), spe=3),
    case("cosine-tmax1",
         lambda: S.CosineAnnealingLR(LR, T_max=1),
         lambda o: L.CosineAnnealingLR(o, T_max=1), 6, Tail.periodic(0, 2)),
    case("cosine-long",
         lambda: S.CosineAnnealingLR(LR, T_max=50),
         lambda o: L.CosineAnnealingLR(o, T_max=50), 300,
         Tail.periodic(0, 100)),
    # CosineAnnealingWarmRestarts
    case("warm-restarts",
         lambda: S.CosineAnnealingWarmRestarts(LR, T_0=4),
         lambda o: L.CosineAnnealingWarmRestarts(o, T_0=4), 16,
         Tail.periodic(0, 4)),
    case("warm-restarts-mult2",
         lambda: S.CosineAnnealingWarmRestarts(LR, T_0=2, T_mult=2,
                                               eta_min=0.001),
         lambda o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2,
                                                 eta_min=0.001), 64,
         Tail.finite()),
    case("warm-restarts-mult3-spe2",
         lambda: S.CosineAnnealingWarmRestarts(LR, T_0=3, T_mult=3,
                                               steps_per_epoch=2),
         lambda o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=3), 42,
         Tail.finite(), spe=2),
    # CyclicLR (per batch)
    case("cyclic-triangular",
         lambda: S.CyclicLR(0.001, 0.006, step_size_up=4),
         lambda o: L.CyclicLR(o, 0.001, 0.006, step_size_up=4), 24,
         Tail.periodic(0, 8)),
    case("cyclic-triangular2",
         lambda: S.CyclicLR(0.001, 0.01, step_size_up=3, step_size_down=5,
                            mode="triangular2"),
         lambda o: L.CyclicLR(o, 0.001, 0.01, step_size_up=3,
                              step_size_down=5, mode="triangular2"), 40,
         Tail.limit(0.001)),
    case("cyclic-exp-range",
         lambda: S.CyclicLR(0.01, 0.1, step_size_up=2, mode="exp_range",
                            gamma=0.95),
         lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2,
                              mode="exp_range", gamma=0.95), 30,
         Tail.limit(0.01)),
    case("cyclic-scale-fn-cycle",
         lambda: S.CyclicLR(0.01, 0.05, step_size_up=3, step_size_down=2,
                            scale_fn=cycle_decay),
         lambda o: L.CyclicLR(o, 0.01, 0.05, step_size_up=3,
                              step_size_down=2,
                              scale_fn=lambda c: 0.7 ** (c - 1)), 25,
         Tail.limit(0.01)),
    case("cyclic-scale-fn-iterations",
         lambda: S.CyclicLR(0.01, 0.05, step_size_up=2,
                            scale_fn=iteration_decay,
                            scale_mode="iterations"),
         lambda o: L.CyclicLR(o, 0.01, 0.05, step_size_up=2,
                              scale_fn=lambda i: 1.0 / (1.0 + 0.05 * i),
                              scale_mode="iterations"), 20,
         Tail.finite()),
    case("cyclic-no-down",
         lambda: S.CyclicLR(0.01, 0.05, step_size_up=4, step_size_down=0),
         lambda o: L.CyclicLR(o, 0.01, 0.05, step_size_up=4,
                              step_size_down=0), 12, Tail.periodic(0, 4)),
    # OneCycleLR (per batch; torch raises past total_steps, we hold)
    case("one-cycle",
         lambda: S.OneCycleLR(LR, total_steps=20),
         lambda o: L.OneCycleLR(o, LR, total_steps=20), 20,
         Tail.constant(19), test_epochs=60),
    case("one-cycle-three-phase-linear",
         lambda: S.OneCycleLR(0.2, epochs=4, steps_per_epoch=5,
                              pct_start=0.25, anneal_strategy="linear",
                              three_phase=True),
         lambda o: L.OneCycleLR(o, 0.2, epochs=4, steps_per_epoch=5,
                                pct_start=0.25, anneal_strategy="linear",
                                three_phase=True), 20,
         Tail.constant(19), test_epochs=60),
    case("one-cycle-three-phase-cos",
         lambda: S.OneCycleLR(0.2, total_steps=17, pct_start=0.45,
                              three_phase=True, div_factor=10.0,
                              final_div_factor=100.0),
         lambda o: L.OneCycleLR(o, 0.2, total_steps=17, pct_start=0.45,
                                three_phase=True, div_factor=10.0,
                                final_div_factor=100.0), 17,
         Tail.constant(16), test_epochs=51),
    case("one-cycle-pct0",
         lambda: S.OneCycleLR(LR, total_steps=10, pct_start=0.0),
         lambda o: L.OneCycleLR(o, LR, total_steps=10, pct_start=0.0), 10,
         Tail.constant(9), test_epochs=30),
    # SequentialLR
    case("sequential-warmup-cosine",
         lambda: S.SequentialLR(
             [S.LinearLR(LR, start_factor=0.1, total_iters=3),
              S.CosineAnnealingLR(LR, T_max=6)], milestones=[3]),
         _torch_sequential(
             [lambda o: L.LinearLR(o, start_factor=0.1, total_iters=3),
              lambda o: L.CosineAnnealingLR(o, T_max=6)], [3]), 39,
         Tail.periodic(3, 12)),
    case("sequential-milestone0-spe2",
         lambda: S.SequentialLR(
             [S.ExponentialLR(LR, 0.5, steps_per_epoch=2),
              S.ConstantLR(LR, factor=0.5, total_iters=2, steps_per_epoch=2),
              S.StepLR(LR, 2, gamma=0.5, steps_per_epoch=2)],
             milestones=[0, 4], steps_per_epoch=2),
         _torch_sequential(
             [lambda o: L.ExponentialLR(o, gamma=0.5),
              lambda o: L.ConstantLR(o, factor=0.5, total_iters=2),
              lambda o: L.StepLR(o, 2, gamma=0.5)], [0, 4]), 12,
         Tail.limit(0.0), spe=2),
    case("sequential-equal-milestones",
         lambda: S.SequentialLR(
             [S.ConstantLR(LR, factor=0.2, total_iters=10),
              S.LinearLR(LR, start_factor=0.5, total_iters=2),
              S.ExponentialLR(LR, 0.8)], milestones=[2, 2]),
         _torch_sequential(
             [lambda o: L.ConstantLR(o, factor=0.2, total_iters=10),
              lambda o: L.LinearLR(o, start_factor=0.5, total_iters=2),
              lambda o: L.ExponentialLR(o, gamma=0.8)], [2, 2]), 12,
         Tail.limit(0.0)),
    # ChainedScheduler (multiplicative children)
    case("chained-constant-exponential",
         lambda: S.ChainedScheduler(
             [S.ConstantLR(LR, factor=0.5, total_iters=3),
              S.ExponentialLR(LR, gamma=0.9)]),
         _torch_chained([lambda o: L.ConstantLR(o, factor=0.5, total_iters=3),
                         lambda o: L.ExponentialLR(o, gamma=0.9)]), 15,
         Tail.limit(0.0)),
    case("chained-three-spe2",
         lambda: S.ChainedScheduler(
             [S.LinearLR(LR, start_factor=0.2, total_iters=4,
                         steps_per_epoch=2),
              S.StepLR(LR, 3, gamma=0.5, steps_per_epoch=2),
              S.MultiStepLR(LR, [5], steps_per_epoch=2)]),
         _torch_chained([lambda o: L.LinearLR(o, start_factor=0.2,
                                              total_iters=4),
                         lambda o: L.StepLR(o, 3, gamma=0.5),
                         lambda o: L.MultiStepLR(o, [5])]), 12,
         Tail.limit(0.0), spe=2),
    case("chained-polynomial-cosine",
         lambda: S.ChainedScheduler(
             [S.PolynomialLR(LR, total_iters=6, power=2.0),
              S.CosineAnnealingLR(LR, T_max=6)]),
         _torch_chained([lambda o: L.PolynomialLR(o, total_iters=6,
                                                  power=2.0),
                         lambda o: L.CosineAnnealingLR(o, T_max=6)]), 7,
         Tail.limit(0.0)),
]


# (id, ours, torch, steps): one cycle or more of CyclicLR / OneCycleLR whose
# momentum_schedule() is compared with torch's param groups.
MOMENTUM_CASES = [
    ("cyclic", lambda: S.CyclicLR(0.01, 0.1, step_size_up=4,
                                  step_size_down=6),
     lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=4, step_size_down=6),
     30),
    ("cyclic-triangular2",
     lambda: S.CyclicLR(0.01, 0.1, step_size_up=3, mode="triangular2",
                        base_momentum=0.85, max_momentum=0.95),
     lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode="triangular2",
                          base_momentum=0.85, max_momentum=0.95), 18),
    ("one-cycle", lambda: S.OneCycleLR(0.1, total_steps=20),
     lambda o: L.OneCycleLR(o, 0.1, total_steps=20), 20),
    ("one-cycle-three-phase",
     lambda: S.OneCycleLR(0.1, total_steps=23, pct_start=0.4,
                          three_phase=True),
     lambda o: L.OneCycleLR(o, 0.1, total_steps=23, pct_start=0.4,
                            three_phase=True), 23),
]


def expected_and_steps(c, torch_lrs):
    """Steps to evaluate (every step of the tested epochs, then the huge
    step) and the expected values (NaN where only finiteness is known)."""
    steps = list(range(c.test_epochs * c.spe)) + [HUGE_STEP]
    expected = []
    for s in steps:
        value = c.tail.expected(torch_lrs, s // c.spe)
        expected.append(math.nan if value is None else value)
    return steps, np.array(expected)


def run_case(c):
    """``(steps, ours, expected)`` for one case on the active backend."""
    schedule = c.ours()
    # torch reads the base learning rate from the optimizer.
    lr = getattr(schedule, "initial_learning_rate", LR)
    torch_lrs, _ = torch_sequence(c.torch, c.epochs, lr=lr)
    steps, expected = expected_and_steps(c, torch_lrs)
    ours = evaluate_compiled(schedule, steps)
    return steps, ours, expected


# Differences below the smallest normal float32 are float32 underflow (torch
# computes in float64), not deviations.
ATOL = float(np.finfo(np.float32).tiny)
RTOL = 1e-6


def relative_deviation(ours, expected):
    """max |ours - expected| / |expected| over the known values, ignoring
    differences below ``ATOL``."""
    known = ~np.isnan(expected)
    diff = np.abs(ours[known] - expected[known])
    diff = np.where(diff <= ATOL, 0.0, diff)
    scale = np.abs(expected[known])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / scale)
    return float(rel.max()) if rel.size else 0.0
