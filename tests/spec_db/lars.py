"""Spec of Lars: timm 1.0.31's ``timm.optim.lars.Lars`` is the oracle."""

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.external import timm_optim
    from reference.np_lars import NumpyLars
except ImportError:  # imported as tests.spec_db.lars
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.external import timm_optim
    from tests.reference.np_lars import NumpyLars

#: Keras-spelled arguments -> timm's (single-tensor path pinned)
reference_kwargs = converter(renames={"trust_coefficient": "trust_coeff"},
                             defaults={"foreach": False})


SPECS = [
    OptimizerSpec(
        name="lars",
        slots=lambda kw, shape: (
            [("momentum_buffer", False)] if kw.get("momentum") else []),
        cls=oz.Lars,
        torch_cls=timm_optim("lars").Lars,
        reference_kwargs=reference_kwargs,
        reference_name="timm 1.0.31 Lars",
        numpy_reference=NumpyLars,
        capabilities=frozenset({"weight_decay", "cross_element"}),
        configs=[
            Config("momentum_wd", {"learning_rate": 1.0, "momentum": 0.9,
                                   "weight_decay": 0.01}),
            Config("always_adapt_nesterov", {
                "learning_rate": 1.0, "momentum": 0.9, "nesterov": True,
                "always_adapt": True, "trust_coefficient": 0.02}),
            # trust coefficient 1: r/lr crosses 1, so LARC's clip is active
            Config("trust_clip_dampening", {
                "learning_rate": 0.5, "momentum": 0.5, "dampening": 0.3,
                "weight_decay": 0.1, "trust_clip": True,
                "trust_coefficient": 1.0, "epsilon": 1e-3}),
            # no weight decay: plain SGD
            Config("plain", {"learning_rate": 0.1}),
            Config("tiny", {"learning_rate": 1.0, "weight_decay": 0.01},
                   grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"momentum": -0.5}, ValueError,
                      r"Argument `momentum` must be >= 0\. "
                      r"Received: momentum=-0\.5"),
            ErrorCase({"dampening": 2.0}, ValueError,
                      r"Argument `dampening` must be in \[0, 1\]\. "
                      r"Received: dampening=2"),
            ErrorCase({"nesterov": True}, ValueError,
                      r"`nesterov=True` requires `momentum` > 0 and "
                      r"`dampening` = 0\. Received: momentum=0\.0"),
            ErrorCase({"trust_coefficient": -1.0}, ValueError,
                      r"Argument `trust_coefficient` must be >= 0\. "
                      r"Received: trust_coefficient=-1"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1"),
            ErrorCase({"trust_clip": 1}, TypeError,
                      r"Argument `trust_clip` must be True or False"),
            ErrorCase({"always_adapt": "no"}, TypeError,
                      r"Argument `always_adapt` must be True or False"),
        ],
    ),
]
