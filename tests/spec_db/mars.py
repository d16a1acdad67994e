"""Spec of MARS: timm 1.0.31's ``timm.optim.mars.Mars`` is the oracle."""

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.external import timm_optim
    from reference.np_mars import NumpyMars
except ImportError:  # imported as tests.spec_db.mars
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.external import timm_optim
    from tests.reference.np_mars import NumpyMars

_convert = converter(betas=(0.9, 0.99), drop=("beta_1_1d", "beta_2_1d"))


def reference_kwargs(kwargs):
    """Keras-spelled arguments -> timm's: ``beta_1, beta_2`` -> ``betas``,
    ``beta_1_1d, beta_2_1d`` -> ``betas_1d`` (when either is given; the
    other then is ``beta_1`` / ``beta_2``, as ours defaults)."""
    out = _convert(kwargs)
    one, two = kwargs.get("beta_1_1d"), kwargs.get("beta_2_1d")
    if one is not None or two is not None:
        betas = out["betas"]
        out["betas_1d"] = (betas[0] if one is None else one,
                           betas[1] if two is None else two)
    return out


def _slots(kwargs, shape):
    if kwargs.get("optimize_1d") or len(shape) >= 2:
        return [("exp_avg", False), ("last_grad", False)] + (
            [] if kwargs.get("mars_type") == "lion"
            else [("exp_avg_sq", False)])
    return [("exp_avg", False), ("exp_avg_sq", False)]


def _bool_error(name):
    return ErrorCase({name: 1}, TypeError,
                     rf"Argument `{name}` must be True or False")


def _beta_error(name, value):
    return ErrorCase({name: value}, ValueError,
                     rf"Argument `{name}` must be in \[0, 1\)\. "
                     rf"Received: {name}={value:g}")


SPECS = [
    OptimizerSpec(
        name="mars",
        slots=_slots,
        cls=oz.MARS,
        torch_cls=timm_optim("mars").Mars,
        reference_kwargs=reference_kwargs,
        reference_name="timm 1.0.31 Mars",
        numpy_reference=NumpyMars,
        # the norm of the corrected gradient spreads a NaN through a tensor
        capabilities=frozenset({"weight_decay", "cross_element"}),
        configs=[
            # the (3, 4) and (2, 3, 2) tensors take MARS (their corrected
            # gradients' norms are ~3: the clip is active), the (5,) and ()
            # ones AdamW
            Config("default", {"learning_rate": 0.01}),
            Config("lion_wd", {"learning_rate": 0.01, "mars_type": "lion",
                               "weight_decay": 0.1}),
            Config("optimize_1d_caution_gamma", {
                "learning_rate": 0.01, "optimize_1d": True, "caution": True,
                "gamma": 0.1, "weight_decay": 0.05}),
            Config("lion_optimize_1d_caution", {
                "learning_rate": 0.01, "mars_type": "lion",
                "optimize_1d": True, "caution": True}),
            Config("betas_1d_factor", {
                "learning_rate": 0.01, "beta_1": 0.95, "beta_2": 0.999,
                "epsilon": 1e-6, "beta_1_1d": 0.8, "beta_2_1d": 0.95,
                "lr_1d_factor": 0.5, "weight_decay": 0.05}),
            Config("beta_2_1d_caution", {
                "learning_rate": 0.01, "beta_2_1d": 0.9, "caution": True}),
            # no clip (norms ~3e-6), ε placement shows in both rules
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=[
            _beta_error("beta_1", 1.0), _beta_error("beta_2", -0.1),
            _beta_error("beta_1_1d", 1.5), _beta_error("beta_2_1d", 1.0),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-1"),
            ErrorCase({"gamma": -0.1}, ValueError,
                      r"Argument `gamma` must be >= 0\. "
                      r"Received: gamma=-0\.1"),
            ErrorCase({"gamma": "0.1"}, TypeError,
                      r"Argument `gamma` must be a real number"),
            ErrorCase({"lr_1d_factor": -1.0}, ValueError,
                      r"Argument `lr_1d_factor` must be >= 0\. "
                      r"Received: lr_1d_factor=-1"),
            ErrorCase({"mars_type": "adam"}, ValueError,
                      r"Argument `mars_type` must be 'adamw' or 'lion'\. "
                      r"Received: mars_type='adam'"),
        ] + [_bool_error(n) for n in ("optimize_1d", "caution")],
    ),
]
