"""Spec of CAME: came-pytorch 0.1.3's `came_pytorch.CAME` is the oracle."""

import came_pytorch

import keras_optzoo as oz

try:
    from specs import Config, ErrorCase, OptimizerSpec
    from reference.np_came import NumpyCAME
except ImportError:  # imported as tests.spec_db.came
    from tests.specs import Config, ErrorCase, OptimizerSpec
    from tests.reference.np_came import NumpyCAME


def reference_kwargs(kwargs):
    """Keras-spelled arguments -> came-pytorch's (`eps` and `betas` tuples;
    its `lr` has no default, ours is 2e-4)."""
    out = {"lr": kwargs.get("learning_rate", 2e-4),
           "eps": (kwargs.get("epsilon_1", 1e-30),
                   kwargs.get("epsilon_2", 1e-16)),
           "betas": (kwargs.get("beta_1", 0.9), kwargs.get("beta_2", 0.999),
                     kwargs.get("beta_3", 0.9999))}
    for name in ("clip_threshold", "weight_decay"):
        if name in kwargs:
            out[name] = kwargs[name]
    return out


def _slots(kwargs, shape):
    # came-pytorch's state (its unused "RMS" entry is not kept)
    if len(shape) >= 2:
        rows, cols = shape[:-1], shape[:-2] + shape[-1:]
        return [("exp_avg", False), ("exp_avg_sq_row", rows),
                ("exp_avg_sq_col", cols), ("exp_avg_res_row", rows),
                ("exp_avg_res_col", cols)]
    return [("exp_avg", False), ("exp_avg_sq", False)]


SPECS = [
    OptimizerSpec(
        name="came",
        slots=_slots,
        cls=oz.CAME,
        torch_cls=came_pytorch.CAME,
        reference_kwargs=reference_kwargs,
        reference_name="came-pytorch 0.1.3 CAME",
        numpy_reference=NumpyCAME,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay",
                                "cross_element"}),
        configs=[
            # the default learning rate (2e-4) moves parameters of scale 1
            # by ~1e-2 in 60 steps: small parameters keep float32's
            # resolution below the tolerance
            Config("default", {}, param_scale=0.01),
            Config("lr", {"learning_rate": 0.01}),
            # fast betas: the instability statistics move within the run;
            # clip_threshold 0.5 clips most updates, 3.0 few
            Config("betas_clip", {"learning_rate": 0.01, "beta_1": 0.5,
                                  "beta_2": 0.9, "beta_3": 0.8,
                                  "clip_threshold": 0.5}),
            Config("clip_loose", {"learning_rate": 0.01, "beta_2": 0.5,
                                  "clip_threshold": 3.0}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.5}),
            # epsilons of the order of g² and of the instability
            Config("eps", {"learning_rate": 0.01, "epsilon_1": 0.1,
                           "epsilon_2": 1e-2, "beta_3": 0.9}),
            # g ~ 1e-6: g² ~ 1e-12 far above eps1; the instability far
            # above eps2
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"epsilon_1": -1.0}, ValueError,
                      r"Argument `epsilon_1` must be >= 0\. "
                      r"Received: epsilon_1=-1"),
            ErrorCase({"epsilon_2": "small"}, TypeError,
                      r"Argument `epsilon_2` must be a real number"),
            ErrorCase({"clip_threshold": 0.0}, ValueError,
                      r"Argument `clip_threshold` must be > 0\. "
                      r"Received: clip_threshold=0"),
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\]\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"beta_3": -0.1}, ValueError,
                      r"Argument `beta_3` must be in \[0, 1\]\. "
                      r"Received: beta_3=-0\.1"),
        ],
    ),
]
