"""LaProp against timm 1.0.31's LaProp."""

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_laprop import NumpyLaProp
    from reference.external import timm_optim
except ImportError:  # imported as tests.spec_db.laprop
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_laprop import NumpyLaProp
    from tests.reference.external import timm_optim

_LaProp = timm_optim("laprop").LaProp


reference_kwargs = converter(betas=(0.9, 0.999))


SPECS = [
    OptimizerSpec(
        name="laprop",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False),
                                 ("exp_avg_lr_1", True)],
        cls=oz.LaProp,
        torch_cls=_LaProp,
        reference_kwargs=reference_kwargs,
        reference_name="timm 1.0.31 LaProp",
        numpy_reference=NumpyLaProp,
        capabilities=frozenset({"weight_decay"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            Config("caution_wd", {"learning_rate": 0.01, "caution": True,
                                  "weight_decay": 0.1}),
            Config("tiny", {"learning_rate": 0.01, "epsilon": 1e-7},
                   grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"beta_2": 1.0}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)\. "
                      r"Received: beta_2=1"),
            ErrorCase({"epsilon": -1e-15}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1e-15"),
            ErrorCase({"caution": "yes"}, TypeError,
                      r"Argument `caution` must be True or False"),
        ],
    ),
]
