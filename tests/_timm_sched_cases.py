"""Cases and the oracle for timm's schedulers.

Used by tests/test_timm_schedules.py and benchmarks/timm_schedule_deviation.py.

The oracle is timm's own scheduler class (timm.scheduler, loaded without
timm's ``__init__``, see tests/reference/external.py) on a torch SGD with
``lr`` the base rate, used the way timm's training loop uses it: the rate of
time ``t`` is ``param_groups[0]["lr"]`` after ``step(t)`` (``t_in_epochs``)
or ``step_update(t)`` (per update), and at ``t = 0``, where the loop makes
no call, what the constructor left there. timm's schedulers keep no state
between calls (``_get_lr(t)`` plus the noise of a generator seeded with
``noise_seed + t``), so each ``t`` of a grid is asked for directly, far
steps included. Optimizer step ``s`` is ``t = s // steps_per_epoch`` with
``t_in_epochs``, ``t = s`` otherwise.

Our values come from ONE compiled call per grid (``evaluate_grid``, shared
with the Hugging Face cases: int32 steps under ``jax.jit``, int64 under
``tf.function(jit_compile=True)``, int64 on torch).
"""

import collections
import math

import numpy as np
import torch

from _hf_sched_cases import FAR_STEPS
from _hf_sched_cases import HUGE_STEP  # noqa: F401  (re-exported)
from _hf_sched_cases import evaluate_grid  # noqa: F401  (re-exported)
from keras_optzoo import schedules as S

try:
    from reference.external import timm_scheduler
except ImportError:  # run from the repository root
    from tests.reference.external import timm_scheduler

cosine_lr = timm_scheduler("cosine_lr")
tanh_lr = timm_scheduler("tanh_lr")
poly_lr = timm_scheduler("poly_lr")
step_lr = timm_scheduler("step_lr")
multistep_lr = timm_scheduler("multistep_lr")

# The criterion: |ours - timm| <= 1e-6 * the largest rate of the grid.
PEAK_TOL = 1e-6
# Differences below the smallest normal float32 are underflow, not error.
ATOL = float(np.finfo(np.float32).tiny)


def timm_rates(make, lr, ts, t_in_epochs):
    """timm's rate at each ``t`` of ``ts`` (NaN where timm raises)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make(optimizer)
    initial = optimizer.param_groups[0]["lr"]
    out = []
    for t in ts:
        t = int(t)
        if t == 0:
            out.append(initial)
            continue
        try:
            if t_in_epochs:
                scheduler.step(t)
            else:
                scheduler.step_update(t)
        except (ValueError, OverflowError):
            out.append(math.nan)
            continue
        out.append(float(optimizer.param_groups[0]["lr"]))
    return np.array(out, dtype=np.float64)


def grid(*boundaries, dense=None, spe=1):
    """Every step up to ``dense`` (default 3 x the largest boundary + 5),
    each boundary (in t) +- 2 t, and FAR_STEPS; sorted, unique steps."""
    top = max(boundaries) if boundaries else 10
    dense = (3 * top + 5) * spe if dense is None else dense
    steps = set(range(dense + 1))
    for b in boundaries:
        for t in range(b - 2, b + 3):
            if t >= 0:
                steps.update((t * spe, t * spe + spe - 1))
    steps.update(FAR_STEPS)
    return np.array(sorted(steps), dtype=np.int64)


Case = collections.namedtuple("Case", "id ours timm steps")


def case(id, ours, timm, steps):
    return Case(id, ours, timm, steps)


def expected(c, steps=None):
    """timm's rate at each optimizer step of the case's grid."""
    schedule = c.ours()
    steps = c.steps if steps is None else np.asarray(steps, np.int64)
    spe = schedule.steps_per_epoch
    ts = steps // spe if schedule.t_in_epochs else steps
    unique, inverse = np.unique(ts, return_inverse=True)
    values = timm_rates(c.timm, schedule.initial_learning_rate, unique,
                        schedule.t_in_epochs)
    return values[inverse]


def run_case(c):
    """``(steps, ours, expected)`` on the active backend."""
    return c.steps, evaluate_grid(c.ours(), c.steps), expected(c)


def deviations(ours, theirs):
    """``(max |ours - timm| / peak, max relative deviation)`` over the
    values timm gives (differences below ATOL ignored)."""
    known = ~np.isnan(theirs)
    diff = np.abs(ours[known] - theirs[known])
    diff = np.where(diff <= ATOL, 0.0, diff)
    peak = float(np.max(np.abs(theirs[known])))
    scale = np.abs(theirs[known])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / scale)
    return float(diff.max()) / peak, float(rel.max())


LR = 0.1
C, T, P, ST, MS = (cosine_lr.CosineLRScheduler, tanh_lr.TanhLRScheduler,
                   poly_lr.PolyLRScheduler, step_lr.StepLRScheduler,
                   multistep_lr.MultiStepLRScheduler)


def _pair(ours_cls, timm_cls, lr, spe=1, **kwargs):
    """Ours and timm's with the same keyword arguments."""
    return (lambda: ours_cls(lr, steps_per_epoch=spe, **kwargs),
            lambda o: timm_cls(o, **kwargs))


def _case(id, cls, timm_cls, steps, lr=LR, spe=1, **kwargs):
    ours, timm = _pair(cls, timm_cls, lr, spe=spe, **kwargs)
    return case(id, ours, timm, steps)


CASES = [
    # ----------------------------------------------------------- cosine
    _case("cosine", S.CosineLRScheduler, C, grid(20),
          t_initial=20, lr_min=1e-4),
    _case("cosine-warmup-prefix-cycles", S.CosineLRScheduler, C,
          grid(3, 13, 23, 33, 43),
          t_initial=10, lr_min=1e-3, cycle_decay=0.5, cycle_limit=4,
          warmup_t=3, warmup_lr_init=1e-4, warmup_prefix=True),
    _case("cosine-warmup-inside", S.CosineLRScheduler, C, grid(5, 25),
          t_initial=25, warmup_t=5, warmup_lr_init=1e-5, lr_min=1e-5),
    _case("cosine-mul2", S.CosineLRScheduler, C, grid(5, 15, 35, 75, 155),
          t_initial=5, cycle_mul=2.0, cycle_decay=0.7, cycle_limit=5,
          lr_min=1e-4),
    _case("cosine-mul1.5", S.CosineLRScheduler, C,
          grid(10, 25, 47, 81, 132, 208),
          t_initial=10, cycle_mul=1.5, cycle_decay=0.9, cycle_limit=6,
          warmup_t=2, warmup_prefix=True, warmup_lr_init=0.01),
    _case("cosine-mul0.5", S.CosineLRScheduler, C, grid(64, 96, 112, 128),
          t_initial=64, cycle_mul=0.5, cycle_limit=20, lr_min=1e-3),
    _case("cosine-mul3-unlimited", S.CosineLRScheduler, C,
          grid(7, 28, 91, 280, 847),
          t_initial=7, cycle_mul=3, cycle_limit=10**9),
    _case("cosine-k-decay2", S.CosineLRScheduler, C, grid(30, 60),
          t_initial=30, k_decay=2.0, cycle_limit=3, cycle_decay=0.5,
          lr_min=1e-4),
    _case("cosine-k-decay0.5-mul2", S.CosineLRScheduler, C, grid(8, 24, 56),
          t_initial=8, k_decay=0.5, cycle_mul=2.0, cycle_limit=3),
    _case("cosine-updates", S.CosineLRScheduler, C,
          grid(20, 220, 420, dense=900),
          t_initial=200, warmup_t=20, warmup_lr_init=1e-5, lr_min=1e-6,
          cycle_limit=2, cycle_decay=0.1, t_in_epochs=False),
    _case("cosine-epochs-spe7", S.CosineLRScheduler, C, grid(2, 14, spe=7),
          spe=7, t_initial=12, warmup_t=2, warmup_lr_init=0.001),
    _case("cosine-timm-recipe", S.CosineLRScheduler, C,
          grid(5, 300, dense=700),
          lr=5e-4, t_initial=300, lr_min=1e-5, warmup_t=5,
          warmup_lr_init=1e-6, cycle_decay=0.1),
    _case("cosine-cycle-limit0", S.CosineLRScheduler, C, grid(10),
          t_initial=10, lr_min=0.01, cycle_limit=0),
    _case("cosine-noise", S.CosineLRScheduler, C, grid(5, 40, 50),
          t_initial=50, warmup_t=5, noise_range_t=(5, 40)),
    _case("cosine-noise-from-0", S.CosineLRScheduler, C, grid(10),
          t_initial=10, noise_range_t=(-3, 10), noise_seed=0),
    _case("cosine-noise-updates", S.CosineLRScheduler, C,
          grid(100, 2100, dense=2400),
          t_initial=2000, t_in_epochs=False, noise_range_t=(99.5, 2100),
          noise_pct=0.2, noise_std=0.5, noise_seed=7, cycle_limit=2),
    # ------------------------------------------------------------- tanh
    _case("tanh", S.TanhLRScheduler, T, grid(30, 60),
          t_initial=30, cycle_limit=2),
    _case("tanh-warmup-inside", S.TanhLRScheduler, T, grid(6, 40),
          t_initial=40, warmup_t=6, warmup_lr_init=1e-4, lr_min=1e-3),
    _case("tanh-warmup-prefix", S.TanhLRScheduler, T, grid(4, 24),
          t_initial=20, warmup_t=4, warmup_prefix=True, lr_min=1e-4),
    _case("tanh-mul1.5-bounds", S.TanhLRScheduler, T, grid(12, 30, 57, 97),
          t_initial=12, lb=-5.0, ub=5.0, cycle_mul=1.5, cycle_decay=0.6,
          cycle_limit=4, lr_min=1e-4),
    _case("tanh-updates-noise", S.TanhLRScheduler, T,
          grid(50, 500, dense=1200),
          t_initial=500, t_in_epochs=False, warmup_t=50,
          noise_range_t=(100, 450), noise_seed=3),
    # ------------------------------------------------------------- poly
    _case("poly", S.PolyLRScheduler, P, grid(40),
          t_initial=40, lr_min=1e-4),
    _case("poly-power2-k-decay-cycles", S.PolyLRScheduler, P,
          grid(20, 40, 60),
          t_initial=20, power=2.0, k_decay=1.5, cycle_limit=3,
          cycle_decay=0.5, lr_min=1e-5),
    _case("poly-mul2", S.PolyLRScheduler, P, grid(6, 18, 42, 90),
          t_initial=6, power=0.9, cycle_mul=2.0, cycle_limit=4),
    _case("poly-updates-warmup", S.PolyLRScheduler, P,
          grid(30, 330, dense=800),
          t_initial=300, power=1.0, warmup_t=30, warmup_prefix=True,
          warmup_lr_init=1e-4, t_in_epochs=False),
    _case("poly-power0", S.PolyLRScheduler, P, grid(10),
          t_initial=10, power=0.0, lr_min=1e-3),
    # ------------------------------------------------------------- step
    _case("step", S.StepLRScheduler, ST, grid(2, 5, 8, 11),
          decay_t=3, decay_rate=0.5, warmup_t=2, warmup_lr_init=1e-3),
    _case("step-fractional-effnet", S.StepLRScheduler, ST,
          grid(3, 40, dense=450),
          lr=0.016, decay_t=2.4, decay_rate=0.97, warmup_t=3,
          warmup_lr_init=1e-6),
    _case("step-fractional-updates", S.StepLRScheduler, ST,
          grid(799, 1599, dense=4000),
          decay_t=799.2, decay_rate=0.5, t_in_epochs=False),
    _case("step-not-prefix-spe3", S.StepLRScheduler, ST, grid(4, 8, spe=3),
          spe=3, decay_t=4, decay_rate=0.1, warmup_t=3,
          warmup_prefix=False),
    _case("step-constant", S.StepLRScheduler, ST, grid(5),
          decay_t=1, decay_rate=1.0, warmup_t=5, warmup_lr_init=1e-4),
    _case("step-rate0", S.StepLRScheduler, ST, grid(4),
          decay_t=4.0, decay_rate=0.0),
    _case("step-noise", S.StepLRScheduler, ST, grid(10, 30),
          decay_t=10, decay_rate=0.5, noise_range_t=(3, 30), noise_std=0.3,
          noise_pct=0.5, noise_seed=-5),
    # -------------------------------------------------------- multistep
    _case("multistep", S.MultiStepLRScheduler, MS, grid(10, 20, 30),
          decay_t=[10, 20, 30], decay_rate=0.1),
    _case("multistep-early-repeated", S.MultiStepLRScheduler, MS,
          grid(1, 5, 9),
          decay_t=[0, 1, 5, 5, 9.5], decay_rate=0.5),
    _case("multistep-warmup-prefix", S.MultiStepLRScheduler, MS,
          grid(4, 12, 20),
          decay_t=[8, 16], decay_rate=0.3, warmup_t=4,
          warmup_lr_init=1e-4),
    _case("multistep-updates-not-prefix", S.MultiStepLRScheduler, MS,
          grid(50, 300, 600, dense=1000),
          decay_t=[300, 600], decay_rate=0.1, warmup_t=50,
          warmup_prefix=False, t_in_epochs=False, noise_range_t=(60, 700)),
]
