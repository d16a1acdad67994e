"""AdaBelief against the authors' adabelief-pytorch 0.2.1."""

import contextlib
import io

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_adabelief import NumpyAdaBelief
except ImportError:  # imported as tests.spec_db.adabelief
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_adabelief import NumpyAdaBelief

from adabelief_pytorch import AdaBelief as _AdaBelief


def make_adabelief(params, **kwargs):
    """The reference, without the banner and the notices it prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return _AdaBelief(params, print_change_log=False, **kwargs)


reference_kwargs = converter(
    renames={"decoupled_weight_decay": "weight_decouple"}, betas=(0.9, 0.999))


SPECS = [
    OptimizerSpec(
        name="adabelief",
        slots=lambda kw, shape: (
            [("exp_avg", False), ("exp_avg_var", False)]
            + ([("max_exp_avg_var", False)] if kw.get("amsgrad") else [])),
        cls=oz.AdaBelief,
        torch_cls=_AdaBelief,
        make_reference=make_adabelief,
        reference_kwargs=reference_kwargs,
        reference_name="adabelief-pytorch 0.2.1 AdaBelief",
        numpy_reference=NumpyAdaBelief,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay"}),
        configs=[
            # rectified, with the SGD steps while rho_t < 5
            Config("default", {"learning_rate": 0.01}),
            Config("plain_amsgrad_wd", {"learning_rate": 0.01,
                                        "rectify": False, "amsgrad": True,
                                        "weight_decay": 0.1}),
            Config("coupled_amsgrad", {
                "learning_rate": 0.05, "decoupled_weight_decay": False,
                "weight_decay": 0.1, "amsgrad": True}),
            Config("fixed_decay_nosgd_betas", {"learning_rate": 0.01,
                                         "weight_decay": 0.01,
                                         "fixed_decay": True, "beta_1": 0.8,
                                         "beta_2": 0.99,
                                         "degenerated_to_sgd": False}),
            Config("eps_plain", {"learning_rate": 0.01, "epsilon": 1e-8,
                                 "rectify": False}),
            Config("tiny", {"learning_rate": 0.01, "epsilon": 1e-13},
                   grad_scale=1e-6, param_scale=1e-3),
        ],
        errors=[
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"beta_2": 1.0}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)\. "
                      r"Received: beta_2=1"),
            ErrorCase({"epsilon": -1e-16}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1e-16"),
            ErrorCase({"amsgrad": 1}, TypeError,
                      r"Argument `amsgrad` must be True or False"),
            ErrorCase({"fixed_decay": "no"}, TypeError,
                      r"Argument `fixed_decay` must be True or False"),
            ErrorCase({"rectify": None}, TypeError,
                      r"Argument `rectify` must be True or False"),
            ErrorCase({"degenerated_to_sgd": 0}, TypeError,
                      r"Argument `degenerated_to_sgd` must be True or "
                      r"False"),
            ErrorCase({"decoupled_weight_decay": "yes"}, TypeError,
                      r"Argument `decoupled_weight_decay` must be True or "
                      r"False"),
        ],
    ),
]
