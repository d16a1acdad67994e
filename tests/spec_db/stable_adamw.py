"""Spec of StableAdamW: torch-optimi 0.3.3's ``optimi.StableAdamW``, its
for-loop path (``foreach=False, triton=False``), is the oracle.

Kahan summation acts on float16/bfloat16 variables only, so the float32
trajectories here do not see it; tests/test_stable_adamw.py compares it
with optimi's own bfloat16 run.
"""

import warnings

import keras

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_stable_adamw import NumpyStableAdamW
except ImportError:  # imported as tests.spec_db.stable_adamw
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_stable_adamw import NumpyStableAdamW


def make_stable_adamw(params, beta1=0.9, beta2=0.99, **kwargs):
    """optimi's StableAdamW, its ``betas`` given as the group keys it
    keeps (``beta1``, ``beta2``: a param group overrides those)."""
    from optimi import StableAdamW

    with warnings.catch_warnings():
        # "weight_decay ... potentially high for decouple_lr=True"
        warnings.simplefilter("ignore", UserWarning)
        return StableAdamW(params, betas=(beta1, beta2), **kwargs)


#: Keras-spelled arguments -> optimi's (group keys beta1/beta2; the
#: for-loop implementation pinned)
reference_kwargs = converter(
    renames={"beta_1": "beta1", "beta_2": "beta2"},
    defaults={"foreach": False, "triton": False})


def _bool_error(name):
    return ErrorCase({name: 1}, TypeError,
                     rf"Argument `{name}` must be True or False")


def _optimi_class():
    from optimi import StableAdamW

    return StableAdamW


SPECS = [
    OptimizerSpec(
        name="stableadamw",
        # float32 variables: no kahan_comp (float16/bfloat16 ones add it)
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False)],
        cls=oz.StableAdamW,
        torch_cls=_optimi_class(),
        make_reference=make_stable_adamw,
        reference_kwargs=reference_kwargs,
        reference_name="torch-optimi 0.3.3 StableAdamW",
        numpy_reference=NumpyStableAdamW,
        capabilities=frozenset({"weight_decay"}),
        configs=[
            # the RMS exceeds 1 on about half of the steps (the clip is
            # active); default decay 1e-2
            Config("default", {"learning_rate": 0.03}),
            Config("decouple_lr", {"learning_rate": 0.03,
                                   "decouple_lr": True,
                                   "weight_decay": 1e-3}),
            Config("decouple_lr_max_lr_betas", {
                "learning_rate": 0.03, "decouple_lr": True, "max_lr": 0.05,
                "weight_decay": 0.01, "beta_1": 0.8, "beta_2": 0.95,
                "epsilon": 1e-4}),
            Config("wd_no_kahan", {"learning_rate": 0.03,
                                   "weight_decay": 0.5, "kahan_sum": False}),
            Config("no_wd_kahan", {"learning_rate": 0.03,
                                   "weight_decay": 0.0, "kahan_sum": True}),
            # g² ~ 1e-12 = ε²: the floor of v in the RMS and ε in the step
            Config("tiny", {"learning_rate": 0.03}, grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"beta_1": 1.0}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1"),
            ErrorCase({"beta_2": -0.1}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)\. "
                      r"Received: beta_2=-0\.1"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1"),
            ErrorCase({"max_lr": 0.0}, ValueError,
                      r"Argument `max_lr` must be > 0\. Received: max_lr=0"),
            ErrorCase({"max_lr": "1"}, TypeError,
                      r"Argument `max_lr` must be a real number"),
            ErrorCase({"decouple_lr": True,
                       "learning_rate": keras.optimizers.schedules
                       .ExponentialDecay(0.1, 10, 0.5)},
                      ValueError,
                      r"Argument `max_lr` must be given when "
                      r"`decouple_lr=True` and `learning_rate` is a "
                      r"schedule"),
            ErrorCase({"kahan_sum": "auto"}, TypeError,
                      r"Argument `kahan_sum` must be True, False or None\. "
                      r"Received: kahan_sum='auto'"),
        ] + [_bool_error("decouple_lr")],
    ),
]
