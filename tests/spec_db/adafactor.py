"""Spec of Adafactor: torch.optim.Adafactor is the oracle."""

import torch

import keras_optzoo as oz

try:
    from specs import ALL, Config, converter, ErrorCase, OptimizerSpec
    from reference.np_adafactor import NumpyAdafactor
except ImportError:  # imported as tests.spec_db.adafactor
    from tests.specs import ALL, Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_adafactor import NumpyAdafactor


#: Keras-spelled arguments -> torch.optim.Adafactor's
reference_kwargs = converter(
    renames={"beta_2_decay": "beta2_decay", "clip_threshold": "d"},
    betas=(None, 1e-3), beta_prefix="epsilon_", betas_name="eps")


SPECS = [
    OptimizerSpec(
        name="adafactor",
        # torch's state: row_var (..., n, 1) and col_var (..., 1, m) for
        # 2+ dimensions, else a full variance
        slots=lambda kw, shape: (
            [("row_var", shape[:-1] + (1,)),
             ("col_var", shape[:-2] + (1, shape[-1]))]
            if len(shape) >= 2 else [("variance", False)]),
        cls=oz.Adafactor,
        torch_cls=torch.optim.Adafactor,
        reference_kwargs=reference_kwargs,
        reference_name="torch.optim 2.13 Adafactor",
        numpy_reference=NumpyAdafactor,
        capabilities=ALL | {"decoupled_weight_decay", "cross_element"},
        configs=[
            Config("default", {}),
            # lr > 1/sqrt(t) from step 2 on: rho_t switches to 1/sqrt(t);
            # clip_threshold 1.5 leaves some updates unclipped
            Config("decay_clip", {"learning_rate": 0.6, "beta_2_decay": -0.5,
                                  "clip_threshold": 1.5}),
            Config("wd", {"learning_rate": 0.05, "weight_decay": 0.5}),
            Config("maximize_eps", {"maximize": True, "epsilon_1": 1e-3,
                                    "epsilon_2": 0.5}),
            # g ~ 1e-6: g² ~ 1e-12 is above eps1² (1.4e-14); small params
            # make alpha = eps2·rho (the eps2 floor)
            Config("tiny", {}, grad_scale=1e-6, param_scale=1e-4),
        ],
        errors=[
            ErrorCase({"beta_2_decay": 0.5}, ValueError,
                      r"Argument `beta_2_decay` must be <= 0\. "
                      r"Received: beta_2_decay=0\.5"),
            ErrorCase({"epsilon_1": -1.0}, ValueError,
                      r"Argument `epsilon_1` must be >= 0\. "
                      r"Received: epsilon_1=-1"),
            ErrorCase({"epsilon_1": "auto"}, TypeError,
                      r"Argument `epsilon_1` must be a real number"),
            ErrorCase({"epsilon_2": -1e-3}, ValueError,
                      r"Argument `epsilon_2` must be >= 0"),
            ErrorCase({"clip_threshold": 0.5}, ValueError,
                      r"Argument `clip_threshold` must be >= 1\. "
                      r"Received: clip_threshold=0\.5"),
        ],
    ),
]
