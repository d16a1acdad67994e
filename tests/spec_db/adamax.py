"""Spec of Adamax (torch.optim.Adamax)."""

import torch

import keras_optzoo as oz

try:
    from specs import ALL, BETA_ERRORS, Config, OptimizerSpec
    from reference.np_adamax import NumpyAdamax
except ImportError:  # imported as tests.spec_db.adamax
    from tests.specs import ALL, BETA_ERRORS, Config, OptimizerSpec
    from tests.reference.np_adamax import NumpyAdamax

SPECS = [
    OptimizerSpec(
        name="adamax",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_inf", False)],
        cls=oz.Adamax,
        torch_cls=torch.optim.Adamax,
        reference_name="torch.optim 2.13 Adamax",
        numpy_reference=NumpyAdamax,
        capabilities=ALL,
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("maximize", {"learning_rate": 0.01, "maximize": True}),
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            # ε inside the maximum shows at gradients ≈ 1e-6
            # (small parameters keep float32's resolution of θ below the
            # tolerance: the steps are ≈ lr·m/u ≤ lr)
            Config("tiny", {"learning_rate": 0.01, "epsilon": 1e-6},
                   grad_scale=1e-6, param_scale=0.1),
        ],
        errors=BETA_ERRORS,
    ),
]
