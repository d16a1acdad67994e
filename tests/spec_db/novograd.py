"""Spec of NovoGrad: timm 1.0.31's ``timm.optim.nvnovograd.NvNovoGrad``
(NVIDIA's) is the oracle."""

import keras_optzoo as oz

try:
    from specs import AMSGRAD_ERROR, BETA_ERRORS, Config, ErrorCase, \
        OptimizerSpec, converter
    from reference.external import timm_optim
    from reference.np_novograd import NumpyNovoGrad
except ImportError:  # imported as tests.spec_db.novograd
    from tests.specs import AMSGRAD_ERROR, BETA_ERRORS, Config, ErrorCase, \
        OptimizerSpec, converter
    from tests.reference.external import timm_optim
    from tests.reference.np_novograd import NumpyNovoGrad

#: Keras-spelled arguments -> timm's
reference_kwargs = converter(
    renames={"decoupled_weight_decay": "decoupled_decay"}, betas=(0.95, 0.98))


SPECS = [
    OptimizerSpec(
        name="novograd",
        slots=lambda kw, shape: (
            [("exp_avg", False), ("exp_avg_sq", True)]
            + ([("max_exp_avg_sq", True)] if kw.get("amsgrad") else [])),
        cls=oz.NovoGrad,
        torch_cls=timm_optim("nvnovograd").NvNovoGrad,
        reference_kwargs=reference_kwargs,
        reference_name="timm 1.0.31 NvNovoGrad",
        numpy_reference=NumpyNovoGrad,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay",
                               "cross_element"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("amsgrad_averaging", {"learning_rate": 0.2,
                                         "amsgrad": True,
                                         "grad_averaging": True}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("wd_decoupled", {"learning_rate": 0.01,
                                    "weight_decay": 0.1,
                                    "decoupled_weight_decay": True}),
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=BETA_ERRORS + [
            AMSGRAD_ERROR,
            ErrorCase({"grad_averaging": "yes"}, TypeError,
                      r"Argument `grad_averaging` must be True or False"),
            ErrorCase({"decoupled_weight_decay": 0}, TypeError,
                      r"Argument `decoupled_weight_decay` must be True or "
                      r"False"),
        ],
    ),
]
