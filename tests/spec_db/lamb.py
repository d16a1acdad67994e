"""Spec of Lamb: timm 1.0.31's ``timm.optim.lamb.Lamb`` is the oracle."""

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.external import timm_optim
    from reference.np_lamb import NumpyLamb
except ImportError:  # imported as tests.spec_db.lamb
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.external import timm_optim
    from tests.reference.np_lamb import NumpyLamb

#: Keras-spelled arguments -> timm's (single-tensor path pinned)
reference_kwargs = converter(
    renames={"decoupled_weight_decay": "decoupled_decay"}, betas=(0.9, 0.999),
    defaults={"foreach": False})


def _bool_error(name):
    return ErrorCase({name: 1}, TypeError,
                     rf"Argument `{name}` must be True or False")


SPECS = [
    OptimizerSpec(
        name="lamb",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False)],
        cls=oz.Lamb,
        torch_cls=timm_optim("lamb").Lamb,
        reference_kwargs=reference_kwargs,
        reference_name="timm 1.0.31 Lamb",
        numpy_reference=NumpyLamb,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay",
                               "cross_element"}),
        configs=[
            # defaults: wd 0.01, global clip at 1.0 (active: the gradient
            # norm is ~5), trust ratio on every variable
            Config("default", {"learning_rate": 0.01}),
            Config("no_clip_no_bias_correction", {
                "learning_rate": 0.01, "max_grad_norm": None,
                "bias_correction": False, "grad_averaging": False,
                "weight_decay": 0.1}),
            Config("decoupled_trust_clip", {
                "learning_rate": 0.01, "weight_decay": 0.1,
                "decoupled_weight_decay": True, "trust_clip": True,
                "max_grad_norm": 3.0}),
            Config("caution_always_adapt", {
                "learning_rate": 0.01, "weight_decay": 0.0,
                "always_adapt": True, "caution": True, "beta_1": 0.5,
                "beta_2": 0.9, "epsilon": 1e-3}),
            Config("caution_wd", {"learning_rate": 0.01, "caution": True,
                                  "weight_decay": 0.05}),
            # no weight decay: no trust ratio, ε placement shows
            Config("tiny", {"learning_rate": 0.01, "weight_decay": 0.0},
                   grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"beta_1": 1.0}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1"),
            ErrorCase({"beta_2": -0.1}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)\. "
                      r"Received: beta_2=-0\.1"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1"),
            ErrorCase({"max_grad_norm": 0.0}, ValueError,
                      r"Argument `max_grad_norm` must be > 0\. "
                      r"Received: max_grad_norm=0"),
            ErrorCase({"max_grad_norm": "1"}, TypeError,
                      r"Argument `max_grad_norm` must be a real number"),
        ] + [_bool_error(n) for n in (
            "bias_correction", "grad_averaging", "trust_clip",
            "always_adapt", "caution", "decoupled_weight_decay")],
    ),
]
