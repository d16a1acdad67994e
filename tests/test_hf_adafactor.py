"""HFAdafactor's computed learning rate (relative_step): what
``optimizer.learning_rate`` reads, that it cannot be set, and that the
config round-trips with ``learning_rate=None``; HFAdafactor's and CAME's
torch multi-tensor path through every layout kind. The trajectories against
transformers are the generic tests' (tests/spec_db/hf_adafactor.py)."""

import math

import numpy as np
import pytest

import keras
from keras import ops

import keras_optzoo as oz
from test_adafactor import LAYOUT_CASES
from test_adafactor import assert_fast_path_equals_generic


def _value(x):
    return float(ops.convert_to_numpy(x))


@pytest.mark.parametrize("warmup_init", [False, True])
def test_learning_rate_reads_the_relative_step(warmup_init):
    opt = oz.HFAdafactor(warmup_init=warmup_init)
    variable = keras.Variable(np.ones((3, 2), "float32"))
    opt.build([variable])
    for t in (1, 2, 3):
        cap = 1e-6 * t if warmup_init else 1e-2
        assert math.isclose(_value(opt.learning_rate),
                            min(cap, 1 / math.sqrt(t)), rel_tol=1e-6)
        opt.apply([ops.ones((3, 2))], [variable])
    # far along, 1/sqrt(t) is below the cap
    opt.iterations.assign(40000 - 1)
    assert math.isclose(_value(opt.learning_rate), 1 / 200, rel_tol=1e-6)


def test_learning_rate_cannot_be_set_with_relative_step():
    opt = oz.HFAdafactor()
    with pytest.raises(ValueError, match="relative_step=True"):
        opt.learning_rate = 0.1
    manual = oz.HFAdafactor(learning_rate=0.1, relative_step=False)
    manual.learning_rate = 0.05
    assert math.isclose(_value(manual.learning_rate), 0.05, rel_tol=1e-6)


def test_config_keeps_learning_rate_none():
    opt = oz.HFAdafactor(warmup_init=True, beta_1=0.9)
    config = opt.get_config()
    assert config["learning_rate"] is None
    clone = oz.HFAdafactor.from_config(config)
    assert clone.warmup_init and clone.get_config() == config


@pytest.mark.parametrize("name", ["hfadafactor", "came"])
def test_multi_tensor_path_reads_every_layout(name):
    """HFAdafactor and CAME (their factor slots drop the reduced axis): on
    torch the fast path (the slots viewed keepdims-shaped in the Keras
    layout) equals the per-variable path for every layout kind and is
    replayed after the first step (one trace per group, factored and not);
    elsewhere both runs are the generic path."""
    names = [f"v{i}" for i in range(len(LAYOUT_CASES))]
    layouts = {f"^v{i}$": kind for i, (_, kind) in enumerate(LAYOUT_CASES)
               if kind}
    kwargs = {"hfadafactor": {"beta_1": 0.9, "weight_decay": 0.1},
              "came": {"learning_rate": 1e-2, "weight_decay": 0.1}}[name]
    cls = {"hfadafactor": oz.HFAdafactor, "came": oz.CAME}[name]
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype("float32")
            for s, _ in LAYOUT_CASES]
    grads = [[rng.standard_normal(s).astype("float32")
              for s, _ in LAYOUT_CASES] for _ in range(6)]
    assert_fast_path_equals_generic(
        lambda: cls(layouts=layouts, **kwargs), init, grads, names)
