"""Lion against lion-pytorch 0.2.5 (timm 1.0.31's Lion with caution=True)."""

import lion_pytorch

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_lion import NumpyLion
    from reference.external import timm_optim
except ImportError:  # imported as tests.spec_db.lion
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_lion import NumpyLion
    from tests.reference.external import timm_optim


def make_lion(params, caution=False, **kwargs):
    """lion-pytorch's Lion; timm's for the cautious variant."""
    if caution:
        return timm_optim("lion").Lion(params, caution=True, **kwargs)
    return lion_pytorch.Lion(params, **kwargs)


reference_kwargs = converter(betas=(0.9, 0.99))


SPECS = [
    OptimizerSpec(
        name="lion",
        slots=lambda kw, shape: [("exp_avg", False)],
        cls=oz.Lion,
        torch_cls=lion_pytorch.Lion,
        make_reference=make_lion,
        reference_kwargs=reference_kwargs,
        reference_name="lion-pytorch 0.2.5 Lion (timm 1.0.31 with caution)",
        numpy_reference=NumpyLion,
        capabilities=frozenset({"weight_decay"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.5}),
            Config("betas", {"learning_rate": 0.01, "beta_1": 0.5,
                             "beta_2": 0.9}),
            Config("caution_wd", {"learning_rate": 0.01, "caution": True,
                                  "weight_decay": 0.1}),
        ],
        errors=[
            ErrorCase({"beta_1": 1.5}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\]\. "
                      r"Received: beta_1=1\.5"),
            ErrorCase({"beta_2": -0.1}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\]\. "
                      r"Received: beta_2=-0\.1"),
            ErrorCase({"caution": 1}, TypeError,
                      r"Argument `caution` must be True or False"),
        ],
    ),
]
