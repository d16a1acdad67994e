"""Specs of the schedule-free optimizers against schedulefree 1.4.1
(AdamWScheduleFree, SGDScheduleFree, RAdamScheduleFree; their default
foreach path).

The trajectory the generic tests compare is the model's variables, y (the
reference is put in train mode before its first step, as its docs
require); tests/test_schedule_free.py compares the evaluation point x
after ``eval()`` too, and the modes.
"""

import schedulefree

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_schedule_free import (NumpyScheduleFreeAdamW,
                                            NumpyScheduleFreeRAdam,
                                            NumpyScheduleFreeSGD)
except ImportError:  # imported as tests.spec_db.schedule_free
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_schedule_free import (NumpyScheduleFreeAdamW,
                                                  NumpyScheduleFreeRAdam,
                                                  NumpyScheduleFreeSGD)


def _in_train_mode(cls):
    """The reference optimizer, in train mode (it refuses to step in eval
    mode, the mode it starts in)."""
    def make(params, **kwargs):
        optimizer = cls(params, **kwargs)
        optimizer.train()
        return optimizer

    make.__name__ = f"{cls.__name__}.train"
    return make


def slots(adaptive):
    def declared(kwargs, shape):
        return [("z", False)] + ([("exp_avg_sq", False)] if adaptive
                                 else [])
    return declared


def extra_variables(kwargs):
    """One state vector per param group: the reference's group doubles
    lr_max and weight_sum as three float32 limbs each, the mode and the
    step's scalars (keras_optzoo.optimizers.schedule_free.STATE)."""
    return [(f"schedule_free_{g}", (13,))
            for g in range(1 + len(kwargs.get("param_groups") or ()))]


def _common_errors(beta):
    return [
        ErrorCase({beta: 0.0}, ValueError,
                  rf"Argument `{beta}` must be in \(0, 1\)\. "
                  rf"Received: {beta}=0"),
        ErrorCase({beta: 1.0}, ValueError,
                  rf"Argument `{beta}` must be in \(0, 1\)\. "
                  rf"Received: {beta}=1"),
        ErrorCase({"r": -1.0}, ValueError,
                  r"Argument `r` must be >= 0\. Received: r=-1"),
        ErrorCase({"r": "2"}, TypeError, r"Argument `r` must be a real"),
        ErrorCase({"weight_lr_power": -2.0}, ValueError,
                  r"Argument `weight_lr_power` must be >= 0\. "
                  r"Received: weight_lr_power=-2"),
    ]


_WARMUP_ERRORS = [
    ErrorCase({"warmup_steps": -1}, ValueError,
              r"Argument `warmup_steps` must be >= 0\. "
              r"Received: warmup_steps=-1"),
    ErrorCase({"warmup_steps": 2.5}, TypeError,
              r"Argument `warmup_steps` must be an integer\. "
              r"Received: warmup_steps=2\.5"),
]
_ADAM_ERRORS = [
    ErrorCase({"beta_2": 1.0}, ValueError,
              r"Argument `beta_2` must be in \[0, 1\)\. Received: beta_2=1"),
    ErrorCase({"epsilon": -1e-8}, ValueError,
              r"Argument `epsilon` must be >= 0\. Received: epsilon=-1e-08"),
]

SPECS = [
    OptimizerSpec(
        name="schedulefree_adamw",
        slots=slots(True),
        extra_variables=extra_variables,
        cls=oz.ScheduleFreeAdamW,
        torch_cls=schedulefree.AdamWScheduleFree,
        make_reference=_in_train_mode(schedulefree.AdamWScheduleFree),
        reference_kwargs=converter(betas=(0.9, 0.999)),
        reference_name="schedulefree 1.4.1 AdamWScheduleFree",
        numpy_reference=NumpyScheduleFreeAdamW,
        capabilities=frozenset({"weight_decay"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            # the learning rate ramps up for 10 steps: weights grow with
            # lr_max**2, so ckp1 >= 0.5 (torch.lerp's other branch) early
            Config("warmup", {"learning_rate": 0.02, "warmup_steps": 10}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("r_power", {"learning_rate": 0.01, "r": 1.5,
                               "weight_lr_power": 0.5, "warmup_steps": 3}),
            # beta_1 = 0.5: eval's lerp weight 1 - 1/beta = -1 (the other
            # branch of torch.lerp)
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=_common_errors("beta_1") + _WARMUP_ERRORS + _ADAM_ERRORS,
    ),
    OptimizerSpec(
        name="schedulefree_sgd",
        slots=slots(False),
        extra_variables=extra_variables,
        cls=oz.ScheduleFreeSGD,
        torch_cls=schedulefree.SGDScheduleFree,
        make_reference=_in_train_mode(schedulefree.SGDScheduleFree),
        reference_kwargs=converter(),
        reference_name="schedulefree 1.4.1 SGDScheduleFree",
        numpy_reference=NumpyScheduleFreeSGD,
        capabilities=frozenset({"weight_decay"}),
        configs=[
            Config("default", {"learning_rate": 0.05}),
            Config("warmup_wd", {"learning_rate": 0.1, "warmup_steps": 5,
                                 "weight_decay": 0.05}),
            Config("momentum", {"learning_rate": 0.05, "momentum": 0.4}),
            Config("r", {"learning_rate": 0.05, "r": 2.0,
                         "weight_lr_power": 0.0}),
            Config("tiny", {"learning_rate": 0.05}, grad_scale=1e-6,
                   param_scale=1e-6),
        ],
        errors=_common_errors("momentum") + _WARMUP_ERRORS,
    ),
    OptimizerSpec(
        name="schedulefree_radam",
        slots=slots(True),
        extra_variables=extra_variables,
        cls=oz.ScheduleFreeRAdam,
        torch_cls=schedulefree.RAdamScheduleFree,
        make_reference=_in_train_mode(schedulefree.RAdamScheduleFree),
        reference_kwargs=converter(betas=(0.9, 0.999)),
        reference_name="schedulefree 1.4.1 RAdamScheduleFree",
        numpy_reference=NumpyScheduleFreeRAdam,
        capabilities=frozenset({"weight_decay"}),
        # the generic group plus silent_sgd_phase=False: with the default
        # silent phase nothing moves in the first 4 steps, the length of
        # the groups' configuration check
        groups=[{"learning_rate": 0.02, "weight_decay": 0.05, "beta_1": 0.6,
                 "silent_sgd_phase": False}],
        configs=[
            # steps 1-4 silent (no movement), rectified from step 5.
            # param_scale: the movement is small (the rectified rate starts
            # near 0), so float32's resolution of θ is kept below the
            # tolerance (the reference itself is 5e-5 from float64 at
            # scale 1)
            Config("default", {"learning_rate": 0.01}, param_scale=0.1),
            Config("sgd_phase", {"learning_rate": 0.01,
                                 "silent_sgd_phase": False}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1},
                   param_scale=0.1),
            # rho_inf = 19: rectified from step 3, eps visible
            Config("betas_eps_r", {"learning_rate": 0.01, "beta_1": 0.6,
                                   "beta_2": 0.9, "epsilon": 1e-3,
                                   "r": 1.0}),
            # rho_inf = 3 <= 4: never rectified, un-normalised SGD steps
            Config("never_rectified", {"learning_rate": 0.01,
                                       "beta_2": 0.5,
                                       "silent_sgd_phase": False}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6,
                   param_scale=0.1),
        ],
        errors=_common_errors("beta_1") + _ADAM_ERRORS + [
            ErrorCase({"silent_sgd_phase": 1}, TypeError,
                      r"Argument `silent_sgd_phase` must be True or False"),
            ErrorCase({"warmup_steps": 10}, ValueError,
                      r"Argument\(s\) not recognized: "
                      r"\{'warmup_steps': 10\}"),
        ],
    ),
]
