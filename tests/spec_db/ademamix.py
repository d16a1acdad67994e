"""AdEMAMix against pytorch-optimizer 4.1.0's AdEMAMix."""

from pytorch_optimizer import AdEMAMix as _AdEMAMix

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_ademamix import NumpyAdEMAMix
except ImportError:  # imported as tests.spec_db.ademamix
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_ademamix import NumpyAdEMAMix

reference_kwargs = converter(
    renames={"decoupled_weight_decay": "weight_decouple",
             "caution": "cautious"},
    betas=(0.9, 0.999, 0.9999))


SPECS = [
    OptimizerSpec(
        name="ademamix",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False),
                                 ("exp_avg_slow", False)],
        cls=oz.AdEMAMix,
        torch_cls=_AdEMAMix,
        reference_kwargs=reference_kwargs,
        reference_name="pytorch-optimizer 4.1.0 AdEMAMix",
        numpy_reference=NumpyAdEMAMix,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay",
                                "maximize"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("warmup", {"learning_rate": 0.01, "t_alpha_beta3": 40,
                              "alpha": 3.0, "beta_3": 0.999}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("fixed_decay_maximize", {
                "learning_rate": 0.01, "weight_decay": 0.01,
                "decoupled_weight_decay": True, "fixed_decay": True,
                "maximize": True}),
            Config("caution_betas", {"learning_rate": 0.01, "caution": True,
                                     "beta_1": 0.8, "beta_2": 0.99}),
            Config("tiny", {"learning_rate": 0.01, "epsilon": 1e-6},
                   grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"beta_3": 1.0}, ValueError,
                      r"Argument `beta_3` must be in \[0, 1\)\. "
                      r"Received: beta_3=1"),
            ErrorCase({"alpha": -1}, ValueError,
                      r"Argument `alpha` must be >= 0\. Received: alpha=-1"),
            ErrorCase({"t_alpha_beta3": 0}, ValueError,
                      r"Argument `t_alpha_beta3` must be > 0\. "
                      r"Received: t_alpha_beta3=0"),
            ErrorCase({"beta_1": 0.0, "t_alpha_beta3": 10}, ValueError,
                      r"Argument `beta_1` must be > 0 when `t_alpha_beta3`"),
            ErrorCase({"fixed_decay": True}, ValueError,
                      r"Argument `fixed_decay` needs "
                      r"`decoupled_weight_decay=True`"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1"),
        ],
    ),
]
