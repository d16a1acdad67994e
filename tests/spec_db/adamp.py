"""Specs of AdamP and SGDP: timm 1.0.31's ``timm.optim.adamp.AdamP`` and
``timm.optim.sgdp.SGDP`` (clovaai's code) are the oracles."""

import keras_optzoo as oz

try:
    from specs import BETA_ERRORS, Config, converter, ErrorCase, OptimizerSpec
    from reference.external import timm_optim
    from reference.np_adamp import NumpyAdamP, NumpySGDP
except ImportError:  # imported as tests.spec_db.adamp
    from tests.specs import (BETA_ERRORS, Config, converter, ErrorCase,
                             OptimizerSpec)
    from tests.reference.external import timm_optim
    from tests.reference.np_adamp import NumpyAdamP, NumpySGDP

#: Keras-spelled arguments -> timm AdamP's
adamp_kwargs = converter(betas=(0.9, 0.999))
_sgdp_kwargs = converter()


def sgdp_kwargs(kwargs):
    """Keras-spelled arguments -> timm SGDP's (its lr has no default)."""
    return {"lr": oz.SGDP().get_config()["learning_rate"],
            **_sgdp_kwargs(kwargs)}


PROJECTION_ERRORS = [
    ErrorCase({"delta": -0.1}, ValueError,
              r"Argument `delta` must be >= 0\. Received: delta=-0\.1"),
    ErrorCase({"wd_ratio": -1}, ValueError,
              r"Argument `wd_ratio` must be >= 0\. Received: wd_ratio=-1"),
    ErrorCase({"epsilon": -1.0}, ValueError,
              r"Argument `epsilon` must be >= 0\. Received: epsilon=-1"),
    ErrorCase({"nesterov": 1}, TypeError,
              r"Argument `nesterov` must be True or False"),
    ErrorCase({"caution": "yes"}, TypeError,
              r"Argument `caution` must be True or False"),
]

SPECS = [
    OptimizerSpec(
        name="adamp",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False)],
        cls=oz.AdamP,
        torch_cls=timm_optim("adamp").AdamP,
        reference_kwargs=adamp_kwargs,
        reference_name="timm 1.0.31 AdamP",
        numpy_reference=NumpyAdamP,
        capabilities=frozenset({"weight_decay", "cross_element"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            # delta 1: the projection is taken on most steps (by channel
            # or by layer), not only on the rare nearly orthogonal ones
            Config("projection_wd", {"learning_rate": 0.01, "delta": 1.0,
                                     "wd_ratio": 0.5, "weight_decay": 0.1}),
            Config("nesterov_caution", {"learning_rate": 0.01,
                                        "nesterov": True, "caution": True,
                                        "delta": 1.0, "weight_decay": 0.1}),
            Config("caution", {"learning_rate": 0.01, "caution": True,
                               "delta": 0.5}),
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=BETA_ERRORS + PROJECTION_ERRORS,
    ),
    OptimizerSpec(
        name="sgdp",
        slots=lambda kw, shape: [("momentum", False)],  # always, as timm
        cls=oz.SGDP,
        torch_cls=timm_optim("sgdp").SGDP,
        reference_kwargs=sgdp_kwargs,
        reference_name="timm 1.0.31 SGDP",
        numpy_reference=NumpySGDP,
        capabilities=frozenset({"weight_decay", "cross_element"}),
        configs=[
            Config("momentum", {"learning_rate": 0.05, "momentum": 0.9}),
            Config("projection_wd", {"learning_rate": 0.05, "momentum": 0.9,
                                     "delta": 1.0, "weight_decay": 0.1,
                                     "wd_ratio": 0.5}),
            Config("nesterov_caution", {"learning_rate": 0.05,
                                        "momentum": 0.9, "nesterov": True,
                                        "caution": True, "delta": 1.0,
                                        "weight_decay": 0.1}),
            Config("dampening_caution", {"learning_rate": 0.05,
                                         "momentum": 0.5, "dampening": 0.3,
                                         "caution": True}),
            Config("plain", {"learning_rate": 0.05}),
            # tiny weights too: eps in the projection's norms shows
            Config("tiny", {"learning_rate": 0.05, "momentum": 0.9,
                            "delta": 1.0}, grad_scale=1e-6,
                   param_scale=1e-6),
        ],
        errors=PROJECTION_ERRORS + [
            ErrorCase({"momentum": 1.0}, ValueError,
                      r"Argument `momentum` must be in \[0, 1\)\. "
                      r"Received: momentum=1"),
            ErrorCase({"dampening": 2.0}, ValueError,
                      r"Argument `dampening` must be in \[0, 1\]\. "
                      r"Received: dampening=2"),
        ],
    ),
]
