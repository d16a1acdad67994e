"""MADGRAD against timm 1.0.31's MADGRAD (facebookresearch's code)."""

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_madgrad import NumpyMADGRAD
    from reference.external import timm_optim
except ImportError:  # imported as tests.spec_db.madgrad
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_madgrad import NumpyMADGRAD
    from tests.reference.external import timm_optim

_MADGRAD = timm_optim("madgrad").MADGRAD

reference_kwargs = converter(
    renames={"decoupled_weight_decay": "decoupled_decay"})


SPECS = [
    OptimizerSpec(
        name="madgrad",
        slots=lambda kw, shape: (
            [("grad_sum_sq", False), ("s", False)]
            + ([("x0", False)] if kw.get("momentum", 0.9) != 0 else [])),
        cls=oz.MADGRAD,
        torch_cls=_MADGRAD,
        reference_kwargs=reference_kwargs,
        reference_name="timm 1.0.31 MADGRAD",
        numpy_reference=NumpyMADGRAD,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("wd_decoupled", {"learning_rate": 0.01,
                                    "weight_decay": 0.1,
                                    "decoupled_weight_decay": True,
                                    "momentum": 0.5}),
            Config("no_momentum_wd", {"learning_rate": 0.01,
                                      "momentum": 0.0, "weight_decay": 0.1}),
            Config("tiny", {"learning_rate": 0.01, "epsilon": 1e-4},
                   grad_scale=1e-6, param_scale=0.01),
        ],
        errors=[
            ErrorCase({"momentum": 1.0}, ValueError,
                      r"Argument `momentum` must be in \[0, 1\)\. "
                      r"Received: momentum=1"),
            ErrorCase({"epsilon": -1e-6}, ValueError,
                      r"Argument `epsilon` must be > 0\. "
                      r"Received: epsilon=-1e-06"),
            # 0 can only give NaN (0/0 at the first step)
            ErrorCase({"epsilon": 0.0}, ValueError,
                      r"Argument `epsilon` must be > 0\. "
                      r"Received: epsilon=0"),
            ErrorCase({"decoupled_weight_decay": "no"}, TypeError,
                      r"Argument `decoupled_weight_decay` must be True or "
                      r"False"),
        ],
    ),
]
