"""Spec of Rprop (torch.optim.Rprop)."""

import torch

import keras_optzoo as oz

try:
    from specs import Config, ErrorCase, OptimizerSpec
    from reference.np_rprop import NumpyRprop
except ImportError:  # imported as tests.spec_db.rprop
    from tests.specs import Config, ErrorCase, OptimizerSpec
    from tests.reference.np_rprop import NumpyRprop

SPECS = [
    OptimizerSpec(
        name="rprop",
        slots=lambda kw, shape: [("prev", False), ("step_size", False)],
        cls=oz.Rprop,
        torch_cls=torch.optim.Rprop,
        reference_name="torch.optim 2.13 Rprop",
        numpy_reference=NumpyRprop,
        capabilities=frozenset({"maximize"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            # step sizes reach the upper bound
            Config("etas_max", {"learning_rate": 0.05, "etas": (0.3, 1.5),
                                "step_sizes": (1e-4, 0.1)}),
            # and the lower bound
            Config("min_maximize", {"learning_rate": 0.01,
                                    "etas": (0.2, 1.1),
                                    "step_sizes": (5e-3, 1.0),
                                    "maximize": True}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"etas": (1.5, 2.0)}, ValueError,
                      r"Argument `etas` must be \(etaminus, etaplus\) with "
                      r"0 < etaminus < 1 < etaplus\. "
                      r"Received: etas=\(1\.5, 2\.0\)"),
            ErrorCase({"etas": (0.5, 0.9)}, ValueError,
                      r"Received: etas=\(0\.5, 0\.9\)"),
            ErrorCase({"etas": 0.5}, TypeError,
                      r"Argument `etas` must be a pair of real numbers"),
            ErrorCase({"step_sizes": (1.0, 0.1)}, ValueError,
                      r"Argument `step_sizes` must be \(min, max\) with "
                      r"0 <= min <= max < inf\. "
                      r"Received: step_sizes=\(1\.0, 0\.1\)"),
            ErrorCase({"step_sizes": (-1e-6, 50.0)}, ValueError,
                      r"Received: step_sizes=\(-1e-06, 50\.0\)"),
            ErrorCase({"step_sizes": (1e-6, 50.0, 3.0)}, TypeError,
                      r"Argument `step_sizes` must be a pair"),
            ErrorCase({"weight_decay": 0.1}, ValueError,
                      r"Argument `weight_decay` is not accepted by Rprop"),
        ],
    ),
]
