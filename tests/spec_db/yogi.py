"""Yogi against optax 0.2.8's yogi (through a torch-interface adapter)."""

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_yogi import NumpyYogi
    from reference.adapters import OptaxYogi
except ImportError:  # imported as tests.spec_db.yogi
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_yogi import NumpyYogi
    from tests.reference.adapters import OptaxYogi


reference_kwargs = converter(betas=(0.9, 0.999))


SPECS = [
    OptimizerSpec(
        name="yogi",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False)],
        cls=oz.Yogi,
        torch_cls=OptaxYogi,
        reference_kwargs=reference_kwargs,
        # weight_decay: optax.add_decayed_weights chained before optax.yogi
        reference_name="optax 0.2.8 yogi",
        numpy_reference=NumpyYogi,
        capabilities=frozenset({"weight_decay"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("betas_init_eps", {"learning_rate": 0.05, "beta_1": 0.5,
                                      "beta_2": 0.9, "epsilon": 1e-5,
                                      "initial_accumulator_value": 0.1}),
            Config("tiny", {"learning_rate": 0.01, "epsilon": 1e-7},
                   grad_scale=1e-6, param_scale=1e-5),
        ],
        errors=[
            ErrorCase({"beta_1": 1.0}, ValueError,
                      r"Argument `beta_1` must be in \[0, 1\)\. "
                      r"Received: beta_1=1"),
            ErrorCase({"beta_2": -0.1}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)\. "
                      r"Received: beta_2=-0\.1"),
            ErrorCase({"epsilon": -1e-3}, ValueError,
                      r"Argument `epsilon` must be >= 0\. "
                      r"Received: epsilon=-0\.001"),
            ErrorCase({"initial_accumulator_value": -1}, ValueError,
                      r"Argument `initial_accumulator_value` must be >= 0\. "
                      r"Received: initial_accumulator_value=-1"),
        ],
    ),
]
