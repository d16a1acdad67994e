"""AdamW8bit, Lion8bit, AdEMAMix8bit against bitsandbytes 0.50.2 on CPU.

The generic harness's shapes (a few elements) stay below
``min_8bit_size=4096`` unless a config lowers it, so these tests use a
5000-element Dense kernel (a partial last block) and a 4608-element Conv2D
kernel (both quantised, compared with bitsandbytes on the torch tensors the
layout rule ports them to) and a bias (float32 state), over 50 steps with a
learning-rate change. The comparison is the issue's distribution criterion
(a rounding difference may flip a state code), elementwise relative to the
tensor's own max|theta_ref - theta_0| (stricter than the project's one
scale for all tensors): >= 99% within 1e-5, <= 0.1% beyond 1e-3, none
beyond 0.1. (Measured: every element within 1e-6; see
benchmarks/results/bnb8.md.)
"""

import numpy as np
import pytest

import keras

import bnb8_oracle as oracle
import harness
from keras_optzoo.optimizers import _quant8
from keras_optzoo.optimizers import bnb8bit

CASES = [
    ("AdamW8bit", {"lr": 1e-3, "weight_decay": 1e-2}),
    ("Lion8bit", {"lr": 1e-4, "weight_decay": 0.1}),
    ("AdEMAMix8bit", {"lr": 1e-3, "t_alpha": 40, "t_beta3": 40}),
]


def _keras_kwargs(kwargs):
    out = dict(kwargs)
    out["learning_rate"] = out.pop("lr")
    return out


def _modes(name):
    """Compiled on JAX/TF (how ``fit`` runs there), eager on torch: the
    eager keras.ops code is the torch run's, and the generic trajectory
    test runs each class eagerly on JAX/TF too (with every tensor
    quantised, ``min_8bit_size=0``); eager JAX/TF costs tens of seconds
    here in op dispatch."""
    del name
    return ["compiled"] if harness.backend() != "torch" else ["eager"]


def check_distribution(fractions):
    within, beyond, worst = fractions
    assert within >= 0.99 and beyond <= 1e-3 and worst <= 0.1, fractions


@pytest.mark.parametrize("name,kwargs", CASES, ids=[c[0] for c in CASES])
def test_8bit_matches_bitsandbytes(name, kwargs):
    lays = oracle.layouts()
    init, grads = oracle.problem()
    lrs = oracle.lrs(kwargs["lr"])
    ref = oracle.run_bnb(name, kwargs, init, grads, lrs, lays)
    for mode in _modes(name):
        ours = harness.run_ours(
            getattr(bnb8bit, name)(**_keras_kwargs(kwargs)), init, grads,
            lrs, mode, oracle.NAMES)
        check_distribution(oracle.deviation(ours, ref, init))


def test_8bit_maps_and_quantiser_equal_bitsandbytes():
    torch = pytest.importorskip("torch")
    functional = oracle.bnb().functional
    rng = np.random.default_rng(0)
    for signed in (True, False):
        table = functional.create_dynamic_map(signed=signed).numpy()
        np.testing.assert_array_equal(_quant8.dynamic_map(signed), table)
        n = 256 * 300 + 77
        x = (rng.uniform(-1 if signed else 0, 1, n)
             * np.exp(rng.uniform(-14, 0, n))).astype("float32")
        # every threshold of the code search and its float32 neighbours,
        # 255 to a block whose absmax is 1 (so they are the scaled values)
        t, _ = _quant8.thresholds(signed)
        near = np.concatenate([t, np.nextafter(t, np.float32(2)),
                               np.nextafter(t, np.float32(-2))])
        near = np.pad(near, (0, -near.size % 255)).reshape(-1, 255)
        near = np.concatenate([near, np.ones((len(near), 1), "float32")], 1)
        # blocks with non-finite state (a NaN or inf gradient): a NaN stays
        # out of its block's absmax and gets code 0; an inf makes it inf
        bad = rng.normal(size=(4, 256)).astype("float32")
        bad[0, 3] = np.nan
        bad[1, 10] = np.inf
        bad[2, 0], bad[2, 1] = -np.inf, np.nan
        bad[3, :] = np.nan
        x = np.concatenate([near.ravel(), bad.ravel(), x]).astype("float32")
        codes, absmax = torch.ops.bitsandbytes.quantize_blockwise(
            torch.tensor(x), torch.tensor(table), 256)
        ours, our_absmax = _quant8.quantize(keras.ops.convert_to_tensor(x),
                                            signed)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours),
                                      codes.numpy())
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(our_absmax), absmax.numpy())
        back = torch.ops.bitsandbytes.dequantize_blockwise(
            codes, absmax, torch.tensor(table), 256, torch.float32)
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(_quant8.dequantize(
                ours, our_absmax, x.shape, signed)), back.numpy())


def test_8bit_state_is_uint8_and_bnb_sized():
    lays = oracle.layouts()
    init, grads = oracle.problem(steps=2)
    opt = bnb8bit.AdamW8bit()
    harness.run_ours(opt, init, grads, None, "eager", oracle.NAMES)
    per_variable = []
    for index in range(len(init)):
        size = int(np.prod(init[index].shape))
        nbytes = 0
        for slots in opt._slots.values():
            slot = slots[index]
            if slot is not None:
                value = keras.ops.convert_to_numpy(slot)
                nbytes += value.nbytes
        per_variable.append(nbytes)
        assert nbytes == _quant8.state_bytes(size, (True, False))
    assert keras.backend.standardize_dtype(
        opt._slots["state1"][0].dtype) == "uint8"
    del lays


def test_8bit_refuses_bad_arguments():
    with pytest.raises(ValueError, match="beta_1"):
        bnb8bit.AdamW8bit(beta_1=1.0)
    with pytest.raises(ValueError, match="min_8bit_size"):
        bnb8bit.Lion8bit(min_8bit_size=-1)
    with pytest.raises(TypeError, match="t_alpha"):
        bnb8bit.AdEMAMix8bit(t_alpha=1.5)
    with pytest.raises(ValueError, match="amsgrad"):
        bnb8bit.AdamW8bit(amsgrad=True)
