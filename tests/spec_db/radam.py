"""Spec of RAdam (torch.optim.RAdam)."""

import torch

import keras_optzoo as oz

try:
    from specs import ALL, BETA_ERRORS, Config, ErrorCase, OptimizerSpec
    from reference.np_radam import NumpyRAdam
except ImportError:  # imported as tests.spec_db.radam
    from tests.specs import ALL, BETA_ERRORS, Config, ErrorCase, OptimizerSpec
    from tests.reference.np_radam import NumpyRAdam

SPECS = [
    OptimizerSpec(
        name="radam",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False)],
        cls=oz.RAdam,
        torch_cls=torch.optim.RAdam,
        reference_name="torch.optim 2.13 RAdam",
        numpy_reference=NumpyRAdam,
        capabilities=ALL | {"decoupled_weight_decay"},
        configs=[
            # steps 1-5 un-adapted (rho_t <= 5), rectified from step 6 on
            Config("default", {"learning_rate": 0.01}),
            # param_scale: float32's resolution of θ stays below the
            # tolerance (torch itself is 1.5e-5 from float64 at scale 1)
            Config("wd_coupled", {"learning_rate": 0.01,
                                  "weight_decay": 0.1}, param_scale=0.1),
            Config("wd_decoupled_maximize", {
                "learning_rate": 0.01, "weight_decay": 0.1,
                "decoupled_weight_decay": True, "maximize": True},
                param_scale=0.1),
            # rho_inf = 19: rectified from step 6, eps visible
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            # rho_inf = 3 <= 5: never rectified
            Config("never_rectified", {"learning_rate": 0.01,
                                       "beta_2": 0.5}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6,
                   param_scale=0.01),
        ],
        errors=BETA_ERRORS + [
            ErrorCase({"decoupled_weight_decay": "no"}, TypeError,
                      r"Argument `decoupled_weight_decay` must be True or "
                      r"False"),
        ],
    ),
]
