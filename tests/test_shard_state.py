"""``shard_state=True``: optimizer state sharded along the data-parallel axis.

JAX: on 4 virtual CPU devices under ``keras.distribution.DataParallel``,
one optimizer per state mechanism (tests/_shard_state_worker.py) trains a
small model with ``fit`` sharded and replicated: the weights agree to
float32 rounding, every slot with an axis that divides by 4 holds a quarter
of its bytes on each device (read from the arrays' shardings), and a
``.keras`` file saved halfway continues bit-exactly, sharded again after
loading. A ``ModelParallel`` run checks that the slot of a kernel split on
"model" is split on "batch" as well. Virtual devices must be set before JAX
starts, so the multi-device part runs in one subprocess (as
tests/test_distributed.py does), all cases in one process.

Tolerance (trajectory): the sharded update reduces over sharded state in
another order where the algorithm reduces (Adafactor's row/column means,
LAMB's trust-ratio norms), so it agrees to float32 rounding, not bit-
exactly: max |Δw| <= 1e-6 x the largest distance a weight travelled
(observed: 0 for the elementwise, scalar, matrix and 8-bit cases, 5.7e-7
for Adafactor and 4.5e-7 for LAMB, 16 steps).

TensorFlow and torch: Keras 3.15 has no ``keras.distribution`` layouts on
these backends, so ``shard_state=True`` raises a ValueError naming the
argument and what to use instead; that is tested there.
"""

import os
import sys
import warnings

import numpy as np
import pytest

import keras

import harness

import keras_optzoo as oz

BACKEND = keras.backend.backend()
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "_shard_state_worker.py")
TIMEOUT = 600
RTOL = 1e-6
DEVICES = 4

if BACKEND == "jax":
    sys.path.insert(0, os.path.dirname(WORKER))
    import _shard_state_worker as worker

    MECHANISMS = list(worker.CASES)
else:
    MECHANISMS = []


def test_config_round_trip():
    """``shard_state`` is saved by get_config and restored (every backend;
    True only where it is accepted)."""
    config = oz.Adam().get_config()
    assert config["shard_state"] is False
    assert oz.Adam.from_config(config).shard_state is False
    if BACKEND == "jax":
        opt = oz.Adafactor(shard_state=True)
        restored = oz.Adafactor.from_config(opt.get_config())
        assert restored.shard_state is True


def test_not_a_bool_is_rejected():
    with pytest.raises(TypeError, match=r"Argument `shard_state` must be "
                       r"True or False\. Received: shard_state=1"):
        oz.Adam(shard_state=1)


if BACKEND != "jax":
    @pytest.mark.parametrize("name", ["adam", "adafactor", "adamw8bit"])
    def test_unsupported_backend_raises(name):
        """TF / torch: a ValueError at construction that names the argument
        and the backend's alternative, never a silent replicated state."""
        with pytest.raises(ValueError) as info:
            oz.get(name, shard_state=True)
        message = str(info.value)
        assert "`shard_state=True`" in message
        assert f"backend: {BACKEND}" in message
        if BACKEND == "torch":
            assert "ZeroRedundancyOptimizer" in message
        else:
            assert "tf.distribute" in message
        assert "JAX backend" in message


if BACKEND == "jax":
    def test_without_a_distribution_warns_and_replicates():
        """No active distribution at build: a warning, state unsharded, the
        same update as shard_state=False."""
        assert keras.distribution.distribution() is None
        var = keras.Variable(np.ones((4, 3), "float32"))
        grad = keras.ops.full((4, 3), 0.5)
        sharded = oz.Adam(learning_rate=0.1, shard_state=True)
        with pytest.warns(UserWarning, match="no keras.distribution is "
                          "active"):
            sharded.build([var])
        plain_var = keras.Variable(np.ones((4, 3), "float32"))
        plain = oz.Adam(learning_rate=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plain.build([plain_var])
        sharded.apply([grad], [var])
        plain.apply([grad], [plain_var])
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(var),
                                      keras.ops.convert_to_numpy(plain_var))

    @pytest.fixture(scope="module")
    def results():
        env = dict(os.environ, KERAS_BACKEND=BACKEND)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count="
                            f"{DEVICES}")
        return harness.run_worker([WORKER], env, TIMEOUT)

    def _case(results, mechanism):
        result = results[mechanism]
        assert "error" not in result, result.get("error")
        return result

    @pytest.mark.slow
    @pytest.mark.parametrize("mechanism", MECHANISMS)
    def test_sharded_trajectory_equals_replicated(results, mechanism):
        result = _case(results, mechanism)
        assert result["moved"] > 1e-2, "training did not move the weights"
        assert result["relative_dev"] <= RTOL, (
            f"{mechanism}: max |w_sharded - w_replicated| = "
            f"{result['max_abs_dev']:.3e}, {result['relative_dev']:.2e} of "
            f"the distance travelled ({result['moved']:.3e})")

    @pytest.mark.slow
    @pytest.mark.parametrize("mechanism", MECHANISMS)
    def test_state_bytes_per_device(results, mechanism):
        """Each slot with an axis divisible by 4 holds 1/4 of its bytes on a
        device, the others all of them; replicated state holds everything
        on every device."""
        result = _case(results, mechanism)
        assert result["wrong"] == []
        assert result["replicated_slot_bytes_per_device"] == \
            result["slot_bytes"]
        ratio = result["slot_bytes_per_device"] / result["slot_bytes"]
        # only the 4-byte scalars and the single absmax block of a small
        # 8-bit variable are replicated in this model
        assert 0.25 <= ratio <= 0.3, ratio

    @pytest.mark.slow
    @pytest.mark.parametrize("mechanism", [m for m in MECHANISMS
                                           if m in worker.RESUME])
    def test_save_load_resume_is_exact(results, mechanism):
        result = _case(results, mechanism)
        assert result["loaded_shard_state"] is True
        assert result["loaded_wrong"] == []  # sharded again after loading
        assert result["resume_weights_max_abs_dev"] == 0.0
        assert result["resume_state_max_abs_dev"] == 0.0

    @pytest.mark.slow
    def test_keras_ema_and_accumulators_are_split(results):
        """Keras's EMA copies and gradient accumulators, made in the same
        build, are split like the slots (the scalar case trains with
        gradient accumulation)."""
        result = _case(results, "keras_state")
        assert result["ema"] == 4 and result["accumulators"] == 4
        assert result["wrong"] == []
        assert result["slot_bytes_per_device"] * 4 == result["slot_bytes"]

    @pytest.mark.slow
    def test_model_parallel_splits_slots_on_the_batch_axis(results):
        result = _case(results, "ModelParallel")
        assert result["relative_dev"] <= RTOL, result
        for path, spec in result["slot_specs"].items():
            if "kernel" in path:
                assert spec == ["batch", "model"], (path, spec)
            else:  # the biases: (32,) and (4,), both divisible by 2
                assert spec == ["batch"], (path, spec)
        for path, spec in result["weight_specs"].items():
            # the weights keep the distribution's layout
            assert "batch" not in spec, (path, spec)
