"""ADOPT against pytorch-optimizer 4.1.0's ADOPT."""

import math

from pytorch_optimizer import ADOPT as _ADOPT

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_adopt import NumpyADOPT
except ImportError:  # imported as tests.spec_db.adopt
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_adopt import NumpyADOPT


def _clip_lambda(exponent):
    if exponent is None:
        return None
    return lambda step: math.pow(step, exponent)


_convert = converter(
    renames={"decoupled_weight_decay": "weight_decouple",
             "caution": "cautious"},
    betas=(0.9, 0.9999))


def reference_kwargs(kwargs):
    out = _convert(kwargs)
    if "clip_exponent" in out:
        out["clip_lambda"] = _clip_lambda(out.pop("clip_exponent"))
    return out


SPECS = [
    OptimizerSpec(
        name="adopt",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False)],
        cls=oz.ADOPT,
        torch_cls=_ADOPT,
        reference_kwargs=reference_kwargs,
        reference_name="pytorch-optimizer 4.1.0 ADOPT",
        numpy_reference=NumpyADOPT,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay",
                                "maximize"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("wd_noclip", {"learning_rate": 0.01, "weight_decay": 0.1,
                                 "clip_exponent": None}),
            # float32 rounds the factor (1 - lr*wd) of every step, as torch
            # does: smaller parameters keep that below the tolerance
            # against the float64 reference
            Config("wd_decoupled_maximize", {
                "learning_rate": 0.02, "weight_decay": 0.1,
                "decoupled_weight_decay": True, "maximize": True},
                param_scale=0.3),
            Config("fixed_decay_betas", {
                "learning_rate": 0.01, "weight_decay": 0.01,
                "decoupled_weight_decay": True, "fixed_decay": True,
                "beta_1": 0.5, "beta_2": 0.9}),
            Config("caution_clip", {"learning_rate": 0.01, "caution": True,
                                    "clip_exponent": 0.1}),
            Config("tiny", {"learning_rate": 0.01, "epsilon": 1e-5},
                   grad_scale=1e-6, param_scale=0.1),
        ],
        errors=[
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"beta_2": 1.0}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)\. "
                      r"Received: beta_2=1"),
            ErrorCase({"epsilon": -1e-6}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1e-06"),
            ErrorCase({"clip_exponent": -0.25}, ValueError,
                      r"Argument `clip_exponent` must be >= 0\. "
                      r"Received: clip_exponent=-0\.25"),
            ErrorCase({"fixed_decay": True}, ValueError,
                      r"Argument `fixed_decay` needs "
                      r"`decoupled_weight_decay=True`"),
            ErrorCase({"fixed_decay": 1}, TypeError,
                      r"Argument `fixed_decay` must be True or False"),
            ErrorCase({"caution": None}, TypeError,
                      r"Argument `caution` must be True or False"),
        ],
    ),
]
