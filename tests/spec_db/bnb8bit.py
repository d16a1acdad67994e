"""AdamW8bit, Lion8bit, AdEMAMix8bit against bitsandbytes 0.50.2 (CPU).

The generic tests' tensors (at most 12 elements) are below bitsandbytes'
``min_8bit_size=4096``: the configs with ``min_8bit_size=0`` quantise every
one of them (bitsandbytes takes the same argument), the ``fp32`` configs
check the 32-bit path of small tensors. tests/test_8bit.py covers
>= 4096-element Dense and Conv2D kernels through the layout rule.
"""

import functools

import keras_optzoo as oz

try:
    import harness
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference import np_bnb8bit
    import bnb8_oracle
except ImportError:  # imported as tests.spec_db.bnb8bit
    from tests import harness
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference import np_bnb8bit
    from tests import bnb8_oracle


def _optim(name):
    def make(params, **kwargs):
        return getattr(bnb8_oracle.bnb().optim, name)(params, **kwargs)
    make.__name__ = name
    return make


def _slots(moments):
    def slots(kwargs, shape):
        size = 1
        for d in shape:
            size *= int(d)
        if size < kwargs.get("min_8bit_size", 4096):
            return [(name, False) for name in moments]
        blocks = -(-size // 256)
        out = []
        for name in moments:
            out += [(name, (size,)), (f"{name}_absmax", (blocks,))]
        return out
    return slots


_compare = functools.partial(harness.assert_distribution_close)
_BETA_ERRORS = [
    ErrorCase({"beta_1": 1.0}, ValueError,
              r"Argument `beta_1` must be in \[0, 1\)\. Received: beta_1=1"),
    ErrorCase({"min_8bit_size": -1}, ValueError,
              r"Argument `min_8bit_size` must be >= 0\. "
              r"Received: min_8bit_size=-1"),
    ErrorCase({"min_8bit_size": 1.5}, TypeError,
              r"Argument `min_8bit_size` must be an integer\. "),
]

SPECS = [
    OptimizerSpec(
        name="adamw8bit",
        cls=oz.AdamW8bit,
        make_reference=_optim("AdamW8bit"),
        reference_kwargs=converter(betas=(0.9, 0.999)),
        reference_name="bitsandbytes 0.50.2 AdamW8bit (CPU)",
        numpy_reference=np_bnb8bit.NumpyAdamW8bit,
        slots=_slots(("state1", "state2")),
        capabilities=frozenset({"weight_decay", "cross_element"}),
        multi_tensor=False,
        compare=_compare,
        configs=[
            Config("default", {"learning_rate": 0.01, "min_8bit_size": 0}),
            Config("betas_eps_wd", {"learning_rate": 0.01, "beta_1": 0.8,
                                    "beta_2": 0.99, "epsilon": 1e-3,
                                    "weight_decay": 0.1,
                                    "min_8bit_size": 0}),
            Config("fp32", {"learning_rate": 0.01}),
        ],
        errors=_BETA_ERRORS,
    ),
    OptimizerSpec(
        name="lion8bit",
        cls=oz.Lion8bit,
        make_reference=_optim("Lion8bit"),
        reference_kwargs=converter(betas=(0.9, 0.99)),
        reference_name="bitsandbytes 0.50.2 Lion8bit (CPU)",
        numpy_reference=np_bnb8bit.NumpyLion8bit,
        slots=_slots(("state1",)),
        capabilities=frozenset({"weight_decay", "cross_element"}),
        multi_tensor=False,
        compare=_compare,
        configs=[
            Config("default", {"learning_rate": 0.01, "min_8bit_size": 0}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.5,
                          "beta_1": 0.5, "min_8bit_size": 0}),
            Config("fp32", {"learning_rate": 0.01, "weight_decay": 0.1}),
        ],
        errors=_BETA_ERRORS,
    ),
    OptimizerSpec(
        name="ademamix8bit",
        cls=oz.AdEMAMix8bit,
        make_reference=_optim("AdEMAMix8bit"),
        reference_kwargs=converter(betas=(0.9, 0.999, 0.9999)),
        reference_name="bitsandbytes 0.50.2 AdEMAMix8bit (CPU)",
        numpy_reference=np_bnb8bit.NumpyAdEMAMix8bit,
        slots=_slots(("state1", "state1_slow", "state2")),
        capabilities=frozenset({"weight_decay", "cross_element"}),
        multi_tensor=False,
        compare=_compare,
        configs=[
            Config("default", {"learning_rate": 0.01, "min_8bit_size": 0}),
            Config("warmup", {"learning_rate": 0.01, "t_alpha": 40,
                              "t_beta3": 40, "alpha": 3.0, "beta_3": 0.999,
                              "min_8bit_size": 0}),
            Config("fp32", {"learning_rate": 0.01, "weight_decay": 0.1}),
        ],
        errors=_BETA_ERRORS + [
            ErrorCase({"t_alpha": 0}, ValueError,
                      r"Argument `t_alpha` must be >= 1\. "
                      r"Received: t_alpha=0"),
        ],
    ),
]
