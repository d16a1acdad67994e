"""Spec of ASGD (torch.optim.ASGD)."""

import torch

import keras_optzoo as oz

try:
    from specs import ALL, Config, ErrorCase, OptimizerSpec
    from reference.np_asgd import NumpyASGD
except ImportError:  # imported as tests.spec_db.asgd
    from tests.specs import ALL, Config, ErrorCase, OptimizerSpec
    from tests.reference.np_asgd import NumpyASGD

SPECS = [
    OptimizerSpec(
        name="asgd",
        slots=lambda kw, shape: [("eta", True), ("mu", True), ("ax", False)],
        cls=oz.ASGD,
        torch_cls=torch.optim.ASGD,
        reference_name="torch.optim 2.13 ASGD",
        numpy_reference=NumpyASGD,
        capabilities=ALL,
        configs=[
            Config("default", {"learning_rate": 0.05}),
            # averaging from step 11 (mu < 1), a fast eta decay
            Config("averaging", {"learning_rate": 0.05, "lambd": 0.05,
                                 "alpha": 0.5, "t0": 10.0}),
            Config("wd", {"learning_rate": 0.05, "weight_decay": 0.1,
                          "t0": 20.0}),
            Config("maximize", {"learning_rate": 0.05, "maximize": True,
                                "lambd": 0.01}),
            Config("tiny", {"learning_rate": 0.05}, grad_scale=1e-6,
                   param_scale=1e-6),
        ],
        errors=[
            ErrorCase({"lambd": -1e-4}, ValueError,
                      r"Argument `lambd` must be >= 0\. "
                      r"Received: lambd=-0\.0001"),
            ErrorCase({"alpha": -0.5}, ValueError,
                      r"Argument `alpha` must be >= 0\. "
                      r"Received: alpha=-0\.5"),
            ErrorCase({"t0": -1}, ValueError,
                      r"Argument `t0` must be >= 0\. Received: t0=-1"),
            ErrorCase({"t0": "1e6"}, TypeError,
                      r"Argument `t0` must be a real number"),
        ],
    ),
]
