"""Adan against timm 1.0.31's timm.optim.adan.Adan (single-tensor path)."""

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.external import timm_optim
    from reference.np_adan import NumpyAdan
except ImportError:  # imported as tests.spec_db.adan
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.external import timm_optim
    from tests.reference.np_adan import NumpyAdan

_Adan = timm_optim("adan").Adan


def make_adan(params, **kwargs):
    return _Adan(params, foreach=False, **kwargs)


reference_kwargs = converter(betas=(0.98, 0.92, 0.99))


SPECS = [
    OptimizerSpec(
        name="adan",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False),
                                 ("exp_avg_diff", False),
                                 ("neg_pre_grad", False)],
        cls=oz.Adan,
        torch_cls=_Adan,
        make_reference=make_adan,
        reference_kwargs=reference_kwargs,
        reference_name="timm 1.0.31 Adan",
        numpy_reference=NumpyAdan,
        capabilities=frozenset({"weight_decay"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            # float32 rounds the per-step decay factor; a longer path
            # keeps that below the tolerance against the float64 reference
            Config("wd_prox", {"learning_rate": 0.05, "weight_decay": 0.1},
                   param_scale=0.5),
            Config("wd_no_prox", {"learning_rate": 0.05, "weight_decay": 0.1,
                                  "no_prox": True}, param_scale=0.5),
            Config("caution_betas", {"learning_rate": 0.01, "caution": True,
                                     "beta_1": 0.9, "beta_2": 0.8,
                                     "beta_3": 0.999, "epsilon": 1e-6}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"beta_2": -0.1}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)\. "
                      r"Received: beta_2=-0\.1"),
            ErrorCase({"beta_3": 1.0}, ValueError,
                      r"Argument `beta_3` must be in \[0, 1\)\. "
                      r"Received: beta_3=1"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1"),
            ErrorCase({"no_prox": 1}, TypeError,
                      r"Argument `no_prox` must be True or False"),
            ErrorCase({"caution": "yes"}, TypeError,
                      r"Argument `caution` must be True or False"),
        ],
    ),
]
