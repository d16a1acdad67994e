"""Spec of HFAdafactor: transformers 5.24.0's
`transformers.optimization.Adafactor` is the oracle."""

from transformers.optimization import Adafactor

import keras_optzoo as oz

try:
    from specs import Config, ErrorCase, OptimizerSpec
    from reference.np_hf_adafactor import NumpyHFAdafactor
except ImportError:  # imported as tests.spec_db.hf_adafactor
    from tests.specs import Config, ErrorCase, OptimizerSpec
    from tests.reference.np_hf_adafactor import NumpyHFAdafactor


def reference_kwargs(kwargs):
    """Keras-spelled arguments -> transformers' (`eps` pair, `beta1`)."""
    names = {"learning_rate": "lr", "beta_1": "beta1"}
    out = {names.get(k, k): v for k, v in kwargs.items()
           if k not in ("epsilon_1", "epsilon_2")}
    out["eps"] = (kwargs.get("epsilon_1", 1e-30),
                  kwargs.get("epsilon_2", 1e-3))
    return out


def _slots(kwargs, shape):
    # transformers' state (its "RMS" entry, rewritten before it is read
    # each step, is not kept)
    first = [] if kwargs.get("beta_1") is None else [("exp_avg", False)]
    if len(shape) >= 2:
        return first + [("exp_avg_sq_row", shape[:-1]),
                        ("exp_avg_sq_col", shape[:-2] + shape[-1:])]
    return first + [("exp_avg_sq", False)]


_MANUAL = {"relative_step": False, "scale_parameter": False}

SPECS = [
    OptimizerSpec(
        name="hfadafactor",
        slots=_slots,
        cls=oz.HFAdafactor,
        torch_cls=Adafactor,
        reference_kwargs=reference_kwargs,
        reference_name="transformers 5.24.0 Adafactor",
        numpy_reference=NumpyHFAdafactor,
        capabilities=frozenset({"weight_decay", "cross_element"}),
        external_rate={"learning_rate": 0.01, **_MANUAL},
        configs=[
            # first: an external rate, changed mid-run, for the generic
            # tests that schedule or set one (param groups, resume)
            Config("manual", {"learning_rate": 0.01, **_MANUAL}),
            # the default: relative step 1e-2 scaled by the parameter RMS
            Config("default", {}),
            Config("beta_1", {"beta_1": 0.9}),
            # an external rate with the parameter scale
            Config("manual_scaled_wd", {"learning_rate": 0.05,
                                        "relative_step": False,
                                        "weight_decay": 0.5,
                                        "beta_1": 0.5}),
            # rho = 1e-6 t: a short path, so small parameters keep
            # float32's resolution below the tolerance (unscaled: the
            # parameter scale would shrink the path with them)
            Config("warmup", {"warmup_init": True, "scale_parameter": False},
                   param_scale=1e-3),
            Config("warmup_beta_1_wd", {"warmup_init": True,
                                        "scale_parameter": False,
                                        "beta_1": 0.5, "weight_decay": 0.5},
                   param_scale=1e-3),
            Config("decay_clip_eps", {"decay_rate": -0.5,
                                      "clip_threshold": 1.5,
                                      "epsilon_1": 1e-3, "epsilon_2": 0.5}),
            # g ~ 1e-6: g² ~ 1e-12 far above eps1; small parameters make
            # the scale eps2 (the floor)
            Config("tiny", {}, grad_scale=1e-6, param_scale=1e-4),
        ],
        errors=[
            ErrorCase({"learning_rate": 1e-3}, ValueError,
                      r"Argument `learning_rate` must be None with "
                      r"`relative_step=True`.*Received: learning_rate=0\.001,"
                      r" relative_step=True"),
            ErrorCase({"warmup_init": True, "relative_step": False,
                       "learning_rate": 1e-3}, ValueError,
                      r"Argument `warmup_init=True` requires "
                      r"`relative_step=True`"),
            ErrorCase({"relative_step": False}, ValueError,
                      r"Argument `learning_rate` must be given with "
                      r"`relative_step=False`\. Received: "
                      r"learning_rate=None"),
            ErrorCase({"decay_rate": 0.5}, ValueError,
                      r"Argument `decay_rate` must be <= 0\. "
                      r"Received: decay_rate=0\.5"),
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\]\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"clip_threshold": -1.0}, ValueError,
                      r"Argument `clip_threshold` must be > 0"),
            ErrorCase({"epsilon_2": -1e-3}, ValueError,
                      r"Argument `epsilon_2` must be >= 0"),
            ErrorCase({"scale_parameter": "yes"}, TypeError,
                      r"Argument `scale_parameter` must be True or False"),
        ],
    ),
]
